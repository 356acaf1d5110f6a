from __future__ import annotations

import pytest

from rollouts_dspy.errors import ConfigError
from rollouts_dspy.prompt_optimization.mipro import MIPROConfig

TRAIN = tuple(range(10))


def test_spec_signature_with_seeds_works():
    config = MIPROConfig(num_candidates=50, num_trials=100, max_bootstrapped_demos=4, max_labeled_demos=4,
                         minibatch_size=35, train_seeds=TRAIN, val_seeds=(10, 11))
    assert config.seed == 0 and config.train_seeds == TRAIN and config.to_dict()["val_seeds"] == [10, 11]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"num_candidates": 0}, "num_candidates must be an integer >= 1, but got 0"),
        ({"max_bootstrapped_demos": -1}, "max_bootstrapped_demos must be an integer >= 0, but got -1"),
        ({"max_labeled_demos": -2}, "max_labeled_demos must be an integer >= 0, but got -2"),
        ({"train_seeds": ()}, "train_seeds is empty"),
        ({"train_seeds": (0, -1)}, "non-negative integer row indices, but got -1"),
        ({"val_seeds": (3, 3)}, "val_seeds contains 3 more than once"),
        ({"num_trials": 0}, "num_trials must be an integer >= 1"),
        ({"minibatch_size": 0}, "minibatch_size must be an integer >= 1"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"max_rollouts": 0}, "max_rollouts must be an integer >= 1"),
        ({"max_cost_usd": 0.0}, "max_cost_usd must be > 0 or None"),
        ({"num_candidates": True}, "num_candidates must be an integer"),
        ({"tips": ()}, "tips must be a non-empty tuple"),
    ],
)
def test_bad_configs_fail_at_construction(kwargs, needle):
    kwargs = {"train_seeds": TRAIN, **kwargs}
    with pytest.raises(ConfigError, match="MIPROConfig"):
        MIPROConfig(**kwargs)
    with pytest.raises(ConfigError) as info:
        MIPROConfig(**kwargs)
    assert needle in str(info.value)


def test_seed_zero_is_a_seed_and_fingerprint_ignores_budget():
    a = MIPROConfig(train_seeds=TRAIN, seed=0, max_rollouts=10)
    b = MIPROConfig(train_seeds=TRAIN, seed=0, max_rollouts=99, num_trials=7, storage="x.db")
    assert a.fingerprint_fields() == b.fingerprint_fields()
    assert MIPROConfig(train_seeds=TRAIN, seed=1).fingerprint_fields() != a.fingerprint_fields()


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
                        lambda t, s: Score((Metric("m", 1.0),)), progress=False)
