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


@given(st.integers(1, 30), st.integers(1, 8), st.integers(1, 40))
def test_full_evals_every_k_trials_and_at_the_end(num_trials, every, step):
    done, due = 0, []
    while done < num_trials:
        after = min(num_trials, done + step % 4 + 1)
        if sch.full_eval_due(done, after, every, num_trials):
            due.append(after)
        done = after
    assert due and due[-1] == num_trials
    assert len(due) <= num_trials // every + 1


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


def test_room_keeps_the_validation_reserve():
    assert sch.room_for_search(max_rollouts=None, rollouts_used=5, max_cost_usd=None, cost_usd=0,
                               avg_rollout_cost=0, reserve=10) is None
    assert sch.room_for_search(max_rollouts=100, rollouts_used=60, max_cost_usd=None, cost_usd=0,
                               avg_rollout_cost=0, reserve=30) == 10
    assert sch.room_for_search(max_rollouts=100, rollouts_used=90, max_cost_usd=None, cost_usd=0,
                               avg_rollout_cost=0, reserve=30) == 0
    assert sch.room_for_search(max_rollouts=None, rollouts_used=0, max_cost_usd=1.0, cost_usd=0.5,
                               avg_rollout_cost=0.01, reserve=10) == 40
    assert sch.room_for_search(max_rollouts=None, rollouts_used=0, max_cost_usd=1.0, cost_usd=1.0,
                               avg_rollout_cost=0.0, reserve=0) == 0


def test_trials_per_batch_rule():
    assert sch.trials_per_batch(10, 35, 100) == 1
    assert sch.trials_per_batch(10, 5, 100) == 2
    assert sch.trials_per_batch(64, 5, 100) == sch.MAX_TRIALS_PER_BATCH
    assert sch.trials_per_batch(10, 5, 100, override=3) == 3


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
