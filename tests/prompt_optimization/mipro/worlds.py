"""Datasets, templates and score functions of the scripted worlds, for the end-to-end MIPRO tests."""

from __future__ import annotations

import re

from rollouts_dspy import RunOptions
from rollouts_dspy.dtypes import Metric, Score
from rollouts_dspy.prompt_optimization.mipro import MIPROConfig, run_mipro
from rollouts_dspy.prompt_optimization.types import PromptTemplate
from rollouts_dspy.testing import generate_arithmetic_problems, generate_intent_queries
from tests.conftest import make_endpoint

WEAK_INTENT = PromptTemplate(system="Classify the customer query.", user_template="Query: {query}")
WEAK_CALCULATOR = PromptTemplate(system="Solve the arithmetic problem.", user_template="Problem: {problem}")
AGENT_CALCULATOR = PromptTemplate(
    system="Solve the arithmetic problem. Use the calculator tools for every arithmetic step, one step at a time, "
           "then call complete_task with the final result.",
    user_template="Problem: {problem}",
)


def intent_rows(n: int = 100, seed: int = 3) -> list[dict]:
    return generate_intent_queries(n, seed=seed)


def exact_label(trajectory, sample) -> Score:
    ok = trajectory.final_text.strip().lower() == str(sample.ground_truth).strip().lower()
    return Score((Metric("correct", 1.0 if ok else 0.0),), feedback=None if ok else f"expected: {sample.ground_truth}")


def arithmetic_rows(n: int = 40, seed: int = 5) -> list[dict]:
    return generate_arithmetic_problems(n, seed=seed)


def _answer(trajectory) -> str | None:
    for m in reversed(trajectory.messages):
        for call in m.tool_calls:
            if call.name == "complete_task":
                return str(call.args.get("final_result"))
    numbers = re.findall(r"-?\d+(?:\.\d+)?", trajectory.final_text)
    return numbers[-1] if numbers else None


def arithmetic_correct(trajectory, sample) -> Score:
    got = _answer(trajectory)
    try:
        ok = got is not None and abs(float(got) - float(sample.ground_truth)) < 1e-6
    except ValueError:
        ok = got == str(sample.ground_truth)
    return Score((Metric("correct", 1.0 if ok else 0.0),))


ROWS = generate_intent_queries(100, seed=3)


def mipro_config(**kw) -> MIPROConfig:
    """A small, fast MIPRO config on the quickstart rows (train 0..39, validation 40..69)."""
    params = dict(num_candidates=6, num_trials=10, minibatch_size=8, full_eval_every=4, proposal_demos=12,
                  train_seeds=tuple(range(40)), val_seeds=tuple(range(40, 70)), seed=0, max_concurrent=16)
    params.update(kw)
    return MIPROConfig(**params)


async def run_world(server, config, proposer_model="scripted-reflect", rows=ROWS, template=WEAK_INTENT, **kw):
    return await run_mipro(template, config, rows, make_endpoint(server), make_endpoint(server, proposer_model),
                           kw.pop("score_fn", exact_label),
                           options=RunOptions(reporter=kw.pop("reporter", None), progress=False), **kw)


def initial_record(result):
    return next(r for r in result.candidates if r.origin == "initial")
