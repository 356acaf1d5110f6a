"""score_fn <-> metric (both forms), metric values, the default metric, rows <-> Examples."""

from __future__ import annotations

import dspy
import pytest

from rollouts_dspy.dspy_integration.data import examples_to_rows, rows_to_examples
from rollouts_dspy.dspy_integration.metrics import (
    ExactMatch,
    call_metric,
    metric_to_score_fn,
    metric_value,
    score_fn_to_metric,
)
from rollouts_dspy.dtypes import Message, Metric, Sample, Score, Trajectory
from rollouts_dspy.errors import DatasetError, ScoreFnError
from rollouts_dspy.prompt_optimization.formatting import format_prompt, to_sample
from rollouts_dspy.prompt_optimization.types import PromptTemplate

TEMPLATE = PromptTemplate(system="Classify.", user_template="Query: {query}")
ROWS = [{"query": "I lost my card", "intent": "lost_or_stolen_card"},
        {"query": "refund me", "intent": "request_refund"}]


def score_fn(trajectory: Trajectory, sample: Sample) -> Score:
    ok = trajectory.final_text.strip() == sample.ground_truth
    return Score(metrics=(Metric("correct", 1.0 if ok else 0.0),),
                 feedback=f"expected: {sample.ground_truth}" if not ok else "correct")


def test_rows_to_examples_and_back():
    examples = rows_to_examples(ROWS, TEMPLATE)
    assert examples[0].inputs().toDict() == {"query": "I lost my card"}
    assert examples[0].labels().toDict() == {"intent": "lost_or_stolen_card"}
    assert examples_to_rows(examples) == ROWS
    assert rows_to_examples(ROWS, ["query"])[1].inputs().toDict() == {"query": "refund me"}
    with pytest.raises(DatasetError, match="no input field 'text'"):
        rows_to_examples(ROWS, "{text}")


def test_metric_value_forms():
    assert metric_value(True) == (1.0, "")
    assert metric_value(0) == (0.0, "")
    assert metric_value(0.25) == (0.25, "")
    assert metric_value(dspy.Prediction(score=0.0, feedback="bad")) == (0.0, "bad")
    assert metric_value({"score": True}) == (1.0, "")
    with pytest.raises(ScoreFnError, match="must return a bool"):
        metric_value("yes")
    with pytest.raises(ScoreFnError, match="non-finite"):
        metric_value(float("nan"))


def test_call_metric_passes_what_the_metric_takes():
    seen = []
    call_metric(lambda e, p: seen.append(2), 1, 2, 3, "n", [])
    call_metric(lambda e, p, trace=None: seen.append(3), 1, 2, 3, "n", [])
    call_metric(lambda g, p, t, n, pt: seen.append((n, pt)), 1, 2, 3, "n", [])
    assert seen == [2, 3, ("n", [])]


def test_score_fn_to_metric_both_forms_match_the_rollouts_path():
    example = rows_to_examples(ROWS, TEMPLATE)[0]
    plain = score_fn_to_metric(score_fn, TEMPLATE, output_field="intent")
    rich = score_fn_to_metric(score_fn, TEMPLATE, output_field="intent", feedback=True)
    good, bad = dspy.Prediction(intent="lost_or_stolen_card"), dspy.Prediction(intent="card_arrival")
    assert plain(example, good) == 1.0 and plain(example, bad, None) == 0.0
    result = rich(example, bad, None, "predict", [])
    assert result.score == 0.0 and result.feedback == "expected: lost_or_stolen_card"
    # Same verdict as the score_fn on the trajectory the rollouts path would produce.
    messages = (*format_prompt(TEMPLATE, ROWS[0]), Message("assistant", "card_arrival"))
    assert score_fn(Trajectory(messages), to_sample(TEMPLATE, ROWS, 0)).reward == result.score


def test_async_score_fn_works_as_a_metric():
    async def async_score_fn(trajectory, sample):
        return score_fn(trajectory, sample)

    metric = score_fn_to_metric(async_score_fn, TEMPLATE, output_field="intent")
    assert metric(rows_to_examples(ROWS, TEMPLATE)[1], dspy.Prediction(intent="request_refund")) == 1.0


def test_metric_to_score_fn():
    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        ok = gold.intent == pred.intent
        return dspy.Prediction(score=float(ok), feedback="" if ok else f"expected {gold.intent}")

    fn = metric_to_score_fn(metric, TEMPLATE, output_field="intent")
    sample = to_sample(TEMPLATE, ROWS, 1)
    wrong = fn(Trajectory((Message("assistant", "card_arrival"),)), sample)
    right = fn(Trajectory((Message("assistant", "request_refund"),)), sample)
    assert (wrong.reward, wrong.feedback, right.reward) == (0.0, "expected request_refund", 1.0)
    assert metric_to_score_fn(lambda e, p: e.intent == p.intent, TEMPLATE, output_field="intent")(
        Trajectory((Message("assistant", "request_refund"),)), sample).reward == 1.0


def test_exact_match_default_metric():
    metric = ExactMatch()
    example = rows_to_examples(ROWS, TEMPLATE)[0]
    ok = metric(example, dspy.Prediction(reasoning="...", intent=" Lost_or_Stolen_Card "))
    bad = metric(example, dspy.Prediction(intent="card_arrival"), None, "predict", [])
    assert ok.score == 1.0 and bad.score == 0.0
    assert "lost_or_stolen_card" in bad.feedback and "expected" in bad.feedback
    assert metric(example, dspy.Prediction(answer="x")).score == 0.0  # no label field produced
