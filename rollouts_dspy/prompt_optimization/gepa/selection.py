"""Elites: the best candidates carried unchanged into the next generation. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...errors import ConfigError
from ..types import PromptTemplate

__all__ = ["rank_by_mean", "select_elites"]


def select_elites(population: Sequence[PromptTemplate], n: int) -> list[PromptTemplate]:
    """The `n` best templates by `score`, best first, unchanged. Unscored templates (score None) come last;
    ties keep their order in `population`, so the result is deterministic."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"select_elites: n must be an integer >= 0, but got {n!r}")
    order = sorted(range(len(population)),
                   key=lambda i: (population[i].score is None, -(population[i].score or 0.0), i))
    return [population[i] for i in order[:n]]


def rank_by_mean(means: Mapping[str, float | None]) -> list[str]:
    """Candidate ids best first by mean score; unscored ones last; ties keep the mapping's order (oldest first)."""
    ranked = sorted(enumerate(means.items()), key=lambda e: (e[1][1] is None, -(e[1][1] or 0.0), e[0]))
    return [cid for _, (cid, _) in ranked]
