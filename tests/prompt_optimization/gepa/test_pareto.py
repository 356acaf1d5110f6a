"""Per-sample Pareto bookkeeping, parent sampling and elites: pure functions."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from rollouts_dspy.prompt_optimization.gepa import select_elites
from rollouts_dspy.prompt_optimization.gepa.pareto import (
    best_per_sample,
    complementary_parent,
    frontier,
    sample_parent,
)
from rollouts_dspy.prompt_optimization.types import PromptTemplate


def test_a_candidate_best_on_one_sample_survives_despite_a_lower_mean():
    scores = {
        "strong": {0: 1.0, 1: 1.0, 2: 1.0, 3: 0.0},
        "niche": {0: 0.0, 1: 0.0, 2: 0.0, 3: 1.0},
        "weak": {0: 0.5, 1: 0.5, 2: 0.5, 3: 0.0},
    }
    best = best_per_sample(scores, range(4))
    assert best[3] == {"niche"} and best[0] == {"strong"}
    assert frontier(scores, range(4)) == {"strong": frozenset({0, 1, 2}), "niche": frozenset({3})}


def test_ties_share_a_sample_and_redundant_candidates_are_dropped():
    scores = {"a": {0: 1.0, 1: 1.0}, "b": {0: 1.0, 1: 0.0}, "c": {0: 1.0, 1: 1.0}}
    front = frontier(scores, [0, 1])
    # b only wins sample 0, which a (or c) also wins: it adds nothing. Of the identical a and c one stays.
    assert "b" not in front and len(front) == 1


def test_unmeasured_samples_are_not_won_by_anyone():
    scores = {"a": {0: 1.0}, "b": {1: 0.0}}
    assert best_per_sample(scores, [0, 1, 2]) == {0: frozenset({"a"}), 1: frozenset({"b"})}


def test_parents_are_sampled_in_proportion_to_their_wins():
    wins = {"a": frozenset(range(6)), "b": frozenset({6, 7}), "c": frozenset({8})}
    rng = random.Random(0)
    counts = Counter(sample_parent(rng, wins) for _ in range(9000))
    assert abs(counts["a"] / 9000 - 6 / 9) < 0.03
    assert abs(counts["c"] / 9000 - 1 / 9) < 0.02


def test_the_second_parent_wins_where_the_first_does_not():
    wins = {"a": frozenset({0, 1}), "b": frozenset({0, 1}), "c": frozenset({2})}
    rng = random.Random(1)
    assert {complementary_parent(rng, wins, "a") for _ in range(50)} == {"c"}
    assert complementary_parent(rng, {"a": frozenset({0})}, "a", ["a", "z"]) == "z"
    assert complementary_parent(rng, {"a": frozenset({0})}, "a") is None


@given(st.dictionaries(st.sampled_from("abcdef"),
                       st.dictionaries(st.integers(0, 5), st.sampled_from([0.0, 0.5, 1.0]), min_size=1),
                       min_size=1))
def test_every_measured_sample_keeps_a_winner_on_the_frontier(scores):
    indices = range(6)
    front = frontier(scores, indices)
    best = best_per_sample(scores, indices)
    for i, winners in best.items():
        assert winners & set(front), (i, winners, front)
    for cid, won in front.items():
        assert won and all(cid in best[i] for i in won)


def test_select_elites_is_pure_and_keeps_the_best_unchanged():
    pop = [PromptTemplate(f"p{i}", "{q}", score=s) for i, s in enumerate([0.2, None, 0.9, 0.5, 0.9])]
    elites = select_elites(pop, 3)
    assert [t.system for t in elites] == ["p2", "p4", "p3"]
    assert elites[0] is pop[2]
    assert select_elites(pop, 0) == [] and len(select_elites(pop, 10)) == 5
    assert [t.score for t in pop] == [0.2, None, 0.9, 0.5, 0.9]
