"""The one observation channel: engines' shells emit typed, frozen events; progress displays, logs and JSON run
logs subscribe. Nothing here prints unless a reporter is installed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from .types import GenerationStats

__all__ = [
    "BudgetUpdated",
    "CandidateDropped",
    "Event",
    "LinePrinter",
    "PhaseStarted",
    "Reporter",
    "RunFinished",
    "RunStarted",
    "RunWarning",
    "StepFinished",
    "format_cost",
]


@dataclass(frozen=True)
class RunStarted:
    method: str
    max_steps: int
    max_rollouts: int | None
    estimate: Mapping[str, Any] = field(default_factory=dict)  # planned calls by role, from the dry-run estimate


@dataclass(frozen=True)
class StepFinished:
    """A generation (GEPA) or trial (MIPRO) finished; `stats` has its scores and the run's usage so far."""

    method: str
    stats: GenerationStats
    best_so_far: float | None


@dataclass(frozen=True)
class BudgetUpdated:
    """The run's spend after a step or during a long phase. `cost_usd` is None when a price is unknown."""

    rollouts_used: int
    max_rollouts: int | None
    cost_usd: float | None
    tokens: int = 0


@dataclass(frozen=True)
class PhaseStarted:
    """A phase that spends rollouts begins (e.g. 'bootstrap', 'proposals', 'search', 'full evaluation',
    'validation'); `planned` is how many rollouts it may use at most (None: not known in advance)."""

    method: str
    phase: str
    planned: int | None = None


@dataclass(frozen=True)
class CandidateDropped:
    """A candidate was not made (its reflection or proposal failed or was rejected); `reasons` say why."""

    method: str
    step: int
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class RunWarning:
    """Something a user should know that does not stop the run (e.g. train/validation overlap)."""

    message: str


@dataclass(frozen=True)
class RunFinished:
    method: str
    best_score: float | None
    stop_reason: str
    rollouts_used: int


Event = RunStarted | StepFinished | BudgetUpdated | PhaseStarted | CandidateDropped | RunWarning | RunFinished
"""Every event type; reporters ignore the ones they do not know."""
Reporter = Callable[[Event], None]


class LinePrinter:
    """One plain line per step, for logs and non-terminals."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        out = self.stream or sys.stderr
        if isinstance(event, RunStarted):
            budget = f", budget {event.max_rollouts} rollouts" if event.max_rollouts else ""
            steps = {"gepa": "generations", "mipro": "trials"}.get(event.method, "steps")
            print(f"[{event.method}] starting: up to {event.max_steps} {steps}{budget}", file=out, flush=True)
            if event.estimate:
                parts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in event.estimate.items())
                print(f"[{event.method}] estimate (upper bounds): {parts}", file=out, flush=True)
        elif isinstance(event, PhaseStarted):
            planned = "" if event.planned is None else f" (up to {event.planned} rollouts)"
            print(f"[{event.method}] {event.phase}{planned}", file=out, flush=True)
        elif isinstance(event, CandidateDropped):
            print(f"[{event.method}] step {event.step}: candidate dropped ({'; '.join(event.reasons)[:200]})",
                  file=out, flush=True)
        elif isinstance(event, StepFinished):
            s = event.stats
            step = "generation" if event.method == "gepa" else "trial"
            best = "n/a" if event.best_so_far is None else f"{event.best_so_far:.3f}"
            print(
                f"[{event.method}] {step} {s.generation}: best {s.best_score:.3f} mean {s.mean_score:.3f} "
                f"(best so far {best}) | rollouts {s.rollouts_used} | tokens {s.tokens} | "
                f"cost {format_cost(s.cost_usd)} | {s.elapsed_seconds:.1f}s",
                file=out, flush=True,
            )
        elif isinstance(event, RunWarning):
            print(f"warning: {event.message}", file=out, flush=True)
        elif isinstance(event, RunFinished):
            best = "n/a" if event.best_score is None else f"{event.best_score:.3f}"
            print(f"[{event.method}] done ({event.stop_reason}): best {best}, {event.rollouts_used} rollouts",
                  file=out, flush=True)


def format_cost(cost_usd: float | None) -> str:
    """'$0.0123', or 'unknown' when the price of some call is not known (an unpriced model): never a made-up $0.
    The one wording of a cost, for every display."""
    return "unknown" if cost_usd is None else f"${cost_usd:.4f}"
