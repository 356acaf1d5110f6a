"""The ledger: the one admission decision for rollouts and model calls, hard budgets, the price probe."""

from __future__ import annotations

import asyncio

import pytest

from rollouts_dspy.errors import ConfigError
from rollouts_dspy.runtime import Budget, BudgetExhausted, Ledger, PriceBook, room


def test_room_counts_rollouts_pending_and_reserve():
    b = Budget(max_rollouts=100)
    assert room(b, rollouts_used=40, cost_usd=0.0) == 60
    assert room(b, rollouts_used=40, cost_usd=0.0, pending_rollouts=10, reserve=30) == 20
    assert room(b, rollouts_used=90, cost_usd=0.0, reserve=30) == 0
    assert room(Budget(), rollouts_used=10**6, cost_usd=10.0) is None


def test_room_keeps_the_validation_reserve_in_dollars_under_a_dollar_budget():
    # Defect: with only max_cost_usd, the search kept no validation reserve. $1.00 left at $0.01 a rollout buys
    # 100 rollouts; 30 of them are kept back for validation.
    b = Budget(max_cost_usd=2.0)
    assert room(b, rollouts_used=0, cost_usd=1.0, reserve=30, price=0.01) == 70
    assert room(b, rollouts_used=0, cost_usd=1.0, pending_usd=0.5, reserve=30, price=0.01) == 20
    assert room(b, rollouts_used=0, cost_usd=2.0, price=0.01) == 0
    assert room(b, rollouts_used=0, cost_usd=1.0, price=None) is None  # price unknown: not bounded by dollars yet


def test_budget_validation_names_the_field():
    with pytest.raises(ConfigError, match="max_rollouts"):
        Budget(max_rollouts=0)
    with pytest.raises(ConfigError, match="max_cost_usd"):
        Budget(max_cost_usd=float("nan"))


def test_price_estimate_is_the_dearest_seen_with_a_margin_and_ignores_unpriced_failures():
    prices = PriceBook()
    assert prices.estimate("rollout") is None
    prices.observe("rollout", None)  # a failed call with no price says nothing
    assert prices.estimate("rollout") is None
    prices.observe("rollout", 0.02)
    prices.observe("rollout", 0.01)
    assert prices.estimate("rollout") == pytest.approx(0.025)


async def test_rollout_admission_never_passes_max_rollouts():
    ledger = Ledger(Budget(max_rollouts=10))
    assert (await ledger.admit_rollouts(6))[0] == 6
    assert (await ledger.admit_rollouts(6))[0] == 4
    assert (await ledger.admit_rollouts(1))[0] == 0
    assert ledger.rollouts_used == 10 and ledger.exhausted


async def test_first_rollout_under_a_dollar_budget_is_a_probe_then_the_price_bounds_the_rest():
    ledger = Ledger(Budget(max_cost_usd=1.0))
    granted, committed = await ledger.admit_rollouts(50)
    assert (granted, committed) == (1, 0.0)
    waiter = asyncio.ensure_future(ledger.admit_rollouts(50))
    await asyncio.sleep(0)
    assert not waiter.done()  # waits for the probe's price
    ledger.settle("rollout", 0.04, committed=0.0)
    granted, each = await waiter
    assert each == pytest.approx(0.05)
    # $0.96 left at $0.05 each (dearest x 1.25) -> 19 rollouts, never more than the dollars can pay for.
    assert granted == 19


async def test_model_calls_are_admitted_against_dollars_and_refused_without_counting_as_rollouts():
    ledger = Ledger(Budget(max_cost_usd=0.10, max_rollouts=5))
    c = await ledger.admit_call("reflection")
    ledger.settle("reflection", 0.06, committed=c)
    assert ledger.rollouts_used == 0
    with pytest.raises(BudgetExhausted):
        await ledger.admit_call("reflection")  # 0.06 spent + 0.075 expected > 0.10
    # the refusal committed nothing
    assert ledger.cost_usd == pytest.approx(0.06)


async def test_dollars_of_calls_in_flight_bound_new_admissions():
    ledger = Ledger(Budget(max_cost_usd=1.0))
    ledger.prices.observe("rollout", 0.1)
    granted, each = await ledger.admit_rollouts(100)
    assert granted == 8 and each == pytest.approx(0.125)  # 8 x 0.125 = 1.0 committed
    assert (await ledger.admit_rollouts(1))[0] == 0
    for _ in range(8):
        ledger.settle("rollout", 0.1, committed=each)
    assert ledger.cost_usd == pytest.approx(0.8)
    assert (await ledger.admit_rollouts(100))[0] == 1  # $0.20 left buys one more at $0.125
