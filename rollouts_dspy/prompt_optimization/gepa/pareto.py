"""Per-sample Pareto bookkeeping and parent sampling. Pure functions of score tables and a seeded RNG.

GEPA's key selection idea: a candidate that is the best on *some* training sample keeps what it learned there, even
when its mean is lower, so it stays eligible as a parent. Parents are drawn in proportion to the number of samples
they win, after dropping the candidates whose every win is shared with another survivor (they add nothing).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["best_per_sample", "complementary_parent", "frontier", "sample_parent"]

TIE = 1e-9
"""Scores closer than this are ties (every tied candidate wins the sample)."""

Scores = Mapping[str, Mapping[int, float]]
"""candidate id -> {sample index -> measured score}; insertion order is the candidates' age (oldest first)."""


def best_per_sample(scores: Scores, indices: Iterable[int]) -> dict[int, frozenset[str]]:
    """For each sample with at least one measured score, the ids of the candidates that score best on it."""
    out: dict[int, frozenset[str]] = {}
    for i in indices:
        measured = [(cid, s[i]) for cid, s in scores.items() if i in s]
        if not measured:
            continue
        top = max(v for _, v in measured)
        out[i] = frozenset(cid for cid, v in measured if v >= top - TIE)
    return out


def _mean(values: Mapping[int, float]) -> float:
    return sum(values.values()) / len(values) if values else float("-inf")


def frontier(scores: Scores, indices: Sequence[int]) -> dict[str, frozenset[int]]:
    """The surviving Pareto candidates, each with the samples it wins (ordered by the candidates' age).

    A candidate is dropped when every sample it wins is also won by another survivor; the weakest (lowest mean,
    then youngest) are considered first, so a covering set of strong candidates remains.
    """
    best = best_per_sample(scores, indices)
    wins: dict[str, set[int]] = {cid: set() for cid in scores}
    for i, ids in best.items():
        for cid in ids:
            wins[cid].add(i)
    alive = {cid for cid, w in wins.items() if w}
    age = {cid: n for n, cid in enumerate(scores)}
    for cid in sorted(alive, key=lambda c: (_mean(scores[c]), -age[c])):
        if all(any(o in alive and o != cid for o in best[i]) for i in wins[cid]):
            alive.discard(cid)
    return {cid: frozenset(wins[cid]) for cid in scores if cid in alive}


def sample_parent(rng: random.Random, wins: Mapping[str, frozenset[int]]) -> str:
    """A parent drawn with probability proportional to its number of won samples."""
    if not wins:
        raise ValueError("sample_parent needs at least one frontier candidate")
    ids = list(wins)
    return rng.choices(ids, weights=[max(len(wins[c]), 1) for c in ids], k=1)[0]


def complementary_parent(
    rng: random.Random, wins: Mapping[str, frozenset[int]], first: str, others: Sequence[str] = ()
) -> str | None:
    """A second parent for a merge: preferably one winning samples `first` does not (weighted by how many);
    else any other frontier candidate by its wins; else the first of `others` (e.g. the best by mean) that is not
    `first`; None when there is no other candidate at all."""
    own = wins.get(first, frozenset())
    rivals = [c for c in wins if c != first]
    gains = [len(wins[c] - own) for c in rivals]
    if rivals and any(gains):
        return rng.choices(rivals, weights=gains, k=1)[0]
    if rivals:
        return rng.choices(rivals, weights=[max(len(wins[c]), 1) for c in rivals], k=1)[0]
    return next((c for c in others if c != first), None)
