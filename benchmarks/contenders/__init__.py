"""The contender registry: one small adapter per optimizer, all with the same shape.

`run(ctx) -> ContenderResult` where `ctx` carries the world, the rollout budget, the seed, the latency, the
concurrency and the measured server's URL. An adapter returns the final candidate spec (see `evaluator`) plus
the optimizer's own counters, and optionally other candidates' specs to score on the held-out rows too
(`also_score`, by name: the worker records their scores as `also_val`); the worker adds the meter's and the
server's counts and the timings. A contender that cannot run a world says why (`unsupported(world) -> reason |
None`): the table shows n/a. A contender with `every_suite=False` runs only in the suites that name it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..worlds import World

__all__ = ["CONTENDERS", "Contender", "ContenderResult", "RunContext", "all_names", "get", "grid_names"]


@dataclass(frozen=True)
class RunContext:
    world: World
    budget: int
    seed: int
    latency: float
    concurrency: int
    base_url: str


@dataclass
class ContenderResult:
    final_spec: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    also_score: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Contender:
    name: str
    kind: str  # "gepa" | "mipro"
    ours: bool
    spec_kind: str  # "messages" (a prompt prefix) | "dspy" (a DSPy program's instructions and demos)
    run: Callable[[RunContext], ContenderResult]
    unsupported: Callable[[World], str | None] = lambda world: None
    available: Callable[[], str | None] = lambda: None  # None when importable, else why not
    validation: str = ""  # how it validates given only the training rows (BENCHMARKS.md shows it)
    every_suite: bool = True  # False: a variant measured only by the suites that name it (not the grid)
    like: str | None = None  # the contender it is a variant of: `--plan` estimates from its runs until it has own

    def start_spec(self, world: World) -> dict[str, Any]:
        """The candidate spec of the weak starting prompt, in this contender's own format (its gain is measured
        from it)."""
        if self.spec_kind == "dspy":
            from ..dspy_side import IntentProgram, program_spec

            return program_spec(IntentProgram(world.instruction))
        from ..evaluator import messages_spec

        return messages_spec([{"role": "system", "content": world.instruction}])


def _registry() -> dict[str, Contender]:
    from . import front, ours, peers

    out: dict[str, Contender] = {}
    for module in (ours, peers, front):
        for contender in module.CONTENDERS:
            out[contender.name] = contender
    return out


CONTENDERS: dict[str, Contender] = {}


def get(name: str) -> Contender:
    if not CONTENDERS:
        CONTENDERS.update(_registry())
    if name not in CONTENDERS:
        raise KeyError(f"unknown contender {name!r}; valid: {', '.join(sorted(CONTENDERS))}")
    return CONTENDERS[name]


def all_names() -> list[str]:
    if not CONTENDERS:
        CONTENDERS.update(_registry())
    return list(CONTENDERS)


def grid_names() -> list[str]:
    """The contenders a suite that names none runs: every one but the variants (`every_suite=False`)."""
    return [name for name in all_names() if CONTENDERS[name].every_suite]
