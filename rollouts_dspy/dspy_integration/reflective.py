"""What dspy.GEPA shows its strategies about a program's runs, built from the runs a ProgramTask remembers.

- `component_call`: the one call of a predictor in a run that a reflection on that predictor looks at (the
  per-predictor feedback and the reflective example are both about this call).
- `reflective_example`: one entry of the reflective dataset a `ProposalFn` receives, `{"Inputs", "Generated
  Outputs", "Feedback"}`, with DSPy's conventions: DSPy's built-in `InstructionProposer` gets the values
  themselves, a custom proposer strings (`dspy.Type` values such as `dspy.Image` are kept, so a multimodal
  proposer sees them), a `dspy.History` input becomes the "Context" entry.
- `trajectory`: what a `ReflectionComponentSelector` receives per run (DSPy's `TraceData`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from ..prompt_optimization.protocols import Rollout
from .program_run import FormatFailure, RunRecord, unparsed_output

__all__ = ["TraceEntry", "component_call", "reflective_example", "trajectory"]

TraceEntry = tuple[Any, dict[str, Any], Any]
"""(predictor, its inputs, its outputs or a FormatFailure): one call in a DSPy trace."""


def component_call(record: RunRecord, key: str, index: int, component: str, *, failures: bool
                   ) -> TraceEntry | None:
    """The call of `component` in this run a reflection on it looks at, as dspy.GEPA picks it: its first reply
    that did not parse (only with `failures`, i.e. add_format_failure_as_feedback), else one of its calls drawn
    with an RNG seeded by (candidate, sample, component) -- a program may call a predictor several times. None
    when the predictor made no usable call (or the run raised after it)."""
    calls = [t for t in record.trace if record.names.get(id(t[0])) == component]
    if not failures:
        calls = [t for t in calls if not isinstance(t[2], FormatFailure)]
    if not calls:
        return None
    failed = next((t for t in calls if isinstance(t[2], FormatFailure)), None)
    if failed is not None:
        return failed
    if record.prediction is None:
        return None
    return random.Random(f"{key}:{index}:{component}").choice(calls)


def _history_text(history: Any) -> str:
    from dspy.teleprompt.gepa.gepa_utils import format_history_for_reflection

    return format_history_for_reflection(history)


def reflective_example(call: TraceEntry | None, rollout: Rollout, *, raw: bool) -> dict[str, Any]:
    """The reflective example of `rollout` for the predictor of `call` (its feedback is the rollout's, already
    the predictor's own). `raw`: keep values as they are (DSPy's built-in proposer). Without a remembered call
    (a run restored from a checkpoint) the program's inputs and output as text."""
    if call is None:
        return {"Inputs": dict(rollout.inputs), "Generated Outputs": rollout.output, "Feedback": rollout.feedback}
    from dspy.adapters.types import History
    from dspy.adapters.types.base_type import Type

    _, inputs, outputs = call
    shown: dict[str, Any] = {}
    for value in inputs.values():
        if isinstance(value, History):
            shown["Context"] = value if raw else _history_text(value)
    for name, value in inputs.items():
        if not isinstance(value, History):
            shown[name] = value if raw or isinstance(value, Type) else str(value)
    generated: dict[str, Any] | str
    if isinstance(outputs, FormatFailure):
        generated = unparsed_output(outputs.completion_text) + "\n\n"
    else:
        items = outputs.items() if hasattr(outputs, "items") else {"output": outputs}.items()
        generated = {k: v if raw else str(v) for k, v in items}
    return {"Inputs": shown, "Generated Outputs": generated, "Feedback": rollout.feedback}


def _dspy_trace(trace: list[TraceEntry]) -> list[TraceEntry]:
    from dspy.teleprompt.bootstrap_trace import FailedPrediction

    return [(p, i, FailedPrediction(o.completion_text) if isinstance(o, FormatFailure) else o) for p, i, o in trace]


def trajectory(position: int, record: RunRecord | None, rollout: Rollout, example: Any) -> Mapping[str, Any]:
    """DSPy's TraceData for one run of a step's minibatch: `example_ind` its position there, the Example, the
    program's Prediction (a FailedPrediction for a reply that did not parse, None when the program raised or
    the run is not remembered), the trace (with DSPy's FailedPrediction entries) and the program's score."""
    if record is None:
        return {"example_ind": position, "example": example, "prediction": None, "trace": [],
                "score": rollout.score}
    trace = _dspy_trace(record.trace)
    prediction = record.prediction
    if prediction is None:
        failed = [o for _, _, o in trace if type(o).__name__ == "FailedPrediction"]
        prediction = failed[-1] if failed else None
    return {"example_ind": position, "example": record.example, "prediction": prediction, "trace": trace,
            "score": rollout.score}
