"""A score_fn or an environment that raises on some samples: those samples are recorded with their error (never
as a measured score) and the run goes on."""

from __future__ import annotations

import pytest
from reliability_helpers import checkpoint_rollouts, config_for, intent_score, measured_scores, run

from rollouts_dspy.dtypes import Metric, Score
from rollouts_dspy.environments.calculator import CalculatorEnvironment
from rollouts_dspy.prompt_optimization.types import PromptTemplate
from rollouts_dspy.testing import generate_arithmetic_problems

METHODS = ["gepa", "mipro"]


def cursed(index: int) -> bool:
    return index % 4 == 1


def flaky_score(trajectory, sample) -> Score:
    if cursed(sample.metadata["index"]):
        raise ZeroDivisionError(f"score_fn bug on row {sample.metadata['index']}")
    return intent_score(trajectory, sample)


@pytest.mark.parametrize("method", METHODS)
async def test_a_score_fn_that_raises_on_some_samples(method, server, tmp_path):
    result = await run(method, server, config_for(method, tmp_path), score_fn=flaky_score)
    assert result.best_template.score is not None
    assert all(not cursed(i) for _, i, _ in measured_scores(result))  # never a score for a failed sample
    failed = [r for r in checkpoint_rollouts(method, tmp_path) if r["error"]]
    assert failed and all(cursed(r["sample_index"]) for r in failed)
    assert all(r["error"]["kind"] == "score_fn" and r["score"] is None for r in failed)
    assert all("ZeroDivisionError: score_fn bug on row" in r["error"]["detail"] for r in failed)
    assert sum(rec.failures for rec in result.candidates) > 0  # the result counts them


ARITHMETIC = generate_arithmetic_problems(30, seed=5)
AGENT = PromptTemplate(
    system="Solve the arithmetic problem. Use the calculator tools for every arithmetic step, one step at a time, "
           "then call complete_task with the final result.",
    user_template="Problem: {problem}",
)


def arithmetic_score(trajectory, sample) -> Score:
    got = None
    for m in trajectory.messages:
        for call in m.tool_calls:
            if call.name == "complete_task":
                got = str(call.args.get("final_result"))
    try:
        ok = got is not None and abs(float(got) - float(sample.ground_truth)) < 1e-6
    except ValueError:
        ok = False
    return Score((Metric("correct", 1.0 if ok else 0.0),), None if ok else f"expected: {sample.ground_truth}")


def factory(row):
    if row["problem"] in BROKEN:
        raise OSError("sandbox failed to start")
    return CalculatorEnvironment()


BROKEN = {row["problem"] for i, row in enumerate(ARITHMETIC) if cursed(i)}


@pytest.mark.parametrize("method", METHODS)
async def test_an_environment_that_raises_on_some_samples(method, server, tmp_path):
    cfg = config_for(method, tmp_path, generations=2) if method == "gepa" else config_for(method, tmp_path,
                                                                                             num_trials=2)
    result = await run(method, server, cfg, score_fn=arithmetic_score, data=ARITHMETIC, template=AGENT,
                       environment_factory=factory)
    assert result.best_template.score is not None
    assert all(not cursed(i) for _, i, _ in measured_scores(result))
    failed = [r for r in checkpoint_rollouts(method, tmp_path) if r["error"]]
    assert failed and all(cursed(r["sample_index"]) for r in failed)
    assert all(r["error"]["kind"] == "environment" and "sandbox failed to start" in r["error"]["detail"]
               for r in failed)
