"""Budgets against the peers: the light caps are no larger than what dspy.GEPA and dspy.MIPROv2 spend on the same
data, and a budget that cannot pay for one improvement step is a ConfigError naming the minimum, before any call."""

from __future__ import annotations

import dspy
import pytest
from dspy_helpers import CountingMetric

from rollouts_dspy.dspy_integration import RolloutsGEPA, RolloutsMIPRO, rows_to_examples
from rollouts_dspy.dspy_integration.presets import gepa_auto_budget, mipro_preset
from rollouts_dspy.errors import ConfigError
from rollouts_dspy.testing import generate_intent_queries

EXAMPLES = rows_to_examples(generate_intent_queries(40, seed=11), ["query"])
TRAIN, VAL = EXAMPLES[:20], EXAMPLES[20:]


def test_light_caps_are_no_larger_than_the_peers_call_counts(task_lm, reflect_lm):
    """dspy.GEPA and dspy.MIPROv2 themselves, on the same data and server: their program runs."""
    peers = {}
    for name, make in (("gepa", lambda m: dspy.GEPA(metric=m, auto="light", reflection_lm=reflect_lm,
                                                      num_threads=16)),
                       ("mipro", lambda m: dspy.MIPROv2(metric=m, auto="light", prompt_model=reflect_lm,
                                                        task_model=task_lm, num_threads=16))):
        metric = CountingMetric()
        with dspy.context(lm=task_lm):
            make(metric).compile(dspy.ChainOfThought("query -> intent"), trainset=TRAIN, valset=VAL)
        peers[name] = metric.runs
    assert gepa_auto_budget("light", num_components=1, val_size=len(VAL)) <= peers["gepa"]
    assert mipro_preset("light", num_predictors=1, few_shot=True, train_size=len(TRAIN),
                        val_size=len(VAL)).max_rollouts <= peers["mipro"]


def test_a_budget_too_small_for_one_step_is_refused_before_any_call(server, task_lm, reflect_lm):
    many = rows_to_examples(generate_intent_queries(300, seed=2), ["query"])
    with dspy.context(lm=task_lm):
        # The engine sizes its Pareto set and minibatches down for a small budget; below the smallest step (the
        # start on a 4-example Pareto set, two 2-example minibatches, the child on the Pareto set) it refuses.
        with pytest.raises(ConfigError, match="need at least 12 rollouts"):
            RolloutsGEPA(reflection_lm=reflect_lm, max_rollouts=10).compile(dspy.Predict("query -> intent"),
                                                                             trainset=many)
        # MIPROv2's split: 60 train, 240 validate, trimmed to 100 by "light": 4 x 100 to validate + 2 trials.
        with pytest.raises(ConfigError, match="needs at least 470"):
            RolloutsMIPRO(prompt_model=reflect_lm, max_rollouts=300).compile(dspy.Predict("query -> intent"),
                                                                            trainset=many)
    assert server.stats().requests_total == 0


def test_the_minimum_budget_pays_for_a_step(task_lm, reflect_lm):
    with dspy.context(lm=task_lm):
        optimized = RolloutsGEPA(reflection_lm=reflect_lm, max_rollouts=2 * 8 + 2 * 3, track_stats=True,
                                 reflection_minibatch_size=3).compile(
            dspy.Predict("query -> intent"), trainset=TRAIN[:8], valset=VAL[:8])
    outcome = optimized.search_outcome
    assert outcome.rollouts_used <= 22 and len(outcome.records) >= 2  # the start and at least one child
