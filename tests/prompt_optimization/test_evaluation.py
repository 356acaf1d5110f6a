"""The evaluation shell: caching, sharing of concurrent duplicates, the hard budget, and input checks."""

from __future__ import annotations

import asyncio

import pytest

from rollouts_dspy import Budget, Endpoint, Metric, PromptTemplate, Score, evaluate_template
from rollouts_dspy.errors import ConfigError, DatasetError, ScoreFnError, TemplateError
from rollouts_dspy.prompt_optimization.protocols import Rollout, RolloutError
from rollouts_dspy.prompt_optimization.types import Candidate, mean_of
from rollouts_dspy.runtime import Runtime


class CountingTask:
    """A fake Task (a seam, not the code under test): scores by instruction length, counts runs per pair."""

    components = ("system",)

    def __init__(self, delay: float = 0.0, fail: frozenset[int] = frozenset()) -> None:
        self.runs: list[tuple[str, int]] = []
        self.delay = delay
        self.fail = fail

    async def run(self, candidate: Candidate, index: int) -> Rollout:
        self.runs.append((candidate.key, index))
        await asyncio.sleep(self.delay)
        if index in self.fail:
            return Rollout(index, None, error=RolloutError("llm", "gave up after retries"))
        return Rollout(index, float(index % 2))

    def labeled_demo(self, index, component):
        return None


def _evaluator(task, **budget):
    return Runtime(method="evaluate", budget=Budget(**budget), max_concurrent=8).evaluator(task)


async def test_the_same_prompt_is_never_run_twice_on_a_sample():
    task = CountingTask(delay=0.01)
    evaluator = _evaluator(task)
    a = Candidate({"system": "be good"})
    same_text = Candidate({"system": "be good"})
    first, second = await asyncio.gather(evaluator.evaluate(a, [0, 1, 2]), evaluator.evaluate(same_text, [1, 2, 3]))
    again = await evaluator.evaluate(a, [0, 1, 2, 3])
    assert sorted(task.runs) == sorted((a.key, i) for i in range(4))
    assert set(again) == {0, 1, 2, 3} and again[1] is first[1] is second[1]


async def test_budget_is_never_exceeded_under_concurrency():
    task = CountingTask(delay=0.001)
    evaluator = _evaluator(task, max_rollouts=7)
    candidates = [Candidate({"system": f"prompt {k}"}) for k in range(5)]
    results = await asyncio.gather(*(evaluator.evaluate(c, range(4)) for c in candidates))
    assert len(task.runs) == 7 == evaluator.ledger.rollouts_used
    assert sum(len(r) for r in results) == 7
    assert evaluator.ledger.exhausted
    assert await evaluator.evaluate(Candidate({"system": "late"}), [0]) == {}


def test_budget_validation():
    with pytest.raises(ConfigError, match="max_rollouts must be an integer >= 1"):
        Budget(max_rollouts=0)
    with pytest.raises(ConfigError, match="max_cost_usd must be a number > 0"):
        Budget(max_cost_usd=-1.0)


async def test_failed_rollouts_are_not_scores():
    evaluator = _evaluator(CountingTask(fail=frozenset({1, 3})))
    results = await evaluator.evaluate(Candidate({"system": "x"}), range(4))
    assert [r.score for r in results.values()] == [0.0, None, 0.0, None]
    assert mean_of(r.score for r in results.values()) == 0.0  # the two unmeasured samples count as nothing
    assert mean_of([results[1].score]) is None


# --- bad input to the spec's evaluate_template: a clear error, and not one LLM call -------------------------------

TEMPLATE = PromptTemplate(system="Classify.", user_template="Query: {query}")
DATA = [{"query": "where is my card", "intent": "card_arrival"}]


def ok_score(trajectory, sample) -> Score:
    return Score(metrics=(Metric("correct", float(trajectory.final_text == sample.ground_truth)),))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"dataset": []}, DatasetError, "dataset is empty"),
        ({"seeds": [5]}, DatasetError, "outside the dataset"),
        ({"seeds": []}, DatasetError, "seeds is empty"),
        ({"dataset": [{"text": "x"}]}, TemplateError, "has no field 'query'"),
        ({"score_fn": "exact"}, ScoreFnError, "score_fn must be callable"),
        ({"score_fn": lambda t, s: 1.0}, ScoreFnError, "must return a Score, but returned float"),
        ({"score_fn": lambda t, s: True}, ScoreFnError, "returned bool"),
    ],
)
async def test_bad_input_fails_before_any_llm_call(server, task_endpoint, kwargs, error, message):
    args = {"template": TEMPLATE, "seeds": [0], "dataset": DATA, "endpoint": task_endpoint, "score_fn": ok_score}
    args.update(kwargs)
    with pytest.raises(error, match=message):
        await evaluate_template(**args)
    assert server.stats().requests_total == 0


def test_endpoint_must_be_known_before_anything_runs():
    with pytest.raises(ValueError, match="not a provider litellm knows"):
        Endpoint(provider="openaii", model="gpt-4o-mini")
