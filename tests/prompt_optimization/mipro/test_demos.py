from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts_dspy.prompt_optimization.mipro import build_demo_sets
from rollouts_dspy.prompt_optimization.mipro.demos import succeeded
from rollouts_dspy.prompt_optimization.protocols import Rollout, RolloutError

LABELED = [(i, {"input": f"q{i}", "output": f"L{i}"}) for i in range(10)]
BOOT = [(i, {"input": f"q{i}", "output": f"B{i}"}) for i in (2, 5, 7, 9)]


def _build(**overrides):
    params = dict(num_sets=6, max_labeled=2, max_bootstrapped=2, seed=0)
    params.update(overrides)
    initial = params.pop("initial", ())
    return build_demo_sets(initial, params.pop("labeled", LABELED), params.pop("boot", BOOT), **params)


def test_initial_first_then_empty_then_labeled_only_then_mixes():
    initial = ({"input": "x", "output": "y"},)
    sets = _build(initial=initial)
    assert sets[0] == initial and sets[1] == () and sets[2] == (LABELED[0][1], LABELED[1][1])
    assert len(sets) == 6
    for mix in sets[3:]:
        boot = [d for d in mix if d["output"].startswith("B")]
        lab = [d for d in mix if d["output"].startswith("L")]
        assert len(boot) == 2 and len(lab) <= 2 and mix[:2] == tuple(boot)  # bootstrapped first
        # one sample never appears twice in a set (as labeled and as bootstrapped)
        assert len({d["input"] for d in mix}) == len(mix)


def test_no_duplicates_and_seeded():
    sets = _build(num_sets=30)
    assert len({json.dumps(s, sort_keys=True) for s in sets}) == len(sets)
    assert _build() == _build() and _build(seed=1) != _build(seed=2)


def test_zero_shot_config_gives_initial_and_empty_only():
    assert _build(max_labeled=0, max_bootstrapped=0) == [()]
    initial = ({"input": "x", "output": "y"},)
    assert _build(initial=initial, max_labeled=0, max_bootstrapped=0) == [initial, ()]


def test_labeled_only_when_nothing_bootstrapped():
    sets = _build(boot=[], max_bootstrapped=4)
    assert sets[0] == () and sets[1] == (LABELED[0][1], LABELED[1][1]) and len(sets) == 6
    assert all(all(d["output"].startswith("L") for d in s) for s in sets)
    assert all(len(s) <= 2 for s in sets)


def test_bootstrapped_only():
    sets = _build(labeled=[], max_labeled=3)
    assert sets[0] == () and all(len(s) <= 2 for s in sets) and len(sets) >= 2


@settings(max_examples=60, deadline=None)
@given(num_sets=st.integers(1, 12), max_labeled=st.integers(0, 5), max_boot=st.integers(0, 5),
       n_labeled=st.integers(0, 10), n_boot=st.integers(0, 4), seed=st.integers(0, 5))
def test_demo_set_bounds_hold(num_sets, max_labeled, max_boot, n_labeled, n_boot, seed):
    sets = build_demo_sets((), LABELED[:n_labeled], BOOT[:n_boot], num_sets=num_sets, max_labeled=max_labeled,
                           max_bootstrapped=max_boot, seed=seed)
    assert 1 <= len(sets) <= num_sets and sets[0] == ()
    for s in sets:
        assert sum(d["output"].startswith("B") for d in s) <= max_boot
        assert sum(d["output"].startswith("L") for d in s) <= max_labeled


def test_success_is_a_float_threshold_never_truthiness():
    assert succeeded(Rollout(0, 1.0), 1.0)
    assert not succeeded(Rollout(0, 0.99), 1.0)
    assert succeeded(Rollout(0, 0.5), 0.5)
    assert not succeeded(Rollout(0, None), 0.0)  # unmeasured is not a success
    assert not succeeded(Rollout(0, 1.0, error=RolloutError("score_fn", "x")), 0.0)
