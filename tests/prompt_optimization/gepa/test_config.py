"""GEPAConfig: spec defaults, and bad values fail at construction naming the field and the value."""

from __future__ import annotations

import pytest

from rollouts_dspy.errors import ConfigError
from rollouts_dspy.prompt_optimization.gepa import GEPAConfig


def test_spec_signature_and_defaults():
    config = GEPAConfig(population_size=20, generations=10, mutation_rate=0.3, crossover_rate=0.5, elite_size=4,
                        train_seeds=(0, 1), val_seeds=(2,), max_concurrent=10)
    assert config.seed == 0 and config.max_rollouts is None
    assert (config.population_size, config.generations, config.elite_size) == (20, 10, 4)
    assert config.children_per_generation == 16
    assert config.to_dict()["train_seeds"] == [0, 1]


def test_unset_sizes_are_chosen_for_the_data_and_budget_and_explicit_fields_win():
    train = tuple(range(300))
    auto = GEPAConfig(train_seeds=train, max_rollouts=1500)
    assert auto.minibatch_size == 64 and auto.pareto_size == 60 and auto.children_per_generation == 4
    assert auto.reflection_minibatch_size == 32 and auto.holdout_size == 0
    # enough steps that the budget, not the generation count, ends the run
    assert auto.generations * auto.children_per_generation * auto.minibatch_size >= 1500
    small = GEPAConfig(train_seeds=tuple(range(10)))
    assert small.minibatch_size == 10 and small.pareto_size == 10 and small.generations == 10
    explicit = GEPAConfig(train_seeds=train, max_rollouts=1500, minibatch_size=5, pareto_size=100,
                          population_size=3, generations=2)
    assert (explicit.minibatch_size, explicit.pareto_size, explicit.population_size, explicit.generations) == (
        5, 100, 3, 2)
    assert GEPAConfig(train_seeds=(0, 1), val_seeds=(2, 3, 4), pareto_split="val").pareto_size == 3


def test_a_negative_seed_is_accepted_as_by_every_config():
    assert GEPAConfig(train_seeds=(0,), seed=-3).seed == -3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"elite_size": 20, "population_size": 20}, "elite_size < population_size"),
        ({"elite_size": 25, "population_size": 20}, "elite_size=25"),
        ({"mutation_rate": 1.5}, "mutation_rate"),
        ({"crossover_rate": -0.1}, "crossover_rate"),
        ({"train_seeds": ()}, "train_seeds must not be empty"),
        ({"train_seeds": (1, 1)}, "duplicate"),
        ({"train_seeds": (-1,)}, "train_seeds"),
        ({"population_size": 1, "elite_size": 0}, "population_size"),
        ({"generations": 0}, "generations"),
        ({"max_rollouts": 0}, "max_rollouts"),
        ({"max_cost_usd": -1.0}, "max_cost_usd"),
        ({"minibatch_size": 0}, "minibatch_size"),
        ({"pareto_split": "dev"}, "pareto_split must be one of"),
        ({"pareto_split": "val"}, "pareto_split='val' needs val_seeds"),
        ({"candidate_selection": "best"}, r"candidate_selection must be one of \['pareto', 'current_best'\]"),
        ({"component_selection": "each"}, "component_selection must be one of"),
        ({"max_merges": -1}, "max_merges"),
        ({"pareto_size": 0}, "pareto_size"),
    ],
)
def test_bad_configs_fail_at_construction(kwargs, match):
    params = {"train_seeds": (0, 1, 2)}
    params.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        GEPAConfig(**params)


def test_pareto_split_is_part_of_the_fingerprint():
    default = GEPAConfig(train_seeds=(0, 1), val_seeds=(2,))
    val = GEPAConfig(train_seeds=(0, 1), val_seeds=(2,), pareto_split="val")
    assert default.fingerprint()["pareto_split"] == "train" and val.fingerprint()["pareto_split"] == "val"


def test_overlap_is_reported_not_refused():
    assert GEPAConfig(train_seeds=(0, 1, 2), val_seeds=(2, 3)).overlap == (2,)


def test_fingerprint_leaves_out_what_may_change_on_resume():
    a = GEPAConfig(train_seeds=(0,), generations=2, max_rollouts=10)
    b = GEPAConfig(train_seeds=(0,), generations=5, max_rollouts=99)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != GEPAConfig(train_seeds=(0,), seed=1).fingerprint()
