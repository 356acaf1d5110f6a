"""The metric is called as DSPy calls it (recorded call by call): evaluations with `trace=None`, demo
bootstrapping with the trace, GEPA feedback once per predictor with `pred_name` and that predictor's own
`pred_trace`, for one- and two-predictor programs."""

from __future__ import annotations

import asyncio
import threading

import dspy
import pytest
from dspy_helpers import TwoStep

from rollouts_dspy.dspy_integration import ProgramTask, RolloutsGEPA, RolloutsMIPRO, TaskOptions, rows_to_examples
from rollouts_dspy.dspy_integration.candidates import candidate_of
from rollouts_dspy.dspy_integration.metrics import MetricCaller
from rollouts_dspy.testing import generate_intent_queries

EXAMPLES = rows_to_examples(generate_intent_queries(30, seed=4), ["query"])


class Recorder:
    """A GEPA-style metric that records how it was called and branches on `trace is None`, as DSPy's docs
    show: a float score for evaluations, a pass/fail bool when bootstrapping."""

    def __init__(self):
        self.calls: list[dict] = []
        self._lock = threading.Lock()

    def __call__(self, gold, pred, trace=None, pred_name=None, pred_trace=None):
        names = None
        if pred_trace is not None:
            names = [type(p).__name__ for p, _, _ in pred_trace]
        with self._lock:
            self.calls.append({"trace": None if trace is None else len(trace), "pred_name": pred_name,
                               "pred_trace": names})
        score = float(str(pred.intent).strip().lower() == gold.intent.lower())
        if trace is not None and pred_name is None:
            return score >= 1.0
        return dspy.Prediction(score=score, feedback=f"feedback for {pred_name or 'the program'}")

    def kinds(self) -> set[tuple]:
        return {(c["trace"] is None, c["pred_name"]) for c in self.calls}


def test_metric_caller_passes_what_dspy_passes():
    seen = []
    caller = MetricCaller(lambda g, p, trace=None, pred_name=None, pred_trace=None: seen.append(
        (trace, pred_name, pred_trace)))
    caller.evaluate(1, 2)
    caller.bootstrap(1, 2, ["t"])
    caller.feedback(1, 2, ["t"], "step", ["one"])
    assert seen == [(None, None, None), (["t"], None, None), (["t"], "step", ["one"])]
    required = MetricCaller(lambda g, p, trace, pred_name, pred_trace: seen.append(trace))
    required.evaluate(1, 2)  # a metric that requires all five still gets trace=None for evaluations
    assert seen[-1] is None
    two = MetricCaller(lambda g, p: seen.append("two"))
    two.feedback(1, 2, [], "step", [])  # a two-argument metric gives program-level feedback
    assert seen[-1] == "two"


@pytest.mark.parametrize("make", [lambda: dspy.Predict("query -> intent"), TwoStep], ids=["one", "two"])
def test_gepa_evaluates_with_trace_none(make, task_lm, reflect_lm):
    metric = Recorder()
    with dspy.context(lm=task_lm):
        RolloutsGEPA(metric=metric, reflection_lm=reflect_lm, max_metric_calls=120).compile(
            make(), trainset=EXAMPLES[:10], valset=EXAMPLES[10:20])
    evaluations = [c for c in metric.calls if c["pred_name"] is None]
    assert evaluations and all(c["trace"] is None for c in evaluations)


@pytest.mark.parametrize("make", [lambda: dspy.Predict("query -> intent"), TwoStep], ids=["one", "two"])
def test_component_feedback_asks_each_predictor_with_its_own_trace(make, task_lm):
    metric = Recorder()
    student = make()
    task = ProgramTask(student, EXAMPLES[:4], metric, task_lm, TaskOptions(max_concurrent=2))
    candidate = candidate_of(student)

    async def run():
        try:
            rollouts = await asyncio.gather(*(task.run(candidate, i) for i in range(4)))
            return rollouts, {c: await task.component_feedback(candidate, rollouts, c) for c in task.components}
        finally:
            task.close()

    rollouts, feedback = asyncio.run(run())
    asked = [c for c in metric.calls if c["pred_name"] is not None]
    assert sorted({c["pred_name"] for c in asked}) == sorted(task.components)
    assert all(c["trace"] == len(task.components) and c["pred_trace"] == ["Predict"] for c in asked)
    for component, shown in feedback.items():
        assert [r.sample_index for r in shown] == [0, 1, 2, 3]
        assert all(r.feedback == f"feedback for {component}" for r in shown)
        assert [r.score for r in shown] == [r.score for r in rollouts]  # scores stay the program's


def test_gepa_asks_per_predictor_feedback_during_the_run(task_lm, reflect_lm):
    metric = Recorder()
    with dspy.context(lm=task_lm):
        RolloutsGEPA(metric=metric, reflection_lm=reflect_lm, max_metric_calls=120).compile(
            TwoStep(), trainset=EXAMPLES[:10], valset=EXAMPLES[10:20])
    assert {c["pred_name"] for c in metric.calls} >= {"draft", "check"}


@pytest.mark.parametrize("make", [lambda: dspy.ChainOfThought("query -> intent"), TwoStep], ids=["one", "two"])
def test_mipro_evaluates_with_trace_none_and_bootstraps_with_the_trace(make, task_lm, reflect_lm):
    metric = Recorder()
    student = make()
    with dspy.context(lm=task_lm):
        optimized = RolloutsMIPRO(metric, prompt_model=reflect_lm, auto=None, num_candidates=2,
                                  max_labeled_demos=0).compile(
            student, trainset=EXAMPLES[:12], valset=EXAMPLES[12:20], num_trials=6, minibatch_size=6)
    evaluations = [c for c in metric.calls if c["trace"] is None]
    bootstraps = [c for c in metric.calls if c["trace"] is not None]
    steps = len(list(student.named_predictors()))
    assert evaluations and bootstraps and metric.kinds() == {(True, None), (False, None)}
    assert all(c["trace"] == steps for c in bootstraps)  # the whole run's trace: one entry per predictor call
    # Bootstrapped demos (they hold fields no label has: reasoning, the draft) come from the runs the metric
    # passed with the trace (its bool branch).
    demos = [d for r in optimized.search_outcome.records for ds in r.candidate.demos.values() for d in ds]
    assert any({"reasoning", "draft"} & set(d) for d in demos)
