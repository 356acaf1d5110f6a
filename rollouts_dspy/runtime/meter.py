"""What a run used, counted once: per role (task, reflection, proposer) calls, tokens, dollars and failures, and
the spend the engines plan with.

Two views of the same work. `usage()` is what was really paid, including every call of a resumed run's earlier
processes (read back from the journal): the usage table a user sees. `spend` is the engine's view: each piece of
work (a rollout of one candidate on one sample, one model answer) counted the first time the engine is served it,
at the price it was paid -- so a resumed run, replaying the engine against the journal, sees the same numbers at
the same points as the run it continues, and makes the same budget decisions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..dtypes import Usage

__all__ = ["Meter", "RoleUsage", "Spend"]


def _priced(usage: Usage) -> bool | None:
    """Whether a piece of work's price is known: True, False (it made calls at an unknown price) or None (it made
    no call, so it says nothing)."""
    if usage.cost_usd is not None:
        return True
    return False if usage.calls else None


@dataclass
class RoleUsage:
    """One role's calls, tokens, dollars, failures and retries: a run's usage table row, and the LLM session's
    own count (`LLMSession.stats`, the only place retries are seen)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True
    failures: int = 0
    retries: int = 0

    def add(self, usage: Usage, *, failed: bool = False) -> None:
        self.calls += usage.calls
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cost_usd += usage.cost_usd or 0.0
        self.cost_known = self.cost_known and _priced(usage) is not False
        self.failures += int(failed)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        if not self.cost_known:
            out["cost_usd"] = None
        return out


@dataclass
class Spend:
    """The engine's view of what the run has used so far (see the module doc)."""

    rollouts: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True

    def add(self, usage: Usage, *, rollouts: int = 0) -> None:
        self.rollouts += rollouts
        self.tokens += usage.total_tokens
        self.cost_usd += usage.cost_usd or 0.0
        self.cost_known = self.cost_known and _priced(usage) is not False

    @property
    def cost(self) -> float | None:
        """Dollars, or None when some call's price is unknown (an unpriced model): never a made-up 0."""
        return self.cost_usd if self.cost_known else None


class Meter:
    """Per-role usage of the whole run and the engine's spend, plus the elapsed time across resumes."""

    def __init__(self, *, elapsed: float = 0.0) -> None:
        self.roles: dict[str, RoleUsage] = {}
        self.spend = Spend()
        self._served: set[tuple[str, Any]] = set()
        self._offset = elapsed
        self._started = time.monotonic()

    def role(self, name: str) -> RoleUsage:
        return self.roles.setdefault(name, RoleUsage())

    def paid(self, role: str, usage: Usage, *, failed: bool = False) -> None:
        """A call (or a rollout's calls) of `role` really happened and cost `usage`."""
        self.role(role).add(usage, failed=failed)

    def served(self, item: tuple[str, Any], usage: Usage, *, rollout: bool) -> None:
        """The engine was handed `item` (('rollout', (key, index)) or ('answer', digest)); counted once."""
        if item in self._served:
            return
        self._served.add(item)
        self.spend.add(usage, rollouts=1 if rollout else 0)

    def add_retries(self, counters: dict[str, dict[str, Any]]) -> None:
        """Retry counts kept by the LLM layer (not visible in the work itself)."""
        for role, c in counters.items():
            self.role(role).retries = int(c.get("retries", 0))

    def usage(self) -> dict[str, dict[str, Any]]:
        return {role: u.to_dict() for role, u in sorted(self.roles.items())}

    @property
    def elapsed(self) -> float:
        return self._offset + time.monotonic() - self._started
