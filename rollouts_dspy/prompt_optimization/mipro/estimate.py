"""The dry-run estimate: how many calls a config will make, before any is made. Pure."""

from __future__ import annotations

import math
from typing import Any

from .config import MIPROConfig
from .demos import bootstrap_limit
from .settings import validation_reserve

__all__ = ["estimate_calls"]


def estimate_calls(config: MIPROConfig, num_train: int, num_val: int, num_components: int = 1) -> dict[str, Any]:
    """Upper bounds of the calls a run makes (cache hits and early stops make the real numbers smaller).

    Rollouts: bootstrapping, trials (minibatches), full evaluations (all training samples of one combination),
    validation (the top combinations and the initial one). Proposer calls: one dataset summary (when
    `data_aware`), then `num_candidates - 1` proposals per component."""
    per_trial = min(config.minibatch_size, num_train)
    full_evals = math.ceil(config.num_trials / config.full_eval_every)
    out: dict[str, Any] = {
        "bootstrap_rollouts": bootstrap_limit(config.max_bootstrapped_demos, config.num_demo_sets, num_train,
                                              config.max_bootstrap_rollouts),
        "trial_rollouts": config.num_trials * per_trial,
        "full_evaluations": full_evals,
        "full_eval_rollouts": full_evals * num_train,
        "validation_rollouts": validation_reserve(num_val, config.num_top_for_validation) if num_val else 0,
        "proposer_calls": 0 if config.num_candidates == 1 else
        int(config.data_aware) + num_components * (config.num_candidates - 1),
    }
    total = sum(out[k] for k in ("bootstrap_rollouts", "trial_rollouts", "full_eval_rollouts",
                                 "validation_rollouts"))
    out["total_rollouts_upper_bound"] = total if config.max_rollouts is None else min(total, config.max_rollouts)
    return out
