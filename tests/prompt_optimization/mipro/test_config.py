from __future__ import annotations

import pytest

from rollouts_dspy.errors import ConfigError
from rollouts_dspy.prompt_optimization.gepa import GEPAConfig
from rollouts_dspy.prompt_optimization.mipro import MIPROConfig
from tests.conftest import QUIET

TRAIN = tuple(range(10))


def test_spec_signature_with_seeds_works():
    config = MIPROConfig(num_candidates=50, num_trials=100, max_bootstrapped_demos=4, max_labeled_demos=4,
                         minibatch_size=35, train_seeds=TRAIN, val_seeds=(10, 11))
    assert config.seed == 0 and config.train_seeds == TRAIN and config.to_dict()["val_seeds"] == [10, 11]


def test_without_a_budget_the_search_sizes_are_the_specs_defaults():
    config = MIPROConfig(train_seeds=TRAIN)
    assert (config.num_candidates, config.num_trials, config.minibatch_size, config.num_demo_sets,
            config.full_eval_every) == (50, 100, 35, 6, 5)
    assert config.chosen_for_budget == ()


@pytest.mark.parametrize("budget", [1500, 3000])
def test_a_budget_alone_chooses_the_search_sizes_and_shows_them(budget):
    train, val = tuple(range(300)), ()
    config = MIPROConfig(train_seeds=train, val_seeds=val, max_rollouts=budget)
    assert set(config.chosen_for_budget) == {"num_candidates", "num_trials", "minibatch_size", "num_demo_sets",
                                             "full_eval_every"}
    shown = config.to_dict()
    assert shown["num_trials"] == config.num_trials and shown["chosen_for_budget"] == list(config.chosen_for_budget)
    # The planned trials and full evaluations fit the budget (the spec's 100 trials of 35 would not).
    full_evals = -(-config.num_trials // config.full_eval_every)
    assert config.num_trials * config.minibatch_size + full_evals * len(train) <= budget
    assert config.num_trials >= 10


def test_an_explicit_field_wins_over_the_budget_choice():
    config = MIPROConfig(train_seeds=tuple(range(300)), max_rollouts=1500, num_candidates=7, minibatch_size=20)
    assert config.num_candidates == 7 and config.minibatch_size == 20
    assert "num_candidates" not in config.chosen_for_budget and "num_trials" in config.chosen_for_budget


def test_a_budget_too_small_for_one_trial_names_the_minimum_before_any_call():
    # The starting point's trial, one searched trial (2 x 35) and 4 x 20 validation rollouts: 150.
    with pytest.raises(ConfigError, match=r"max_rollouts=149 cannot pay for one trial.*at least 150"):
        MIPROConfig(train_seeds=tuple(range(100)), val_seeds=tuple(range(100, 120)), minibatch_size=35,
                    max_rollouts=149)
    MIPROConfig(train_seeds=tuple(range(100)), val_seeds=tuple(range(100, 120)), minibatch_size=35, max_rollouts=150)


def test_a_negative_seed_is_a_seed_in_both_configs():
    # Issue 15: a negative seed passed GEPAConfig and failed MIPROConfig (the validators had drifted).
    assert MIPROConfig(train_seeds=TRAIN, seed=-3).seed == -3
    assert GEPAConfig(train_seeds=TRAIN, seed=-3).seed == -3


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"num_candidates": 0}, "num_candidates must be an integer >= 1, but got 0"),
        ({"max_bootstrapped_demos": -1}, "max_bootstrapped_demos must be an integer >= 0, but got -1"),
        ({"max_labeled_demos": -2}, "max_labeled_demos must be an integer >= 0, but got -2"),
        ({"train_seeds": ()}, "train_seeds is empty"),
        ({"train_seeds": (0, -1)}, "non-negative integer row indices, but got -1"),
        ({"val_seeds": (3, 3)}, "val_seeds holds duplicate indices: [3]"),
        ({"num_trials": 0}, "num_trials must be an integer >= 1"),
        ({"minibatch_size": 0}, "minibatch_size must be an integer >= 1"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"max_rollouts": 0}, "max_rollouts must be an integer >= 1"),
        ({"max_cost_usd": 0.0}, "max_cost_usd must be a number > 0 or None"),
        ({"num_candidates": True}, "num_candidates must be an integer"),
        ({"tips": ()}, "tips must be a non-empty tuple"),
        ({"data_aware": "yes"}, "data_aware must be True or False"),
        ({"storage": "study.db"}, "storage must be an Optuna RDB URL"),
        ({"checkpoint_dir": ""}, "checkpoint_dir must be a directory path"),
    ],
)
def test_bad_configs_fail_at_construction(kwargs, needle):
    kwargs = {"train_seeds": TRAIN, **kwargs}
    with pytest.raises(ConfigError) as info:
        MIPROConfig(**kwargs)
    assert "MIPROConfig." in str(info.value) and needle in str(info.value)


def test_fingerprint_ignores_budget_paths_and_trials_but_not_the_search():
    a = MIPROConfig(train_seeds=TRAIN, seed=0, num_candidates=5)
    b = MIPROConfig(train_seeds=TRAIN, seed=0, num_candidates=5, num_trials=7, checkpoint_dir="x",
                    storage="sqlite:///s.db", max_concurrent=3)
    assert a.fingerprint_fields() == b.fingerprint_fields()
    assert MIPROConfig(train_seeds=TRAIN, seed=1, num_candidates=5).fingerprint_fields() != a.fingerprint_fields()


async def test_seeds_outside_the_dataset_fail_before_any_call():
    from rollouts_dspy.dtypes import Endpoint, Metric, Score
    from rollouts_dspy.errors import DatasetError
    from rollouts_dspy.prompt_optimization.mipro import run_mipro
    from rollouts_dspy.prompt_optimization.types import PromptTemplate

    ep = Endpoint(provider="openai", model="nowhere", api_base="http://127.0.0.1:9", api_key="x")
    rows = [{"q": "x", "a": "y"}] * 5
    config = MIPROConfig(train_seeds=(0, 1, 7), val_seeds=(2,))
    with pytest.raises(DatasetError, match="train_seeds contains 7, outside the dataset"):
        await run_mipro(PromptTemplate("s", "{q}"), config, rows, ep, ep,
                        lambda t, s: Score((Metric("m", 1.0),)), options=QUIET)
