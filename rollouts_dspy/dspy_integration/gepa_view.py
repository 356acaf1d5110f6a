"""The engine's compared candidates as dspy.GEPA indexes its candidate pool: the one place that decides which
candidates are in the pool, in which order, and how their per-instance and per-objective scores aggregate. Both
`detailed_results` (after the run) and the state a DSPy component selector reads (during it) are views of this.

The pool is the candidates the engine compared, i.e. scored on every sample of the Pareto set (dspy.GEPA's
candidates scored on the valset), in the order they joined the comparison: the seed program first. Scores are
keyed by instance id (the position in the valset, or in the trainset when candidates are compared on training
samples) and cover the samples candidates were compared on: a sample of the valset when it is larger than the
engine's `pareto_size`. A rollout whose score was not measured (a provider failure) has no entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..prompt_optimization.types import CandidateRecord

__all__ = ["Pool", "instance_fronts", "mean_scores"]

K = TypeVar("K")


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("-inf")  # gepa's average of no samples


def _best(values: Sequence[Mapping[K, float]]) -> dict[K, set[int]]:
    """For each key, the positions whose value is the highest (exact ties, as gepa keeps its fronts)."""
    fronts: dict[K, set[int]] = {}
    for key in dict.fromkeys(k for v in values for k in v):
        top = max(v[key] for v in values if key in v)
        fronts[key] = {k for k, v in enumerate(values) if key in v and v[key] == top}
    return fronts


def mean_scores(subscores: Sequence[Mapping[int, float]]) -> list[float]:
    """Each candidate's mean over its measured instances (-inf without any, as gepa averages no samples)."""
    return [_mean(s.values()) for s in subscores]


def instance_fronts(subscores: Sequence[Mapping[int, float]]) -> dict[int, set[int]]:
    """For each instance with a measured score, the candidates with the highest score there."""
    return dict(sorted(_best(subscores).items()))


@dataclass(frozen=True)
class Pool:
    """Compared candidates in dspy.GEPA's order, with their scores by instance id (see the module doc)."""

    records: tuple[CandidateRecord, ...]
    subscores: tuple[dict[int, float], ...]
    objectives: tuple[dict[int, dict[str, float]], ...]

    @classmethod
    def of(cls, records: Iterable[CandidateRecord], compared: Iterable[int], split: str,
           instance_id: Callable[[int], int]) -> Pool:
        """The pool of `records` compared on dataset indices `compared` of `split` ('train' | 'val'). The initial
        candidate is always first, even when its comparison could not be completed."""
        chosen = [r for r in records if r.compared_at is not None or r.origin == "initial"]
        chosen.sort(key=lambda r: (r.origin != "initial", r.compared_at or 0))  # stable: ties keep discovery order
        indices = sorted(set(compared))
        subscores, objectives = [], []
        for r in chosen:
            scores = r.val_scores if split == "val" else r.train_scores
            per = r.val_objectives if split == "val" else r.train_objectives
            subscores.append({instance_id(i): float(scores[i]) for i in indices if i in scores})
            objectives.append({instance_id(i): dict(per[i]) for i in indices if i in per})
        return cls(tuple(chosen), tuple(subscores), tuple(objectives))

    def index(self, candidate_id: str) -> int | None:
        return next((k for k, r in enumerate(self.records) if r.id == candidate_id), None)

    def parents(self) -> list[list[int | None]]:
        """Each candidate's parents as pool positions; `[None]` for the seed."""
        return [[self.index(p) for p in r.parents] or [None] for r in self.records]

    def aggregate_scores(self) -> list[float]:
        return mean_scores(self.subscores)

    def instance_fronts(self) -> dict[int, set[int]]:
        return instance_fronts(self.subscores)

    def discovery_counts(self) -> list[int]:
        """Rollouts used when each candidate joined the comparison (0 for the seed)."""
        return [r.compared_at or 0 for r in self.records]

    def objective_aggregates(self) -> list[dict[str, float]]:
        """Per candidate, each objective's mean over the instances that report it (gepa's aggregation)."""
        out = []
        for per in self.objectives:
            names = dict.fromkeys(n for scores in per.values() for n in scores)
            out.append({n: _mean(s[n] for s in per.values() if n in s) for n in names})
        return out

    def objective_fronts(self) -> tuple[dict[str, set[int]], dict[str, float]]:
        """(the candidates with the best aggregate per objective, that best aggregate per objective)."""
        aggregates = self.objective_aggregates()
        best = _best(aggregates)
        return best, {name: aggregates[next(iter(ks))][name] for name, ks in best.items()}
