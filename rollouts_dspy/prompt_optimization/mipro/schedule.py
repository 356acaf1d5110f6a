"""Pure decisions of the MIPRO search: which samples a trial sees, how many trials are in flight, when a full
evaluation is due and of which combination, how combinations rank, which are validated and which one wins."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

from ..types import mean_of

__all__ = [
    "MAX_TRIALS_IN_FLIGHT", "batch_seed", "choose_best", "full_eval_due", "minibatch", "pick_for_full_eval",
    "rank_combinations", "trials_in_flight", "validation_choices",
]

MAX_TRIALS_IN_FLIGHT = 6
"""TPE learns only from told trials: with more trials asked ahead of their results the search gets blind."""


def minibatch(train: Sequence[int], size: int, seed: int, trial: int) -> tuple[int, ...]:
    """The training samples trial `trial` is scored on: a seeded sample of `size` (all of them when the split
    is smaller), in the split's order so the rollouts' order never depends on the draw."""
    if size >= len(train):
        return tuple(train)
    picked = set(random.Random(f"mipro-minibatch:{seed}:{trial}").sample(range(len(train)), size))
    return tuple(s for k, s in enumerate(train) if k in picked)


def trials_in_flight(max_concurrent: int, minibatch_size: int, num_train: int, override: int | None = None) -> int:
    """How many trials run at once: one more than fill `max_concurrent` calls (one trial runs
    min(minibatch_size, num_train) rollouts), so the next trial's calls are queued when a slot frees up; at most
    MAX_TRIALS_IN_FLIGHT. Trial t is asked when trial t - this number was told (see runner)."""
    if override is not None:
        return override
    per_trial = max(1, min(minibatch_size, num_train))
    return max(1, min(MAX_TRIALS_IN_FLIGHT, math.ceil(max_concurrent / per_trial) + 1))


def batch_seed(seed: int, trial: int) -> int:
    """The TPE sampler's seed for asking trial `trial`: a fresh seeded sampler per ask makes every ask a function
    of the told trials only, so a replayed (resumed) study samples exactly what the uninterrupted one did."""
    return (seed * 1_000_003 + trial) % (2**31 - 1)


def full_eval_due(trial: int, every: int, num_trials: int) -> bool:
    """A full evaluation follows every `every`-th trial and the last one."""
    return (trial + 1) % every == 0 or trial + 1 == num_trials


def pick_for_full_eval(
    minibatch_scores: Mapping[str, Mapping[int, float]], order: Sequence[str], fully_evaluated: set[str]
) -> str | None:
    """The combination with the best mean minibatch score that has not had its full evaluation (ties: the one
    first tried, i.e. earliest in `order`); None when every scored combination already had one."""
    best: tuple[float, str] | None = None
    for combo in order:
        m = mean_of(minibatch_scores.get(combo, {}))
        if combo in fully_evaluated or m is None:
            continue
        if best is None or m > best[0]:
            best = (m, combo)
    return best[1] if best else None


def rank_combinations(
    minibatch_means: Mapping[str, float | None], full_means: Mapping[str, float | None], order: Sequence[str]
) -> list[str]:
    """Fully evaluated combinations by their full mean, then the rest by minibatch mean (ties: first tried)."""
    position = {c: k for k, c in enumerate(order)}
    full = [c for c in order if full_means.get(c) is not None]
    rest = [c for c in order if c not in full and minibatch_means.get(c) is not None]
    full.sort(key=lambda c: (-full_means[c], position[c]))  # type: ignore[operator]
    rest.sort(key=lambda c: (-minibatch_means[c], position[c]))  # type: ignore[operator]
    return full + rest


def validation_choices(ranked: Sequence[str], initial: str, n: int) -> list[str]:
    """The top `n` combinations, plus the initial one (so the result is never worse on validation than the
    starting point)."""
    chosen = list(ranked[:n])
    if initial not in chosen:
        chosen.append(initial)
    return chosen


def choose_best(val_means: Mapping[str, float | None], candidates: Sequence[str]) -> str:
    """The best validation mean among `candidates` (ties: earlier in `candidates`, i.e. better ranked on
    training); `candidates[0]` when none was measured."""
    best = candidates[0]
    best_mean = val_means.get(best)
    for c in candidates[1:]:
        m = val_means.get(c)
        if m is not None and (best_mean is None or m > best_mean):
            best, best_mean = c, m
    return best
