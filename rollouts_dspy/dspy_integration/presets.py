"""`auto="light" | "medium" | "heavy"`: run sizes resolved at the DSPy boundary. Pure functions.

The sizes follow what DSPy users expect from the same word (dspy.GEPA and dspy.MIPROv2 use 6, 12 and 18
candidates), translated into our engines' config fields, and every preset carries a hard rollout budget no larger
than the call count of the DSPy optimizer it replaces, so a preset run never costs more than planned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["AUTO_LEVELS", "MIPROPreset", "gepa_auto_budget", "mipro_evaluation_calls", "mipro_preset", "resolve_auto"]

AUTO_LEVELS: dict[str, int] = {"light": 6, "medium": 12, "heavy": 18}
"""Candidates proposed per level (the number DSPy's optimizers use for the same level)."""

MIPRO_VAL_SIZE: dict[str, int] = {"light": 100, "medium": 300, "heavy": 1000}
"""At most this many validation examples are used per level (as in MIPROv2)."""

MINIBATCH_SIZE = 35
"""DSPy's default minibatch size."""
MIN_MINIBATCH_SIZE = 50
"""MIPROv2 evaluates trials on minibatches only when its (trimmed) valset is larger than this."""


def resolve_auto(auto: str | None, *, default: str | None = "light") -> str | None:
    """Validate an `auto` value; None falls back to `default`."""
    if auto is None:
        return default
    if auto not in AUTO_LEVELS:
        raise ConfigError(f"auto must be one of {sorted(AUTO_LEVELS)} or None, but got {auto!r}")
    return auto


def gepa_auto_budget(auto: str, *, num_components: int, val_size: int) -> int:
    """The rollouts `auto` gives RolloutsGEPA: dspy.GEPA's own metric-call budget for the same level, program
    and validation set (its `auto_budget`), a hard cap here. dspy.GEPA stops only after the iteration that
    crosses it, so its real call count is at least this (measured in tests/dspy_integration/test_budgets.py)."""
    import dspy

    return int(dspy.GEPA.auto_budget(None, num_preds=max(num_components, 1), num_candidates=AUTO_LEVELS[auto],
                                     valset_size=val_size))


@dataclass(frozen=True)
class MIPROPreset:
    num_candidates: int
    num_demo_sets: int
    num_trials: int
    minibatch_size: int
    val_size: int
    max_rollouts: int


def mipro_trials(auto: str, *, num_predictors: int, few_shot: bool) -> int:
    """MIPROv2's trial count for a level: max(2 * variables * log2(n), 1.5 n), variables being instructions
    (and demo sets) per predictor."""
    n = AUTO_LEVELS[auto]
    variables = num_predictors * (2 if few_shot else 1)
    return int(max(2 * variables * math.log2(n), 1.5 * n))


def mipro_evaluation_calls(*, num_trials: int, val_size: int, minibatch_size: int, full_eval_steps: int) -> int:
    """The program runs MIPROv2 makes to evaluate, for an auto level (it trims the valset and uses minibatches
    only when more than MIN_MINIBATCH_SIZE examples remain): the default program's full evaluation, one
    evaluation per trial, and the periodic full evaluations. Demo bootstrapping comes on top, so MIPROv2's
    real count is never smaller (measured in tests/dspy_integration/test_budgets.py)."""
    if val_size <= MIN_MINIBATCH_SIZE:
        return val_size + num_trials * val_size
    steps = full_eval_steps
    total = num_trials + num_trials // steps + 1 + (1 if num_trials % steps else 0)
    number, fulls = 1, 0
    for _ in range(num_trials):  # Optuna numbers trials in order; each full evaluation adds one
        trial_num, number = number + 1, number + 1
        if trial_num % (steps + 1) == 0 or trial_num == total - 1:
            fulls, number = fulls + 1, number + 1
    return val_size + num_trials * minibatch_size + fulls * val_size


def mipro_preset(auto: str, *, num_predictors: int, few_shot: bool, train_size: int, val_size: int,
                 minibatch_size: int = MINIBATCH_SIZE, full_eval_steps: int = 5) -> MIPROPreset:
    """MIPRO sizes for a level: n demo sets, n (zero-shot) or n/2 instruction candidates, MIPROv2's trial
    count, and a hard rollout cap equal to MIPROv2's evaluation calls on the same data."""
    n = AUTO_LEVELS[auto]
    trials = mipro_trials(auto, num_predictors=num_predictors, few_shot=few_shot)
    instructions = max(1, n // 2) if few_shot else n
    val = min(val_size, MIPRO_VAL_SIZE[auto])
    cap = mipro_evaluation_calls(num_trials=trials, val_size=val, minibatch_size=minibatch_size,
                                 full_eval_steps=full_eval_steps)
    return MIPROPreset(instructions, n, trials, min(minibatch_size, max(train_size, 1)), MIPRO_VAL_SIZE[auto], cap)
