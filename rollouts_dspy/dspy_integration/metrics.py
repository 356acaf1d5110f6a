"""score_fn <-> DSPy metric, DSPy metric values -> (score, feedback), and the default exact-match metric.

DSPy metrics come in two forms: `metric(example, pred, trace=None)` returning a bool or a number, and GEPA's
feedback form `metric(gold, pred, trace, pred_name, pred_trace)` returning `dspy.Prediction(score=...,
feedback=...)`. A `Prediction` is always truthy, so every threshold here compares the float score, never the
returned object.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy

from ..dtypes import Message, Metric, Sample, Score, ScoreFn, Trajectory
from ..errors import ScoreFnError
from ..prompt_optimization.formatting import format_prompt
from ..prompt_optimization.types import PromptTemplate
from .data import example_inputs, example_labels
from .template_module import DEFAULT_OUTPUT_FIELD

__all__ = [
    "ExactMatch",
    "MetricCaller",
    "MetricResult",
    "call_metric",
    "metric_result",
    "metric_to_score_fn",
    "metric_value",
    "score_fn_to_metric",
]


@dataclass(frozen=True)
class MetricResult:
    """A metric's return value read once: the float score, the feedback text (may be empty) and, for DSPy's
    multi-objective metrics (`dspy.Prediction(score=..., objective_scores={...})`), the subscores."""

    score: float
    feedback: str = ""
    objectives: Mapping[str, float] = field(default_factory=dict)


def metric_result(value: Any) -> MetricResult:
    """A metric's return value as a MetricResult. bool -> 1.0/0.0; a number -> float; a Prediction or mapping
    with `score` -> its float score, its `feedback` and its `objective_scores`."""
    if isinstance(value, bool):
        return MetricResult(1.0 if value else 0.0)
    if isinstance(value, (int, float)):
        score = float(value)
    elif isinstance(value, (dspy.Prediction, Mapping)) and "score" in value:
        score = metric_result(value["score"]).score
        feedback = value.get("feedback") if hasattr(value, "get") else None
        raw = value.get("objective_scores") if hasattr(value, "get") else None
        _check_finite(score, value)
        return MetricResult(score, "" if feedback is None else str(feedback), _objectives(raw, value))
    elif isinstance(value, Score):
        return MetricResult(value.reward, value.describe(), {m.name: float(m.value) for m in value.metrics})
    else:
        try:
            score = float(value)  # numpy scalars and the like
        except (TypeError, ValueError):
            raise ScoreFnError(
                f"a metric must return a bool, a number or dspy.Prediction(score=..., feedback=...), but returned "
                f"{type(value).__name__}: {value!r:.200}"
            ) from None
    _check_finite(score, value)
    return MetricResult(score)


def _objectives(raw: Any, value: Any) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ScoreFnError(f"a metric's objective_scores must be a mapping of names to numbers, but got {raw!r:.200}")
    out = {str(k): metric_result(v).score for k, v in raw.items()}
    for v in out.values():
        _check_finite(v, value)
    return out


def metric_value(value: Any) -> tuple[float, str]:
    """A metric's return value as (float score, feedback text); see `metric_result`."""
    result = metric_result(value)
    return result.score, result.feedback


def _check_finite(score: float, value: Any) -> None:
    if not math.isfinite(score):
        raise ScoreFnError(f"a metric returned a non-finite score: {value!r:.200}")


def _arity(fn: Callable[..., Any]) -> tuple[int, int]:
    """(positional parameters without a default, positional parameters accepted; 99 for *args)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2, 3
    required = accepted = 0
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            return required, 99
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            accepted += 1
            required += p.default is p.empty
    return required, accepted


class MetricCaller:
    """Calls a user's metric exactly as DSPy's optimizers do (the signature is read once):

    - `evaluate`: `metric(example, pred)`, as `dspy.Evaluate` does for MIPROv2's and dspy.GEPA's scores, so
      `trace` keeps its default (None) and metrics that branch on `trace is None` take the evaluation branch;
    - `bootstrap`: `metric(example, pred, trace)`, as `BootstrapFewShot` does when it keeps runs as demos;
    - `feedback`: `metric(gold, pred, trace, pred_name, pred_trace)`, as dspy.GEPA asks for one predictor's
      feedback (`pred_trace` holds that predictor's call only).

    A metric that requires more positional arguments than DSPy passes there gets None for them; one that takes
    fewer gets the first ones (a two-argument metric still gives program-level feedback)."""

    def __init__(self, metric: Callable[..., Any]) -> None:
        if not callable(metric):
            raise ScoreFnError(f"metric must be callable, but got {type(metric).__name__}")
        self.metric = metric
        self.required, self.accepted = _arity(metric)

    def _call(self, *args: Any) -> Any:
        n = max(self.required, min(len(args), self.accepted))
        return self.metric(*(args + (None,) * n)[:n])

    def evaluate(self, example: Any, pred: Any) -> Any:
        return self._call(example, pred)

    def bootstrap(self, example: Any, pred: Any, trace: Any) -> Any:
        return self._call(example, pred, trace)

    def feedback(self, example: Any, pred: Any, trace: Any, pred_name: str, pred_trace: Any) -> Any:
        return self._call(example, pred, trace, pred_name, pred_trace)


def call_metric(metric: Callable[..., Any], example: Any, pred: Any, trace: Any = None,
                pred_name: str | None = None, pred_trace: Any = None) -> Any:
    """Call a metric of either form with as many of these arguments as it takes (see MetricCaller)."""
    return MetricCaller(metric)._call(example, pred, trace, pred_name, pred_trace)


def _normalize(value: Any) -> str:
    return " ".join(str(value).split()).casefold()


class ExactMatch:
    """The default metric: each label of the example that the program also outputs must equal the output
    (whitespace- and case-insensitive). Feedback names the expected value, which is what reflection needs.
    Works in both forms (3 or 5 arguments) and returns `dspy.Prediction(score=..., feedback=...)`."""

    def __init__(self, fields: Sequence[str] | None = None) -> None:
        self.fields = tuple(fields) if fields else None

    def __call__(self, gold: Any, pred: Any, trace: Any = None, pred_name: str | None = None,
                 pred_trace: Any = None) -> dspy.Prediction:
        names = self.fields or tuple(k for k in gold.keys() if k not in example_inputs(gold) and k in pred)
        if not names:
            return dspy.Prediction(score=0.0, feedback="The program produced none of the example's label fields.")
        wrong = []
        for name in names:
            got = pred.get(name) if hasattr(pred, "get") else getattr(pred, name, None)
            if got is None or _normalize(got) != _normalize(gold[name]):
                wrong.append(name)
        score = (len(names) - len(wrong)) / len(names)
        if not wrong:
            shown = ", ".join(f"{n} = {gold[n]}" for n in names)
            return dspy.Prediction(score=score, feedback=f"Correct. The expected {shown} was produced.")
        parts = [f"expected {n}: {gold[n]}" for n in wrong]
        return dspy.Prediction(score=score, feedback="Incorrect; the correct answer is " + "; ".join(parts) + ".")

    def __repr__(self) -> str:
        return f"ExactMatch(fields={self.fields!r})"


def _run_sync(value: Any) -> Any:
    """Resolve an awaitable returned by an async score_fn from sync code (DSPy metrics are sync)."""
    if not inspect.isawaitable(value):
        return value
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(value))
    # Called from inside a running loop (e.g. directly in async code): finish it on a helper thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _await(value)).result()


async def _await(value: Any) -> Any:
    return await value


def _sample_of(example: Any, input_fields: Sequence[str]) -> Sample:
    inputs = example_inputs(example, input_fields)
    labels = example_labels(example, inputs)
    labels.pop("id", None)
    truth: Any = None if not labels else next(iter(labels.values())) if len(labels) == 1 else labels
    return Sample(id=str(example.get("id", "")), input=inputs, ground_truth=truth,
                  metadata={"row": dict(example.items())})


def score_fn_to_metric(score_fn: ScoreFn, template: PromptTemplate, *, output_field: str = DEFAULT_OUTPUT_FIELD,
                       feedback: bool = False) -> Callable[..., Any]:
    """A rollouts `score_fn(trajectory, sample) -> Score` as a DSPy metric.

    The trajectory it sees is what the rollouts path would have produced: `format_prompt(template, inputs)` plus
    the program's `output_field` as the assistant's answer. `feedback=False` gives `metric(example, pred,
    trace=None) -> float`; `feedback=True` GEPA's form `metric(gold, pred, trace=None, pred_name=None,
    pred_trace=None) -> dspy.Prediction(score=..., feedback=...)`."""
    if not callable(score_fn):
        raise ScoreFnError(f"score_fn must be callable, but got {type(score_fn).__name__}")
    from ..prompt_optimization.formatting import placeholders

    fields = placeholders(template.user_template)

    def evaluate(example: Any, pred: Any) -> Score:
        sample = _sample_of(example, fields)
        answer = pred.get(output_field) if hasattr(pred, "get") else getattr(pred, output_field, None)
        messages = [*format_prompt(template, sample.input), Message("assistant", "" if answer is None else str(answer))]
        value = _run_sync(score_fn(Trajectory(tuple(messages)), sample))
        if not isinstance(value, Score):
            raise ScoreFnError(f"score_fn must return a Score, but returned {type(value).__name__}")
        return value

    if feedback:
        def feedback_metric(gold: Any, pred: Any, trace: Any = None, pred_name: str | None = None,
                            pred_trace: Any = None) -> dspy.Prediction:
            score = evaluate(gold, pred)
            return dspy.Prediction(score=score.reward, feedback=score.describe())

        return feedback_metric

    def metric(example: Any, pred: Any, trace: Any = None) -> float:
        return evaluate(example, pred).reward

    return metric


def metric_to_score_fn(metric: Callable[..., Any], template: PromptTemplate, *,
                       output_field: str = DEFAULT_OUTPUT_FIELD) -> ScoreFn:
    """A DSPy metric (either form) as a rollouts score_fn: the sample becomes a `dspy.Example` (inputs: the
    template's placeholders, labels: the ground truth, named `output_field` unless it is a dict of labels) and
    the final answer a `dspy.Prediction(<output_field>=answer)`."""
    if not callable(metric):
        raise ScoreFnError(f"metric must be callable, but got {type(metric).__name__}")
    from ..prompt_optimization.formatting import placeholders

    fields = placeholders(template.user_template)
    caller = MetricCaller(metric)

    def score_fn(trajectory: Trajectory, sample: Sample) -> Score:
        truth = sample.ground_truth
        labels = dict(truth) if isinstance(truth, Mapping) else ({} if truth is None else {output_field: truth})
        example = dspy.Example(**dict(sample.input), **labels).with_inputs(*fields)
        pred = dspy.Prediction(**{output_field: trajectory.final_text})
        score, text = metric_value(caller.evaluate(example, pred))
        return Score(metrics=(Metric("metric", score),), feedback=text or None)

    return score_fn
