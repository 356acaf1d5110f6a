"""The smallest budgets that pay for one improvement step, so a budget too small to improve anything is refused
before any call (naming the minimum) instead of silently returning the student unchanged."""

from __future__ import annotations

from ..prompt_optimization.mipro import MIPROConfig
from ..prompt_optimization.mipro.schedule import validation_reserve as mipro_reserve

__all__ = ["mipro_minimum"]


def mipro_minimum(config: MIPROConfig) -> int:
    """Rollouts for one step beyond the start: the initial combination's trial and one other trial on their
    minibatches, plus the rollouts held back to validate the top combinations."""
    per_trial = min(config.minibatch_size, len(config.train_seeds))
    reserve = mipro_reserve(len(config.val_seeds), config.num_top_for_validation) if config.val_seeds else 0
    return reserve + 2 * per_trial
