"""Budgets: every `auto` level is a hard rollout cap no larger than the call count of the DSPy optimizer it
replaces (dspy.GEPA's own auto budget; MIPROv2's evaluation calls, before its demo bootstrapping), and a budget
that cannot pay for one improvement step is a ConfigError naming the minimum, before any call."""

from __future__ import annotations

import dspy
import pytest

from rollouts_dspy.dspy_integration import RolloutsGEPA, RolloutsMIPRO, rows_to_examples
from rollouts_dspy.dspy_integration.presets import gepa_auto_budget, mipro_preset
from rollouts_dspy.testing import generate_intent_queries

EXAMPLES = rows_to_examples(generate_intent_queries(40, seed=11), ["query"])
TRAIN, VAL = EXAMPLES[:20], EXAMPLES[20:]


@pytest.mark.parametrize("level", ["light", "medium", "heavy"])
def test_gepa_auto_is_a_hard_cap_equal_to_dspy_gepas_budget(level, task_lm, reflect_lm, counting_metric):
    cap = gepa_auto_budget(level, num_components=1, val_size=len(VAL))
    assert cap == dspy.GEPA(metric=counting_metric, auto=level, reflection_lm=reflect_lm).auto_budget(
        num_preds=1, num_candidates={"light": 6, "medium": 12, "heavy": 18}[level], valset_size=len(VAL))
    metric = counting_metric
    with dspy.context(lm=task_lm):
        optimized = RolloutsGEPA(metric=metric, auto=level, reflection_lm=reflect_lm, num_threads=16).compile(
            dspy.ChainOfThought("query -> intent"), trainset=TRAIN, valset=VAL)
    assert optimized.optimization_result.config["max_rollouts"] == cap
    assert metric.runs == optimized.search_outcome.rollouts_used <= cap


@pytest.mark.parametrize("level", ["light", "medium", "heavy"])
def test_mipro_auto_is_a_hard_cap(level, task_lm, reflect_lm, counting_metric):
    cap = mipro_preset(level, num_predictors=1, few_shot=True, train_size=len(TRAIN), val_size=len(VAL)).max_rollouts
    metric = counting_metric
    with dspy.context(lm=task_lm):
        optimized = RolloutsMIPRO(metric=metric, auto=level, prompt_model=reflect_lm, num_threads=16).compile(
            dspy.ChainOfThought("query -> intent"), trainset=TRAIN, valset=VAL)
    assert optimized.optimization_result.config["max_rollouts"] == cap
    assert metric.runs == optimized.total_calls <= cap


def test_a_max_rollouts_above_the_auto_cap_is_told_not_silently_cut(task_lm, reflect_lm, counting_metric, caplog):
    cap = mipro_preset("light", num_predictors=1, few_shot=True, train_size=len(TRAIN), val_size=len(VAL)).max_rollouts
    with dspy.context(lm=task_lm), caplog.at_level("WARNING"):
        optimized = RolloutsMIPRO(metric=counting_metric, auto="light", prompt_model=reflect_lm, num_threads=16,
                                  max_rollouts=cap + 500).compile(dspy.ChainOfThought("query -> intent"),
                                                                  trainset=TRAIN, valset=VAL)
    assert optimized.optimization_result.config["max_rollouts"] == cap
    assert f"auto='light' caps this compile at {cap} program runs, below max_rollouts={cap + 500}" in caplog.text
