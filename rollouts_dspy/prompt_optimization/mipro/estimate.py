"""The dry-run estimate: how many calls a config will make, before any is made. Pure."""

from __future__ import annotations

import math
from typing import Any

from .config import MIPROConfig
from .schedule import validation_reserve

__all__ = ["bootstrap_limit", "bootstrap_target", "estimate_calls"]


def bootstrap_target(config: MIPROConfig) -> int:
    """Successful runs wanted as bootstrapped demos: enough for each random demo set to draw a different mix."""
    if config.max_bootstrapped_demos == 0:
        return 0
    return config.max_bootstrapped_demos * max(1, config.num_demo_sets - 3)


def bootstrap_limit(config: MIPROConfig, num_train: int) -> int:
    """At most this many training samples are run to find them."""
    if config.max_bootstrapped_demos == 0:
        return 0
    cap = config.max_bootstrap_rollouts or 4 * bootstrap_target(config)
    return min(num_train, cap)


def estimate_calls(config: MIPROConfig, num_train: int, num_val: int, num_components: int = 1) -> dict[str, Any]:
    """Upper bounds of the calls a run makes (cache hits and early stops make the real numbers smaller).

    Rollouts: bootstrapping, trials (minibatches), full evaluations (all training samples of one combination),
    validation (the top combinations and the initial one). Proposer calls: one dataset summary, then
    `num_candidates - 1` proposals per component."""
    per_trial = min(config.minibatch_size, num_train)
    full_evals = math.ceil(config.num_trials / config.full_eval_every)
    out: dict[str, Any] = {
        "bootstrap_rollouts": bootstrap_limit(config, num_train),
        "trial_rollouts": config.num_trials * per_trial,
        "full_evaluations": full_evals,
        "full_eval_rollouts": full_evals * num_train,
        "validation_rollouts": validation_reserve(num_val, config.num_top_for_validation),
        "proposer_calls": 0 if config.num_candidates == 1 else 1 + num_components * (config.num_candidates - 1),
    }
    total = sum(out[k] for k in ("bootstrap_rollouts", "trial_rollouts", "full_eval_rollouts",
                                 "validation_rollouts"))
    out["total_rollouts_upper_bound"] = total if config.max_rollouts is None else min(total, config.max_rollouts)
    return out
