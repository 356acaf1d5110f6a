"""Settings chosen for the data and the budget when a GEPAConfig leaves them unset (None). Pure.

What a step costs decides everything: a step runs its parent and its child on a training minibatch (`minibatch`
rollouts each, the parent's partly cached) and, when the child wins there, scores the child on the Pareto set
(`pareto_size` rollouts). Keeping the Pareto set a sample of the training split (not all of it) is what buys many
reflective steps per budget; several children per generation keep the concurrency slots busy. Measured on the
benchmark's tuning seeds (docs/gepa.md, "How the defaults were chosen").
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["CHILDREN_PER_GENERATION", "DEFAULT_GENERATIONS", "PARETO_SIZE", "choose_sizes", "minimum_rollouts"]

CHILDREN_PER_GENERATION = 4
"""Steps in flight together (population_size - elite_size)."""
DEFAULT_ELITES = 1
DEFAULT_GENERATIONS = 10
"""Without a budget; with one, enough generations to spend it (the budget ends the run)."""
MIN_MINIBATCH = 12
PARETO_SIZE = 60
"""Training samples candidates are compared on (pareto_split "train"), when the split is larger."""




def choose_sizes(config: Any) -> dict[str, Any]:
    """The values of the unset fields of `config` (a GEPAConfig being built), nothing else."""
    out: dict[str, Any] = {}
    train = len(config.train_seeds)
    elites = config.elite_size
    if elites is None:
        elites = DEFAULT_ELITES if config.population_size is None else min(DEFAULT_ELITES, config.population_size - 1)
        out["elite_size"] = elites
    population = config.population_size
    if population is None:
        population = elites + CHILDREN_PER_GENERATION
        out["population_size"] = population
    budget = config.max_rollouts
    minibatch = config.minibatch_size
    if minibatch is None:
        minibatch = min(train, max(MIN_MINIBATCH, 2 * config.reflection_minibatch_size))
        if budget is not None:  # a small budget: smaller minibatches buy several steps instead of one
            minibatch = min(minibatch, max(2, budget // 8))
        out["minibatch_size"] = minibatch
    pareto = config.pareto_size
    if pareto is None:
        pool = len(config.val_seeds) if config.pareto_split == "val" else train
        pareto = min(pool, PARETO_SIZE)
        if budget is not None:
            pareto = min(pareto, max(4, (budget - 2 * minibatch) // 4))
        out["pareto_size"] = pareto
    if config.holdout_size is None:
        # No holdout unless asked for: with 32-rollout reflections the Pareto set picks well enough that the rows
        # and the validation a holdout costs buy more as search (measured on the tuning seeds, docs/gepa.md).
        out["holdout_size"] = 0
    if config.generations is None:
        out["generations"] = _generations(config, population - elites, minibatch)
    return out


def _generations(config: Any, children: int, minibatch: int) -> int:
    if config.max_rollouts is None and config.max_cost_usd is None:
        return DEFAULT_GENERATIONS
    if config.max_rollouts is None:
        return 10_000  # only dollars bound the run: the budget (or stalling) ends it
    # The cheapest step runs only its child on the minibatch: with this many generations the budget, not the
    # generation count, ends the run.
    return max(2, math.ceil(config.max_rollouts / max(children * minibatch, 1)) + 2)


def minimum_rollouts(pareto: int, minibatch: int) -> int:
    """The smallest rollout budget that pays for one improvement step: the start scored on the Pareto set, a
    step's two minibatches, and the child scored on the Pareto set."""
    return 2 * pareto + 2 * minibatch
