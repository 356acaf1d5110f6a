"""Pure decisions of the MIPRO search: which samples a trial sees, how many trials run at once, when a full
evaluation is due and of which combination, which combinations are validated, and what the budget allows."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

__all__ = [
    "MAX_TRIALS_PER_BATCH", "batch_seed", "choose_best", "full_eval_due", "mean", "minibatch", "pick_for_full_eval",
    "rank_combinations", "room_for_search", "trials_per_batch", "validation_choices", "validation_reserve",
]

MAX_TRIALS_PER_BATCH = 4
"""TPE learns only from told trials: more than a few trials per batch would make the search mostly blind."""


def mean(scores: Mapping[int, float]) -> float | None:
    return sum(scores.values()) / len(scores) if scores else None


def minibatch(train: Sequence[int], size: int, seed: int, trial: int) -> tuple[int, ...]:
    """The training samples trial `trial` is scored on: a seeded sample of `size` (all of them when the split
    is smaller), in the split's order so the rollouts' order never depends on the draw."""
    if size >= len(train):
        return tuple(train)
    picked = set(random.Random(f"mipro-minibatch:{seed}:{trial}").sample(range(len(train)), size))
    return tuple(s for k, s in enumerate(train) if k in picked)


def trials_per_batch(max_concurrent: int, minibatch_size: int, num_train: int, override: int | None = None) -> int:
    """How many trials are asked together and run concurrently: enough to keep `max_concurrent` calls busy
    (one trial runs min(minibatch_size, num_train) rollouts at once), at most MAX_TRIALS_PER_BATCH."""
    if override is not None:
        return override
    per_trial = max(1, min(minibatch_size, num_train))
    return max(1, min(MAX_TRIALS_PER_BATCH, max_concurrent // per_trial))


def batch_seed(seed: int, first_trial: int) -> int:
    """The TPE sampler's seed for the batch starting at `first_trial`: a fresh seeded sampler per batch makes
    a resumed study sample exactly what an uninterrupted one would."""
    return (seed * 1_000_003 + first_trial) % (2**31 - 1)


def full_eval_due(done_before: int, done_after: int, every: int, num_trials: int) -> bool:
    """A full evaluation follows the batch that completed a multiple of `every` trials, and the last batch."""
    return done_after // every > done_before // every or (done_after >= num_trials > done_before)


def pick_for_full_eval(
    minibatch_scores: Mapping[str, Mapping[int, float]], order: Sequence[str], fully_evaluated: set[str]
) -> str | None:
    """The combination with the best mean minibatch score that has not had its full evaluation (ties: the one
    first tried, i.e. earliest in `order`); None when every scored combination already had one."""
    best: tuple[float, int, str] | None = None
    for rank, combo in enumerate(order):
        m = mean(minibatch_scores.get(combo, {}))
        if combo in fully_evaluated or m is None:
            continue
        if best is None or (m, -rank) > (best[0], -best[1]):
            best = (m, rank, combo)
    return best[2] if best else None


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


def validation_reserve(num_val: int, num_top: int) -> int:
    """Rollouts held back for the final validation: the top combinations plus the initial one."""
    return (num_top + 1) * num_val


def room_for_search(
    *, max_rollouts: int | None, rollouts_used: int, max_cost_usd: float | None, cost_usd: float,
    avg_rollout_cost: float, reserve: int,
) -> int | None:
    """New rollouts the search may still start while keeping `reserve` for validation; None when unlimited.
    Under a dollar budget the room is what the remaining dollars buy at the average rollout price so far."""
    room: int | None = None
    if max_rollouts is not None:
        room = max_rollouts - rollouts_used - reserve
    if max_cost_usd is not None and avg_rollout_cost > 0:
        by_cost = math.floor((max_cost_usd - cost_usd) / avg_rollout_cost) - reserve
        room = by_cost if room is None else min(room, by_cost)
    if max_cost_usd is not None and cost_usd >= max_cost_usd:
        room = 0
    return None if room is None else max(room, 0)
