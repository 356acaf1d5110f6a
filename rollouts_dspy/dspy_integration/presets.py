"""`auto="light" | "medium" | "heavy"`: run sizes resolved at the DSPy boundary. Pure functions.

The sizes follow what DSPy users expect from the same word (dspy.GEPA and dspy.MIPROv2 use 6, 12 and 18
candidates), translated into our engines' config fields, and every preset carries a hard rollout budget so a
preset run never costs more than planned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["AUTO_LEVELS", "GEPAPreset", "MIPROPreset", "gepa_preset", "mipro_preset", "resolve_auto"]

AUTO_LEVELS: dict[str, int] = {"light": 6, "medium": 12, "heavy": 18}
"""Candidates proposed per level (the number DSPy's optimizers use for the same level)."""

MIPRO_VAL_SIZE: dict[str, int] = {"light": 100, "medium": 300, "heavy": 1000}
"""At most this many validation examples are used per level (as in MIPROv2)."""

MINIBATCH_SIZE = 35
"""Minibatch used when the training split is larger than this (DSPy's default minibatch)."""


def resolve_auto(auto: str | None, *, default: str | None = "light") -> str | None:
    """Validate an `auto` value; None falls back to `default`."""
    if auto is None:
        return default
    if auto not in AUTO_LEVELS:
        raise ConfigError(f"auto must be one of {sorted(AUTO_LEVELS)} or None, but got {auto!r}")
    return auto


@dataclass(frozen=True)
class GEPAPreset:
    population_size: int
    generations: int
    minibatch_size: int | None
    max_rollouts: int


def gepa_preset(auto: str, *, num_components: int, train_size: int, val_size: int) -> GEPAPreset:
    """GEPA sizes for a level: `n` candidates per level, about log2(n) reflective steps per component.

    The rollout budget is one full validation pass for the start, five per candidate for bootstrapping the
    search, a minibatch per step and a few validation passes, like dspy.GEPA's `auto` budget."""
    n = AUTO_LEVELS[auto]
    steps = int(max(2 * num_components * 2 * math.log2(n), 1.5 * n))
    minibatch = MINIBATCH_SIZE if train_size > MINIBATCH_SIZE else None
    per_step = minibatch or train_size
    val = val_size or train_size
    budget = val + 5 * n + steps * per_step + (steps // 5 + 2) * val
    population = max(4, min(n, 12))
    generations = max(2, math.ceil(steps / max(population - 1, 1)) + 1)
    return GEPAPreset(population, generations, minibatch, budget)


@dataclass(frozen=True)
class MIPROPreset:
    num_candidates: int
    num_demo_sets: int
    num_trials: int
    minibatch_size: int
    val_size: int


def mipro_preset(auto: str, *, num_predictors: int, few_shot: bool, train_size: int) -> MIPROPreset:
    """MIPRO sizes for a level: n demo sets, n (zero-shot) or n/2 instruction candidates, and
    max(2 * variables * log2(n), 1.5 n) trials, variables being instructions (and demo sets) per predictor."""
    n = AUTO_LEVELS[auto]
    variables = num_predictors * (2 if few_shot else 1)
    trials = int(max(2 * variables * math.log2(n), 1.5 * n))
    instructions = max(1, n // 2) if few_shot else n
    return MIPROPreset(instructions, n, trials, min(MINIBATCH_SIZE, max(train_size, 1)), MIPRO_VAL_SIZE[auto])
