"""The hard budget: task rollouts and dollars. Pure bookkeeping, no I/O.

Rollouts are *reserved* before they are launched, so concurrent evaluations can never overshoot
`max_rollouts`. Dollars are known only after a call returns; a reservation is refused once the dollars spent plus
the expected cost of the rollouts in flight (their running average) would pass `max_cost_usd`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["Budget", "BudgetLedger"]


@dataclass(frozen=True, kw_only=True)
class Budget:
    """Limits for one run; None means unlimited."""

    max_rollouts: int | None = None
    max_cost_usd: float | None = None

    def __post_init__(self) -> None:
        if self.max_rollouts is not None and (isinstance(self.max_rollouts, bool) or self.max_rollouts < 1):
            raise ConfigError(f"max_rollouts must be >= 1 or None, but got {self.max_rollouts!r}")
        if self.max_cost_usd is not None and not self.max_cost_usd > 0:
            raise ConfigError(f"max_cost_usd must be > 0 or None, but got {self.max_cost_usd!r}")


class BudgetLedger:
    """What a run has used of its Budget. `rollouts_used` counts granted task rollouts (a granted rollout that
    then failed still used budget: the provider was called)."""

    def __init__(self, budget: Budget, *, rollouts_used: int = 0, cost_usd: float = 0.0) -> None:
        self.budget = budget
        self.rollouts_used = rollouts_used
        self.cost_usd = cost_usd
        self._in_flight = 0
        self._charged_rollouts = 0
        self._rollout_cost = 0.0

    def reserve(self, n: int) -> int:
        """Grant up to `n` rollouts now; returns how many were granted (0 when the budget is spent)."""
        granted = n
        if self.budget.max_rollouts is not None:
            granted = min(granted, self.budget.max_rollouts - self.rollouts_used)
        if self.budget.max_cost_usd is not None:
            avg = self._rollout_cost / self._charged_rollouts if self._charged_rollouts else 0.0
            room = self.budget.max_cost_usd - self.cost_usd - avg * self._in_flight
            if room <= 0:
                granted = 0
            elif avg > 0:
                granted = min(granted, int(room // avg))
        granted = max(granted, 0)
        self.rollouts_used += granted
        self._in_flight += granted
        return granted

    def settle(self, cost_usd: float | None) -> None:
        """A reserved rollout finished and cost this much (None: unknown price)."""
        self._in_flight = max(self._in_flight - 1, 0)
        if cost_usd:
            self.cost_usd += cost_usd
            self._rollout_cost += cost_usd
        self._charged_rollouts += 1

    def charge(self, cost_usd: float | None) -> None:
        """Dollars spent outside rollouts (reflection, proposals)."""
        if cost_usd:
            self.cost_usd += cost_usd

    @property
    def exhausted(self) -> bool:
        if self.budget.max_rollouts is not None and self.rollouts_used >= self.budget.max_rollouts:
            return True
        return self.budget.max_cost_usd is not None and self.cost_usd >= self.budget.max_cost_usd

    def remaining_rollouts(self) -> int | None:
        if self.budget.max_rollouts is None:
            return None
        return max(self.budget.max_rollouts - self.rollouts_used, 0)
