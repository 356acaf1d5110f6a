"""The hard budget of a run and the one place that admits paid calls.

`room` is the one decision "how many more rollouts may start": engines call it with their own (deterministic)
counts when they plan, the `Ledger` calls it with what was really paid when a call is about to start. Rollouts
count against `max_rollouts` the moment they are admitted (the provider is called, whatever comes back); dollars
against `max_cost_usd` as an estimate while a call is in flight (`PriceBook`) and as the real price once it
returns. Reflection and proposer calls are admitted against the dollars too, never counted as rollouts.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from ..errors import ConfigError
from .errors import BudgetExhausted
from .prices import PriceBook

__all__ = ["ROLLOUT", "Budget", "Ledger", "room"]

ROLLOUT = "rollout"
"""The price kind of a task rollout (other kinds are the model roles: 'reflection', 'proposer')."""


@dataclass(frozen=True, kw_only=True)
class Budget:
    """Limits for one run; None means unlimited."""

    max_rollouts: int | None = None
    max_cost_usd: float | None = None

    def __post_init__(self) -> None:
        if self.max_rollouts is not None and (isinstance(self.max_rollouts, bool)
                                              or not isinstance(self.max_rollouts, int) or self.max_rollouts < 1):
            raise ConfigError(f"max_rollouts must be an integer >= 1 or None, but got {self.max_rollouts!r}")
        cost = self.max_cost_usd
        if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float))
                                 or not math.isfinite(cost) or cost <= 0):
            raise ConfigError(f"max_cost_usd must be a number > 0 or None, but got {cost!r}")

    @property
    def unlimited(self) -> bool:
        return self.max_rollouts is None and self.max_cost_usd is None


def room(budget: Budget, *, rollouts_used: int, cost_usd: float, pending_rollouts: int = 0,
         pending_usd: float = 0.0, reserve: int = 0, price: float | None = None) -> int | None:
    """How many more rollouts may start (None: unbounded). `pending_*` are granted but unfinished; `reserve`
    rollouts are kept back (e.g. for validation) -- under a dollar budget they are kept back as dollars at
    `price`, the expected cost of one rollout (None: not known yet, so dollars do not bound the count yet)."""
    out: int | None = None
    if budget.max_rollouts is not None:
        out = budget.max_rollouts - rollouts_used - pending_rollouts - reserve
    if budget.max_cost_usd is not None:
        left = budget.max_cost_usd - cost_usd - pending_usd
        if left <= 0:
            out = 0
        elif price:
            by_cost = math.floor(left / price) - reserve
            out = by_cost if out is None else min(out, by_cost)
    return None if out is None else max(out, 0)


class Ledger:
    """What a run has paid for, and admission of every new paid call (async: a call whose price is not known
    yet waits for the one probe call of its kind to come back)."""

    def __init__(self, budget: Budget, *, rollouts_used: int = 0, cost_usd: float = 0.0) -> None:
        self.budget = budget
        self.rollouts_used = rollouts_used
        self.cost_usd = cost_usd
        self.prices = PriceBook()
        self._pending: dict[str, int] = {}  # kind -> calls granted and not settled
        self._pending_usd = 0.0
        self._settled = asyncio.Event()

    # -- what is left --------------------------------------------------------------------------------------
    def room(self) -> int | None:
        """Rollouts that may still start now."""
        return room(self.budget, rollouts_used=self.rollouts_used, cost_usd=self.cost_usd,
                    pending_usd=self._pending_usd, price=self.prices.estimate(ROLLOUT))

    @property
    def exhausted(self) -> bool:
        return self.room() == 0

    # -- admission -----------------------------------------------------------------------------------------
    async def admit_rollouts(self, n: int) -> tuple[int, float]:
        """Grant up to `n` rollouts now: (how many, the dollars committed for each -- give it back to `settle`).
        0 granted when the budget is spent. Under a dollar budget and before a rollout had a price, one is
        granted while it is in flight; the others wait for its price."""
        if n <= 0:
            return 0, 0.0
        if self.budget.max_cost_usd is not None:
            while self.prices.estimate(ROLLOUT) is None and self._pending.get(ROLLOUT, 0) > 0:
                await self._wait()
            if self.prices.estimate(ROLLOUT) is None:
                n = 1
        return self.grant_rollouts(n)

    def grant_rollouts(self, n: int) -> tuple[int, float]:
        """The admission decision itself, once the caller has applied the probe rule: grant up to `n` rollouts
        against what is left now and commit each at the estimated price (a shared study's ledger makes the same
        decision over the counters it loaded from its database)."""
        left = self.room()
        granted = n if left is None else min(n, left)
        price = self.prices.estimate(ROLLOUT) or 0.0
        self.rollouts_used += granted
        self._pending[ROLLOUT] = self._pending.get(ROLLOUT, 0) + granted
        self._pending_usd += granted * price
        return granted, price

    async def admit_call(self, kind: str) -> float:
        """Admit one model call of `kind` ('reflection', 'proposer') against the dollars; raises BudgetExhausted
        when they cannot pay for it. Returns the estimate committed for it (give it back to `settle`)."""
        if self.budget.max_cost_usd is None:
            self._pending[kind] = self._pending.get(kind, 0) + 1
            return 0.0
        while self.prices.estimate(kind) is None and self._pending.get(kind, 0) > 0:
            await self._wait()
        return self.grant_call(kind)

    def grant_call(self, kind: str) -> float:
        """The dollar decision of `admit_call` once the probe rule is applied (raises BudgetExhausted)."""
        assert self.budget.max_cost_usd is not None
        price = self.prices.estimate(kind) or 0.0
        if self.cost_usd + self._pending_usd + price >= self.budget.max_cost_usd:
            raise BudgetExhausted(f"the dollar budget (max_cost_usd={self.budget.max_cost_usd}) cannot pay for "
                                  f"another {kind} call")
        self._pending[kind] = self._pending.get(kind, 0) + 1
        self._pending_usd += price
        return price

    def settle(self, kind: str, cost_usd: float | None, *, committed: float) -> None:
        """A granted call of `kind` finished (or was cancelled) having cost `cost_usd` (None: unknown or nothing
        charged); `committed` is the estimate its admission returned."""
        self._pending[kind] = max(self._pending.get(kind, 0) - 1, 0)
        self._pending_usd = max(self._pending_usd - committed, 0.0) if any(self._pending.values()) else 0.0
        if cost_usd:
            self.cost_usd += cost_usd
        self.prices.observe(kind, cost_usd)
        self._settled.set()

    async def _wait(self) -> None:
        self._settled.clear()
        await self._settled.wait()
