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
    "call_metric",
    "metric_to_score_fn",
    "metric_value",
    "score_fn_to_metric",
]


def metric_value(value: Any) -> tuple[float, str]:
    """A metric's return value as (float score, feedback text). bool -> 1.0/0.0; a number -> float; a
    Prediction or mapping with `score` -> its float score and its `feedback` (may be empty)."""
    if isinstance(value, bool):
        return (1.0 if value else 0.0), ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        score = float(value)
    elif isinstance(value, (dspy.Prediction, Mapping)) and "score" in value:
        raw = value["score"]
        score, _ = metric_value(raw)
        feedback = value.get("feedback") if hasattr(value, "get") else None
        _check_finite(score, value)
        return score, "" if feedback is None else str(feedback)
    elif isinstance(value, Score):
        return value.reward, value.describe()
    else:
        try:
            score = float(value)  # numpy scalars and the like
        except (TypeError, ValueError):
            raise ScoreFnError(
                f"a metric must return a bool, a number or dspy.Prediction(score=..., feedback=...), but returned "
                f"{type(value).__name__}: {value!r:.200}"
            ) from None
    _check_finite(score, value)
    return score, ""


def _check_finite(score: float, value: Any) -> None:
    if not math.isfinite(score):
        raise ScoreFnError(f"a metric returned a non-finite score: {value!r:.200}")


def _positional_capacity(fn: Callable[..., Any]) -> int:
    """How many positional arguments `fn` accepts (a large number for *args)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 3
    count = 0
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            return 99
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def call_metric(metric: Callable[..., Any], example: Any, pred: Any, trace: Any = None,
                pred_name: str | None = None, pred_trace: Any = None) -> Any:
    """Call a metric of either form with as many of DSPy's arguments as it takes."""
    capacity = _positional_capacity(metric)
    if capacity >= 5:
        return metric(example, pred, trace, pred_name, pred_trace)
    if capacity >= 3:
        return metric(example, pred, trace)
    return metric(example, pred)


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

    def score_fn(trajectory: Trajectory, sample: Sample) -> Score:
        truth = sample.ground_truth
        labels = dict(truth) if isinstance(truth, Mapping) else ({} if truth is None else {output_field: truth})
        example = dspy.Example(**dict(sample.input), **labels).with_inputs(*fields)
        pred = dspy.Prediction(**{output_field: trajectory.final_text})
        score, text = metric_value(call_metric(metric, example, pred, None))
        return Score(metrics=(Metric("metric", score),), feedback=text or None)

    return score_fn
