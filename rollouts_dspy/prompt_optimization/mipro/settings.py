"""The search sizes of a MIPRO run: the spec's defaults without a budget, or sizes chosen for `max_rollouts`.

Pure arithmetic over the split sizes and the budget; MIPROConfig calls it once at construction so every field holds
the value the run uses. A field the caller set is never changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "SEARCH_FIELDS", "SPEC_DEFAULTS", "minimum_rollouts", "plan_for_budget", "resolve_search_settings",
    "validation_reserve",
]

SPEC_DEFAULTS: dict[str, int] = {"num_candidates": 50, "num_trials": 100, "minibatch_size": 35, "num_demo_sets": 6,
                                 "full_eval_every": 5}
SEARCH_FIELDS = tuple(SPEC_DEFAULTS)

MAX_MINIBATCH = 35
"""MIPROv2's minibatch: large enough that one lucky sample does not decide a trial."""
MIN_MINIBATCH = 10
MAX_CANDIDATES = 20
TRIALS_PER_FULL_EVAL = 5
BOOTSTRAP_SHARE = 0.08
"""Share of the search budget spent running the starting point for bootstrapped demos (its rollouts are reused as
the starting point's own scores, so little of it is lost)."""


def validation_reserve(num_val: int, num_top: int) -> int:
    """Rollouts held back for the final validation: the top combinations plus the initial one."""
    return (num_top + 1) * num_val


def minimum_rollouts(config: Any) -> int:
    """The smallest `max_rollouts` that pays for the starting point's trial, one searched trial and the validation."""
    per_trial = min(config.minibatch_size, len(config.train_seeds))
    return validation_reserve(len(config.val_seeds), config.num_top_for_validation) + 2 * per_trial


def plan_for_budget(max_rollouts: int, *, num_train: int, num_val: int, num_top: int,
                    given: Mapping[str, int] | None = None) -> dict[str, int]:
    """Search sizes that spend `max_rollouts` on trials and full evaluations after the validation reserve.

    A full evaluation (every training row) follows every few trials, so the budget buys blocks of
    `full_eval_every` minibatch trials plus one full evaluation; instruction candidates and demo sets are sized
    so that TPE sees each instruction and each demo set about once (as MIPROv2 sizes both by num_candidates;
    on the tuning seeds of benchmarks/mipro_tuning.py, 7 to 16 candidates at 1500 rollouts were within the seed
    noise of each other). Sizes in `given` are kept and the others fitted around them."""
    given = dict(given or {})
    search = max(0, max_rollouts - validation_reserve(num_val, num_top))
    search -= int(BOOTSTRAP_SHARE * search)
    minibatch = min(given.get("minibatch_size", MAX_MINIBATCH), num_train)
    if "minibatch_size" not in given:
        minibatch = max(1, min(minibatch, max(MIN_MINIBATCH, search // 30)))
    every = given.get("full_eval_every", TRIALS_PER_FULL_EVAL)
    block = every * minibatch + num_train
    trials = every * (search // block)
    trials += max(0, min(every, (search - (search // block) * block - num_train) // minibatch))
    trials = given.get("num_trials", max(2, trials))
    candidates = max(3, min(MAX_CANDIDATES, trials))
    return {"num_candidates": given.get("num_candidates", candidates), "num_trials": trials,
            "minibatch_size": minibatch, "num_demo_sets": given.get("num_demo_sets", candidates),
            "full_eval_every": every}


def resolve_search_settings(given: Mapping[str, int], *, max_rollouts: int | None, num_train: int, num_val: int,
                            num_top: int, max_concurrent: int) -> tuple[dict[str, int], tuple[str, ...]]:
    """(every search field's value, the names chosen for the budget). `given` holds the fields the caller set."""
    del max_concurrent  # the sizes do not depend on it: a resumed run may change concurrency
    if max_rollouts is None:
        base = dict(SPEC_DEFAULTS)
        chosen: tuple[str, ...] = ()
    else:
        base = plan_for_budget(max_rollouts, num_train=num_train, num_val=num_val, num_top=num_top, given=given)
        chosen = tuple(name for name in SEARCH_FIELDS if name not in given)
    base.update(given)
    return base, chosen
