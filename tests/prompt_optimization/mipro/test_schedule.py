from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rollouts_dspy.prompt_optimization.mipro import MIPROConfig, estimate_calls
from rollouts_dspy.prompt_optimization.mipro import schedule as sch


def test_minibatch_is_seeded_sized_and_in_split_order():
    train = list(range(100, 140))
    a = sch.minibatch(train, 10, seed=0, trial=3)
    assert a == sch.minibatch(train, 10, seed=0, trial=3) and len(a) == 10 and list(a) == sorted(a)
    assert a != sch.minibatch(train, 10, seed=0, trial=4) and a != sch.minibatch(train, 10, seed=1, trial=3)
    assert sch.minibatch(train[:5], 10, seed=0, trial=0) == tuple(train[:5])  # split smaller than minibatch


@given(st.integers(1, 30), st.integers(1, 8))
def test_full_evals_every_k_trials_and_after_the_last(num_trials, every):
    due = [t for t in range(num_trials) if sch.full_eval_due(t, every, num_trials)]
    assert due[-1] == num_trials - 1
    assert due[:-1] == [t for t in range(every - 1, num_trials - 1, every)]


def test_pick_for_full_eval_prefers_best_mean_then_first_tried_and_skips_done():
    scores = {"a": {1: 1.0, 2: 0.0}, "b": {3: 1.0}, "c": {4: 1.0}, "d": {}}
    order = ["a", "b", "c", "d"]
    assert sch.pick_for_full_eval(scores, order, set()) == "b"
    assert sch.pick_for_full_eval(scores, order, {"b"}) == "c"
    assert sch.pick_for_full_eval(scores, order, {"a", "b", "c"}) is None  # every combination done


def test_rank_and_validation_choices_and_best():
    ranked = sch.rank_combinations({"a": 0.9, "b": 0.5, "c": 0.7, "i": 0.1}, {"b": 0.6, "c": 0.8}, ["i", "a", "b", "c"])
    assert ranked == ["c", "b", "a", "i"]
    assert sch.validation_choices(ranked, "i", 2) == ["c", "b", "i"]
    assert sch.validation_choices(ranked, "c", 2) == ["c", "b"]
    assert sch.choose_best({"c": 0.5, "b": 0.5, "i": 0.4}, ["c", "b", "i"]) == "c"
    assert sch.choose_best({"c": None, "b": 0.2}, ["c", "b"]) == "b"
    assert sch.choose_best({}, ["c", "b"]) == "c"


def test_trials_in_flight_fill_the_concurrency_with_one_more_queued():
    assert sch.trials_in_flight(16, 35, 300) == 2  # one trial fills 16 slots; a second keeps them busy
    assert sch.trials_in_flight(32, 10, 300) == 5
    assert sch.trials_in_flight(64, 5, 100) == sch.MAX_TRIALS_IN_FLIGHT
    assert sch.trials_in_flight(10, 5, 100, override=3) == 3


def test_estimate_calls():
    config = MIPROConfig(num_candidates=5, num_trials=10, minibatch_size=8, full_eval_every=5,
                         train_seeds=tuple(range(20)), val_seeds=tuple(range(20, 30)), max_bootstrapped_demos=2)
    est = estimate_calls(config, 20, 10)
    assert est["trial_rollouts"] == 80 and est["full_evaluations"] == 2 and est["full_eval_rollouts"] == 40
    assert est["validation_rollouts"] == 40 and est["proposer_calls"] == 5
    assert est["bootstrap_rollouts"] == 20  # capped by the split
    total = est["bootstrap_rollouts"] + 80 + 40 + 40
    assert est["total_rollouts_upper_bound"] == total
    assert estimate_calls(MIPROConfig(num_candidates=1, train_seeds=(0,)), 1, 0)["proposer_calls"] == 0
