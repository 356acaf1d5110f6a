"""The evaluator and recorded models: cache, dedupe, admission, and what counts as an outage (only the provider)."""

from __future__ import annotations

import asyncio

import pytest

from rollouts_dspy.dtypes import Message
from rollouts_dspy.prompt_optimization.types import Candidate
from rollouts_dspy.runtime import Budget, BudgetExhausted, ProviderUnavailableError, Runtime

from .fakes import FakeModel, FakeTask, provider_down

WORDS = [f"w{i}" for i in range(20)]
ASK = [Message("user", "improve this")]


def _runtime(**budget) -> Runtime:
    return Runtime(method="gepa", budget=Budget(**budget), max_concurrent=4)


async def test_a_pair_is_never_run_twice_and_concurrent_requests_share_one_run():
    rt = _runtime()
    task = FakeTask(WORDS, delay=0.01)
    ev = rt.evaluator(task)
    cand = Candidate({"system": "w1 w2"})
    a, b = await asyncio.gather(ev.evaluate(cand, [0, 1, 2]), ev.evaluate(cand, [1, 2, 3]))
    again = await ev.evaluate(cand, [0, 1, 2, 3])
    assert sorted(task.runs) == sorted((cand.key, i) for i in range(4))
    assert a[1].score == 1.0 and b[3].score == 0.0 and again[2].score == 1.0
    assert rt.meter.spend.rollouts == 4 and rt.rollouts_used == 4


async def test_the_budget_is_never_exceeded_by_concurrent_evaluations():
    rt = _runtime(max_rollouts=7)
    task = FakeTask(WORDS, delay=0.01)
    ev = rt.evaluator(task)
    results = await asyncio.gather(*(ev.evaluate(Candidate({"system": f"p{n}"}), range(5)) for n in range(4)))
    assert len(task.runs) == 7 and rt.rollouts_used == 7
    assert sum(len(r) for r in results) == 7  # what was not paid for is missing, never invented


async def test_a_dollar_cap_is_hard_at_the_estimated_price():
    rt = _runtime(max_cost_usd=0.10)
    task = FakeTask(WORDS, cost=0.01, delay=0.001)
    ev = rt.evaluator(task)
    for n in range(10):
        await ev.evaluate(Candidate({"system": f"p{n}"}), range(20))
    assert rt.ledger.cost_usd <= 0.10 + 1e-12
    # The probe ($0.01), then 7 at $0.0125 each ($0.0875 committed of the $0.09 left), then 1 more once they
    # settled at $0.01 each ($0.02 left); a 10th could cost more than the $0.01 left at the estimate.
    assert len(task.runs) == 9 and rt.ledger.cost_usd == pytest.approx(0.09)


async def test_provider_failures_in_a_row_stop_the_run_and_any_measured_rollout_resets_the_count():
    rt = _runtime()
    ev = rt.evaluator(FakeTask(WORDS, fail={i: "timeout" for i in range(1, 8)}))
    await ev.evaluate(Candidate({"system": "x"}), [0, 1, 2, 3, 4, 5, 6, 7])  # 7 failures in a row: not yet
    assert rt.outage.in_a_row == 7
    await ev.evaluate(Candidate({"system": "x"}), [8])
    assert rt.outage.in_a_row == 0
    ev2 = rt.evaluator(FakeTask(WORDS, fail={i: "timeout" for i in range(20)}))
    with pytest.raises(ProviderUnavailableError, match="timed out.*raise the endpoint's timeout"):
        await ev2.evaluate(Candidate({"system": "y"}), range(8))


async def test_unmeasured_rollouts_are_not_cached_so_asking_again_retries_them():
    rt = _runtime()
    task = FakeTask(WORDS, fail={0: "RateLimitError"})
    ev = rt.evaluator(task)
    first = await ev.evaluate(Candidate({"system": "w0"}), [0])
    assert first[0].score is None
    task.fail.clear()
    second = await ev.evaluate(Candidate({"system": "w0"}), [0])
    assert second[0].score == 1.0 and len(task.runs) == 2


async def test_a_budget_refusal_of_a_model_call_is_not_an_outage():
    # Defect 1: reaching max_cost_usd during reflection was reported as "the provider failed 8 rollouts".
    rt = _runtime(max_cost_usd=0.05)
    model = rt.model(FakeModel(cost=0.03), "reflection")
    await model.complete(ASK)
    for n in range(20):
        with pytest.raises(BudgetExhausted):
            await model.complete([Message("user", f"request {n}")])
    assert rt.outage.in_a_row == 0


async def test_a_model_that_raises_something_else_fails_that_request_only():
    # Defect 5: any exception in reflection (a bug included) counted toward "provider outage".
    rt = _runtime()
    model = rt.model(FakeModel(errors=[ValueError("bad LM")] * 20), "reflection")
    for n in range(20):
        with pytest.raises(ValueError):
            await model.complete([Message("user", f"request {n}")])
    assert rt.outage.in_a_row == 0
    assert rt.usage()["reflection"]["failures"] == 20


async def test_model_provider_failures_reach_the_threshold_with_the_role_in_the_message():
    rt = _runtime()
    model = rt.model(FakeModel(errors=[provider_down("timeout")] * 20), "reflection")
    for n in range(7):
        with pytest.raises(Exception, match="down"):
            await model.complete([Message("user", f"request {n}")])
    with pytest.raises(ProviderUnavailableError, match="8 reflection calls in a row.*timed out"):
        await model.complete([Message("user", "request 8")])


async def test_identical_requests_share_one_call_and_answers_replay_for_free():
    rt = _runtime()
    fake = FakeModel()
    model = rt.model(fake, "reflection")
    a, b = await asyncio.gather(model.complete(ASK), model.complete(ASK))
    c = await model.complete(ASK)
    assert a == b == c and fake.calls == 1
    assert rt.meter.spend.cost_usd == pytest.approx(0.02)  # served three times, counted once
