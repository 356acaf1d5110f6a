"""A score_fn or an environment that raises on some samples: those samples are recorded with their error (never
as a measured score) and the run goes on."""

from __future__ import annotations

import pytest
from reliability_helpers import checkpoint_rollouts, config_for, intent_score, measured_scores, run, saved_rollouts

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


@pytest.mark.parametrize("teleprompter", ["gepa", "mipro"])
def test_the_dspy_teleprompters_record_metric_errors_and_permanent_provider_errors(teleprompter, tmp_path):
    """DSPy front door: a metric that raises on some examples leaves them unmeasured with the error; a prompt over
    the context window is the program's failure (failure_score, error recorded); the run goes on."""

    dspy = pytest.importorskip("dspy")
    from reliability_helpers import DATA

    from rollouts_dspy.dspy_integration.data import rows_to_examples
    from rollouts_dspy.dspy_integration.gepa import RolloutsGEPA
    from rollouts_dspy.dspy_integration.mipro import RolloutsMIPRO
    from rollouts_dspy.testing import FaultConfig, ScriptedServer

    examples = rows_to_examples(DATA, ["query"])
    data = examples[:20]

    def metric(example, pred, trace=None):
        if cursed(data.index(example)):
            raise KeyError(f"metric bug on {example.query[:10]!r}")
        return float(example.intent == pred.intent)

    with ScriptedServer(faults=FaultConfig(rate=0.1, kinds=("context_length",), seed=3)) as bad:
        lm = dspy.LM("openai/scripted-task", api_base=bad.base_url, api_key="scripted", cache=False, num_retries=1)
        make = (lambda: RolloutsGEPA(metric, reflection_lm=lm, max_metric_calls=60, log_dir=str(tmp_path))) \
            if teleprompter == "gepa" else \
            (lambda: RolloutsMIPRO(metric, prompt_model=lm, task_model=lm, auto=None, num_candidates=2,
                                   log_dir=str(tmp_path), config={"num_trials": 3, "minibatch_size": 6}))
        with dspy.context(lm=lm):
            program = make().compile(dspy.Predict("query -> intent"), trainset=data[:12], valset=data[12:])
        assert bad.stats().faults_injected
    # The run went on: the examples whose metric works were scored.
    assert any(not cursed(i) for r in program.search_outcome.records for i in {**r.train_scores, **r.val_scores})
    for record in program.search_outcome.records:
        # A cursed example is never scored by the metric; it has a score only when the program itself failed
        # first (a permanent provider error: failure_score).
        scores = {**record.train_scores, **record.val_scores}
        assert all(s == 0.0 for i, s in scores.items() if cursed(i)), scores
    rollouts = saved_rollouts(tmp_path)
    metric_errors = [r for r in rollouts if r["error"] and r["error"]["kind"] == "score_fn"]
    assert metric_errors and all(r["score"] is None and "metric bug" in r["error"]["detail"] for r in metric_errors)
    task_errors = [r for r in rollouts if r["error"] and r["error"]["kind"] == "task"]
    assert task_errors and all(r["score"] == 0.0 and r["error"]["detail"] for r in task_errors)
