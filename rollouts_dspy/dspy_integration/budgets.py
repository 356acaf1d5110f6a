"""The smallest budgets that pay for one improvement step, so a budget too small to improve anything is refused
before any call (naming the minimum) instead of silently returning the student unchanged."""

from __future__ import annotations

import dataclasses

from ..prompt_optimization.gepa import GEPAConfig
from ..prompt_optimization.gepa.engine import batch_size, validation_reserve
from ..prompt_optimization.mipro import MIPROConfig
from ..prompt_optimization.mipro.schedule import validation_reserve as mipro_reserve

__all__ = ["gepa_minimum", "mipro_minimum"]


def gepa_minimum(config: GEPAConfig) -> int:
    """Rollouts for one reflective step: scoring the start on the selection set, one child's gating minibatch
    (and the parent's run on it) and the child's full evaluation, plus (split "train") one validation."""
    train, val = len(config.train_seeds), len(config.val_seeds)
    batch = min(batch_size(config) or train, train)
    if config.split == "val":
        return val + 2 * batch + val
    search = train + (batch + train if batch < train else train)
    if not val:
        return search
    for k in range(1, config.val_candidates + 1):
        total = search + k * val
        reserve = validation_reserve(dataclasses.replace(config, max_rollouts=total))
        if total - reserve >= search and reserve >= val:
            return total
    return search + config.val_candidates * val


def mipro_minimum(config: MIPROConfig) -> int:
    """Rollouts for one step beyond the start: the initial combination's trial and one other trial on their
    minibatches, plus the rollouts held back to validate the top combinations."""
    per_trial = min(config.minibatch_size, len(config.train_seeds))
    reserve = mipro_reserve(len(config.val_seeds), config.num_top_for_validation) if config.val_seeds else 0
    return reserve + 2 * per_trial
