"""Multi-objective results: a Pareto front over the score and other objectives. Pure.

The objectives are the score (higher is better) plus those a config names: a Score metric's name (higher is
better), `prompt_length` (characters of the instructions, lower is better) or `tokens` (tokens per rollout, lower
is better: what a call costs). A candidate is on the front when no other candidate is at least as good on every
objective and better on one; `best` names the best candidate for each objective.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = ["BUILTIN_OBJECTIVES", "ObjectiveFront", "check_objectives", "dominates", "pareto_front"]

BUILTIN_OBJECTIVES: Mapping[str, int] = {"prompt_length": -1, "tokens": -1}
"""Objectives every run can measure, with their direction (-1: lower is better)."""
SCORE = "score"


def check_objectives(owner: str, objectives: Any) -> tuple[str, ...]:
    if isinstance(objectives, str) or not all(isinstance(o, str) and o for o in objectives):
        raise ConfigError(f"{owner}.objectives must be a tuple of objective names (a Score metric's name, "
                          f"{', '.join(map(repr, BUILTIN_OBJECTIVES))}), but got {objectives!r}")
    names = tuple(dict.fromkeys(objectives))
    if SCORE in names:
        raise ConfigError(f"{owner}.objectives: 'score' is always an objective; name only the others")
    return names


def direction(name: str) -> int:
    return BUILTIN_OBJECTIVES.get(name, 1)


def dominates(a: Mapping[str, float], b: Mapping[str, float], names: Sequence[str]) -> bool:
    """`a` is at least as good as `b` on every objective and better on one."""
    better = False
    for name in names:
        x, y = direction(name) * a[name], direction(name) * b[name]
        if x < y:
            return False
        better = better or x > y
    return better


def pareto_front(points: Mapping[str, Mapping[str, float]], names: Sequence[str]) -> list[str]:
    """The ids of the non-dominated points, in their order."""
    return [cid for cid, p in points.items() if not any(dominates(q, p, names) for o, q in points.items() if o != cid)]


@dataclass(frozen=True)
class ObjectiveFront:
    """The candidates' objective values (`points`, on the samples they were compared on), the Pareto `front` and
    the `best` candidate for each objective (ties: the oldest)."""

    objectives: tuple[str, ...]
    points: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    front: tuple[str, ...] = ()
    best: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, points: Mapping[str, Mapping[str, float]], objectives: Sequence[str]) -> ObjectiveFront:
        names = (SCORE, *objectives)
        usable = {cid: p for cid, p in points.items() if all(n in p for n in names)}
        best = {}
        for name in names:
            if usable:
                top = max(direction(name) * p[name] for p in usable.values())
                best[name] = next(cid for cid, p in usable.items() if direction(name) * p[name] == top)
        return cls(names, usable, tuple(pareto_front(usable, names)), best)

    def to_dict(self) -> dict[str, Any]:
        return {"objectives": list(self.objectives), "points": {k: dict(v) for k, v in self.points.items()},
                "front": list(self.front), "best": dict(self.best)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectiveFront:
        return cls(tuple(data["objectives"]), {str(k): {str(n): float(x) for n, x in v.items()}
                                                for k, v in data.get("points", {}).items()},
                   tuple(data.get("front", ())), {str(k): str(v) for k, v in data.get("best", {}).items()})
