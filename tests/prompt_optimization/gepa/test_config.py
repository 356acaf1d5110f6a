"""GEPAConfig: spec defaults, and bad values fail at construction naming the field and the value."""

from __future__ import annotations

import pytest

from rollouts_dspy.errors import ConfigError
from rollouts_dspy.prompt_optimization.gepa import GEPAConfig


def test_spec_signature_and_defaults():
    config = GEPAConfig(population_size=20, generations=10, mutation_rate=0.3, crossover_rate=0.5, elite_size=4,
                        train_seeds=(0, 1), val_seeds=(2,), max_concurrent=10)
    assert config.seed == 0 and config.max_rollouts is None and config.minibatch_size is None
    assert config.to_dict()["train_seeds"] == [0, 1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"elite_size": 20}, "elite_size < population_size"),
        ({"elite_size": 25}, "elite_size=25"),
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
        ({"pareto_split": "dev"}, "pareto_split"),
        ({"pareto_split": "val"}, "pareto_split='val' needs val_seeds"),
    ],
)
def test_bad_configs_fail_at_construction(kwargs, match):
    params = {"train_seeds": (0, 1, 2)}
    params.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        GEPAConfig(**params)


def test_pareto_split_defaults_to_train_and_val_compares_on_val_seeds():
    default = GEPAConfig(train_seeds=(0, 1), val_seeds=(2,))
    assert default.split == "train" and default.selection_seeds == (0, 1)
    # Checkpoints written before the field existed (train split) still match.
    assert "pareto_split" not in default.fingerprint()
    val = GEPAConfig(train_seeds=(0, 1), val_seeds=(2,), pareto_split="val")
    assert val.selection_seeds == (2,) and val.fingerprint()["pareto_split"] == "val"


def test_overlap_is_reported_not_refused():
    assert GEPAConfig(train_seeds=(0, 1, 2), val_seeds=(2, 3)).overlap == (2,)


def test_fingerprint_leaves_out_what_may_change_on_resume():
    a = GEPAConfig(train_seeds=(0,), generations=2, max_rollouts=10)
    b = GEPAConfig(train_seeds=(0,), generations=5, max_rollouts=99)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != GEPAConfig(train_seeds=(0,), seed=1).fingerprint()
