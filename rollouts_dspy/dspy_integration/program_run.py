"""One run of a DSPy program on one Example, scored by the user's metric: the synchronous heart of ProgramTask
(it runs on a worker thread, inside a copy of the caller's context).

A run that raises scores `failure_score` (kind 'task'), unless the failure is the provider's (kind 'llm',
unmeasured). A reply the adapter cannot parse is a format failure: scored `failure_score`, its raw text kept for
reflection. A metric that raises leaves the rollout unmeasured (kind 'score_fn').
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy

from ..llm import redact_secrets
from ..prompt_optimization.protocols import Rollout, RolloutError
from .candidates import json_safe
from .data import example_inputs
from .metrics import MetricCaller, metric_result
from .providers import classify_error, usage_of

__all__ = ["FormatFailure", "RunRecord", "RunSettings", "format_structure", "render_output", "run_program",
           "unparsed_output"]

logger = logging.getLogger("dspy.teleprompt.rollouts_dspy")

Trace = list[tuple[Any, dict[str, Any], Any]]


@dataclass(frozen=True)
class FormatFailure:
    """The trace entry of a predictor whose reply did not parse (DSPy's FailedPrediction): the raw reply."""

    completion_text: str


@dataclass(frozen=True)
class RunRecord:
    """What a run leaves behind for later questions (per-predictor feedback, best outputs): the Example, the
    program's Prediction (None when it raised) and the trace, with the program's predictor names."""

    example: Any
    prediction: Any
    trace: Trace
    names: Mapping[int, str]


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """How a run is scored. `bootstrap`: call the metric with the trace, as BootstrapFewShot does when it keeps
    runs as demos (else as an evaluation: `metric(example, pred)`). `settings`: extra `dspy.context` settings
    for the run (MIPROv2's `teacher_settings`). `provide_traceback`: failures carry (and log) their traceback."""

    lm: Any
    caller: MetricCaller
    input_order: tuple[str, ...]
    failure_score: float = 0.0
    bootstrap: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict)
    provide_traceback: bool = False


def _fields(values: Mapping[str, Any], level: str = "###", suffix: str = "") -> str:
    # One header per field (DSPy GEPA's reflection style): multi-line values such as reasoning stay readable.
    return "\n".join(f"{level} {k}{suffix}\n{v}" for k, v in values.items())


def render_output(pred: Any, trace: Sequence[tuple[Any, dict[str, Any], Any]], names: Mapping[int, str]) -> str:
    """The program's side of a rollout as text for reflection: the answer alone for a one-field prediction of a
    one-call program, else one header per output field, and for several calls each step's inputs and outputs
    in order."""
    fields = dict(pred.items()) if hasattr(pred, "items") else {"output": pred}
    if len(trace) <= 1 and len(fields) == 1:
        return str(next(iter(fields.values())))
    if len(trace) <= 1:
        return _fields(fields)
    parts = []
    for step, (predictor, inputs, outputs) in enumerate(trace, 1):
        name = names.get(id(predictor), type(predictor).__name__)
        out = dict(outputs.items()) if hasattr(outputs, "items") else {"output": outputs}
        parts.append(f"### Step {step}: {name}\n{_fields(inputs, '####', ' (input)')}\n{_fields(out, '####')}")
    return "\n".join(parts)


def unparsed_output(raw: str) -> str:
    """How a reply that did not parse is shown to a reflection (the text dspy.GEPA shows it)."""
    return ("Couldn't parse the output as per the expected output format. The model's raw response was:\n"
            f"```\n{raw}\n```")


def format_structure(signature: Any) -> str:
    """The message structure the chat adapter expects for `signature` (DSPy's format-failure feedback)."""
    from dspy.adapters.chat_adapter import ChatAdapter

    return "".join(f"{m['role']}: {m['content']}\n" for m in ChatAdapter().format(signature, [], {}))


def _demos(trace: Trace, names: Mapping[int, str]) -> dict[str, dict[str, Any]]:
    """Each predictor's first call in this run as a demo of its fields (MIPRO's bootstrapped demos)."""
    demos: dict[str, dict[str, Any]] = {}
    for predictor, inputs, outputs in trace:
        name = names.get(id(predictor))
        if name is None or name in demos or isinstance(outputs, FormatFailure):
            continue
        out = dict(outputs.items()) if hasattr(outputs, "items") else {}
        demos[name] = {k: json_safe(v) for k, v in {**inputs, **out}.items() if k in predictor.signature.fields}
    return demos


def _lms(lm: Any, program: dspy.Module) -> list[Any]:
    return [lm, *(getattr(p, "lm", None) for _, p in program.named_predictors())]


def _describe(exc: BaseException, program: dspy.Module, settings: RunSettings) -> str:
    keys = [str((getattr(lm, "kwargs", None) or {}).get("api_key") or "") for lm in _lms(settings.lm, program)]
    text = f"{type(exc).__name__}: {exc}"
    if settings.provide_traceback:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    # Providers quote the caller's key in some errors; the detail ends up in checkpoints, logs and prompts.
    return redact_secrets(text, *keys)[:4000]


def _run(program: dspy.Module, inputs: Mapping[str, Any], settings: RunSettings) -> tuple[Any, Trace]:
    context = {"trace": [], **dict(settings.settings)}
    if settings.lm is not None and "lm" not in settings.settings:
        context["lm"] = settings.lm
    with dspy.context(**context):
        try:
            return program(**inputs), list(dspy.settings.trace or [])
        except Exception as exc:
            exc.rollouts_trace = list(dspy.settings.trace or [])  # type: ignore[attr-defined]
            raise


def _format_failure(exc: Any, program: dspy.Module, inputs: Mapping[str, Any], trace: Trace) -> Trace:
    """The trace of a run whose reply did not parse, with the failing predictor's entry appended."""
    predictors = [p for _, p in program.named_predictors()]
    found = next((p for p in predictors if p.signature == getattr(exc, "signature", None)), None)
    if found is None:
        return trace
    shown = dict(inputs) if len(predictors) == 1 else {}
    return [*trace, (found, shown, FormatFailure(str(getattr(exc, "lm_response", ""))))]


def run_program(program: dspy.Module, example: Any, index: int, settings: RunSettings
                ) -> tuple[Rollout, RunRecord]:
    """Run `program` on `example` (sample `index`) and score it; never raises for the sample's failure."""
    inputs = example_inputs(example, settings.input_order)
    shown = {k: str(v) for k, v in inputs.items()}
    names = {id(p): n for n, p in program.named_predictors()}
    with dspy.track_usage() as tracker:
        try:
            pred, trace = _run(program, inputs, settings)
        except Exception as exc:  # noqa: BLE001 - a failed sample is data, never a crash of the run
            usage = usage_of(tracker, _lms(settings.lm, program))
            return _failed(exc, program, example, index, inputs, usage, settings)
    usage = usage_of(tracker, _lms(settings.lm, program))
    output = render_output(pred, trace, names)
    record = RunRecord(example, pred, trace, names)
    try:
        caller = settings.caller
        value = caller.bootstrap(example, pred, trace) if settings.bootstrap else caller.evaluate(example, pred)
        result = metric_result(value)
    except Exception as exc:  # noqa: BLE001 - a metric bug on one sample is that sample's failure
        detail = _describe(exc, program, settings)
        logger.error("Error scoring example %d: %s", index, detail)
        return Rollout(index, None, "", shown, output, RolloutError("score_fn", detail), usage), record
    feedback = result.feedback or f"This trajectory got a score of {result.score:g}."
    rollout = Rollout(index, result.score, feedback, shown, output, None, usage, _demos(trace, names),
                      dict(result.objectives))
    return rollout, record


def _failed(exc: Exception, program: dspy.Module, example: Any, index: int, inputs: Mapping[str, Any], usage: Any,
            settings: RunSettings) -> tuple[Rollout, RunRecord]:
    from dspy.utils.exceptions import AdapterParseError

    names = {id(p): n for n, p in program.named_predictors()}
    shown = {k: str(v) for k, v in inputs.items()}
    trace: Trace = list(getattr(exc, "rollouts_trace", []))
    detail = _describe(exc, program, settings)
    if settings.provide_traceback:
        logger.error("Error for example %d:\n%s", index, detail)
    else:
        logger.error("Error for example %d: %s. Set `provide_traceback=True` for the traceback.", index, detail)
    if isinstance(exc, AdapterParseError):
        trace = _format_failure(exc, program, inputs, trace)
        raw = str(getattr(exc, "lm_response", ""))
        output = unparsed_output(raw)
        rollout = Rollout(index, settings.failure_score, f"The program failed: {detail}", shown, output,
                          RolloutError("task", detail), usage)
        return rollout, RunRecord(example, None, trace, names)
    kind = classify_error(exc)
    score = None if kind == "llm" else settings.failure_score
    rollout = Rollout(index, score, f"The program failed: {detail}", shown, "", RolloutError(kind, detail), usage)
    return rollout, RunRecord(example, None, trace, names)
