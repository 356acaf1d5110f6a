"""The DSPy front door's Task: a candidate applied to a copy of a DSPy program, run on an Example, scored by a
DSPy metric.

Components are the program's `named_predictors()` names. `Candidate.instructions[name]` is that predictor's
instruction text and `Candidate.demos[name]` its demos as JSON-safe field dicts. Programs are built once per
candidate content (`Candidate.key`) from a deep copy of the student, which is never touched. DSPy calls are
sync, so each rollout runs on a worker thread of the task's own pool, inside a copy of the caller's context
(`dspy.context` holds there) and under `dspy.context(lm=<the LM in effect at compile time>)`; predictors that
have their own LM keep it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dspy

from ..dtypes import Usage
from ..errors import ConfigError
from ..llm import redact_secrets
from ..prompt_optimization.protocols import Rollout, RolloutError
from ..prompt_optimization.template_task import without_own_demo
from ..prompt_optimization.types import Candidate
from .data import example_inputs
from .metrics import call_metric, metric_value
from .template_module import raw_instructions

__all__ = ["ProgramTask", "apply_candidate", "candidate_of", "check_priced_lms", "classify_error", "json_safe",
           "usage_of"]

_TRANSIENT = frozenset({
    # DSPy's projection of provider failures (dspy.utils.exceptions) ...
    "LMRateLimitError", "LMTimeoutError", "LMServerError", "LMTransportError",
    # ... and litellm's own, for LMs that let them through.
    "RateLimitError", "Timeout", "APIConnectionError", "InternalServerError", "ServiceUnavailableError",
    "BadGatewayError",
})


_UNMEASURED_EXACT = frozenset({
    # DSPy's catch-alls for a reply it could not read (e.g. an HTTP 200 whose body is not JSON): the provider's
    # fault, not the program's. Exact names only: their subclasses (bad request, context window) are permanent.
    "LMProviderError", "LMUnexpectedError", "LMStreamAssemblyError",
    # A rejected key or an exhausted account: systemic, never the prompt's failure (a run of them stops the run).
    "LMAuthError", "LMBillingError", "AuthenticationError", "PermissionDeniedError",
})


def classify_error(exc: BaseException) -> str:
    """'llm' for a transient or systemic provider failure (the score is unmeasured), 'task' for anything else."""
    if type(exc).__name__ in _UNMEASURED_EXACT:
        return "llm"
    for cls in type(exc).__mro__:
        if cls.__name__ in _TRANSIENT:
            return "llm"
    return "task"


def json_safe(value: Any) -> Any:
    """A field value as JSON data (demos live in checkpoints): primitives and lists/dicts of them, else text."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return json_safe(dump())
        except Exception:  # noqa: BLE001 - fall back to text
            pass
    return str(value)


def _demo_dict(demo: Any) -> dict[str, Any]:
    items = demo.items() if hasattr(demo, "items") else dict(demo).items()
    return {str(k): json_safe(v) for k, v in items if not str(k).startswith("dspy_")}


def candidate_of(program: dspy.Module) -> Candidate:
    """The program's current instructions and demos as a Candidate (the optimization's starting point)."""
    instructions: dict[str, str] = {}
    demos: dict[str, tuple[dict[str, Any], ...]] = {}
    for name, predictor in program.named_predictors():
        instructions[name] = raw_instructions(predictor.signature)
        if predictor.demos:
            demos[name] = tuple(_demo_dict(d) for d in predictor.demos)
    return Candidate(instructions, demos)


def apply_candidate(student: dspy.Module, candidate: Candidate) -> dspy.Module:
    """A deep copy of `student` with the candidate's instructions and demos; nothing else changes.

    Deep copies share Signature classes, so instructions are replaced with `with_instructions` (a new class),
    never by assigning to the shared one."""
    program = student.deepcopy()
    for name, predictor in program.named_predictors():
        text = candidate.instructions.get(name)
        if text is not None and text != raw_instructions(predictor.signature):
            predictor.signature = predictor.signature.with_instructions(text)
        predictor.demos = [dspy.Example(**dict(d)) for d in candidate.demos.get(name, ())]
    return program


def _fields(values: Mapping[str, Any], level: str = "###", suffix: str = "") -> str:
    # One header per field (DSPy GEPA's reflection style): multi-line values such as reasoning stay readable.
    return "\n".join(f"{level} {k}{suffix}\n{v}" for k, v in values.items())


def render_output(pred: Any, trace: Sequence[tuple[Any, dict[str, Any], Any]],
                  names: Mapping[int, str]) -> str:
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


def usage_of(tracker: Any, lms: Sequence[Any] = ()) -> Usage:
    """Tokens per call from a `dspy.track_usage` tracker, priced when the model's price is known."""
    hosted = {getattr(lm, "model", None): lm for lm in lms if lm is not None}
    total = Usage()
    for model, entries in tracker.usage_data.items():
        for entry in entries:
            prompt = int(entry.get("prompt_tokens") or 0)
            completion = int(entry.get("completion_tokens") or 0)
            total = total + Usage(prompt, completion, _cost(hosted.get(model), model, prompt, completion), 1)
    return total


@functools.lru_cache(maxsize=64)
def _prices(model: str) -> tuple[float, float] | None:
    """(USD per input token, per output token) from DSPy's bundled model metadata; None when unknown."""
    try:
        from dspy.clients.model_metadata import model_info

        provider, _, name = model.partition("/")
        info = model_info(provider, name) if name else {}
        return float(info["input_cost_per_token"]), float(info["output_cost_per_token"])
    except Exception:  # noqa: BLE001 - advisory: an unknown price is None, never an error
        return None


def _cost(lm: Any, model: str, prompt: int, completion: int) -> float | None:
    # A model behind a custom api_base (a local server, a proxy) has no list price: unknown, not zero.
    if lm is None or getattr(lm, "kwargs", {}).get("api_base"):
        return None
    prices = _prices(model)
    return None if prices is None else prices[0] * prompt + prices[1] * completion


def check_priced_lms(max_cost_usd: float | None, *lms: Any) -> None:
    """A dollar budget needs every LM's price; an LM DSPy cannot price (e.g. behind a custom api_base) would let
    the run spend without counting, so it is a ConfigError before any call."""
    if max_cost_usd is None:
        return
    for lm in lms:
        model = str(getattr(lm, "model", ""))
        if lm is not None and _cost(lm, model, 1000, 1000) is None:
            raise ConfigError(f"max_cost_usd={max_cost_usd!r} cannot be enforced: DSPy has no price for the LM "
                              f"{model!r} (a custom api_base has no list price); use max_rollouts / "
                              "max_metric_calls instead")


class ProgramTask:
    """Runs candidates of a DSPy program on a list of Examples, scored by a DSPy metric (either form).

    `lm` is the LM captured at compile time (None: predictors must have their own). A program that raises
    scores `failure_score` (kind 'task') unless the failure is a transient provider error (kind 'llm',
    unmeasured); a metric that raises leaves the rollout unmeasured (kind 'score_fn')."""

    def __init__(
        self,
        student: dspy.Module,
        examples: Sequence[dspy.Example],
        metric: Callable[..., Any],
        lm: Any,
        *,
        max_concurrent: int = 8,
        failure_score: float = 0.0,
        program_cache_size: int = 64,
    ) -> None:
        self.student = student
        self.examples = list(examples)
        self.metric = metric
        self.lm = lm
        self.max_concurrent = max(1, int(max_concurrent))
        self.failure_score = failure_score
        self.program_cache_size = program_cache_size
        self._predictors = dict(student.named_predictors())
        self.components: tuple[str, ...] = tuple(self._predictors)
        # The student's first predictor's inputs: the fallback for Examples without `.with_inputs(...)`.
        first = next(iter(self._predictors.values()), None)
        self._input_fallback = tuple(first.signature.input_fields) if first is not None else ()
        self._programs: OrderedDict[str, dspy.Module] = OrderedDict()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._limit: asyncio.Semaphore | None = None
        self.rollouts_run = 0
        self.usage = Usage()
        self._usage_lock = threading.Lock()

    # -- Task protocol -------------------------------------------------------------------------------------
    async def run(self, candidate: Candidate, index: int) -> Rollout:
        shown = {k: json_safe(v) for k, v in example_inputs(self.examples[index], self._input_fallback).items()}

        def is_own(demo: Mapping[str, Any]) -> bool:
            shared = [k for k in shown if k in demo]
            return bool(shared) and all(demo[k] == shown[k] for k in shared)

        for name in list(candidate.demos):
            candidate = without_own_demo(candidate, name, is_own)
        program = self.program(candidate)
        if self._limit is None:
            self._limit = asyncio.Semaphore(self.max_concurrent)
        async with self._limit:
            loop = asyncio.get_running_loop()
            context = contextvars.copy_context()
            return await loop.run_in_executor(self._executor(), context.run, self.run_sync, program, index)

    def labeled_demo(self, index: int, component: str) -> Mapping[str, Any] | None:
        predictor = self._predictors.get(component)
        if predictor is None:
            return None
        example = self.examples[index]
        fields = predictor.signature.fields
        demo = {k: json_safe(v) for k, v in example.items() if k in fields}
        has_input = any(k in demo for k in predictor.signature.input_fields)
        has_output = any(k in demo for k in predictor.signature.output_fields)
        return demo if has_input and has_output else None

    # -- building and running --------------------------------------------------------------------------------
    def program(self, candidate: Candidate) -> dspy.Module:
        """The student with this candidate applied, built once per candidate content."""
        key = candidate.key
        program = self._programs.get(key)
        if program is None:
            program = apply_candidate(self.student, candidate)
            self._programs[key] = program
            while len(self._programs) > self.program_cache_size:
                self._programs.popitem(last=False)
        else:
            self._programs.move_to_end(key)
        return program

    def run_sync(self, program: dspy.Module, index: int) -> Rollout:
        """One rollout on the calling thread (the caller's context must hold any `dspy.context`)."""
        rollout = self._rollout(program, index)
        with self._usage_lock:
            self.rollouts_run += 1
            self.usage = self.usage + rollout.usage
        return rollout

    def _rollout(self, program: dspy.Module, index: int) -> Rollout:
        example = self.examples[index]
        inputs = example_inputs(example, self._input_fallback)
        shown = {k: str(v) for k, v in inputs.items()}
        with dspy.track_usage() as tracker:
            try:
                with dspy.context(lm=self.lm, trace=[]) if self.lm is not None else dspy.context(trace=[]):
                    pred = program(**inputs)
                    trace = list(dspy.settings.trace or [])
            except Exception as exc:  # noqa: BLE001 - a failed sample is data, never a crash of the run
                kind = classify_error(exc)
                detail = redact_secrets(f"{type(exc).__name__}: {exc}", *self._keys(program))[:2000]
                score = None if kind == "llm" else self.failure_score
                return Rollout(index, score, f"The program failed: {detail}", shown, "",
                               RolloutError(kind, detail), usage_of(tracker, self._lms(program)))
        usage = usage_of(tracker, self._lms(program))
        names = {id(p): n for n, p in program.named_predictors()}
        output = render_output(pred, trace, names)
        try:
            score, feedback = metric_value(call_metric(self.metric, example, pred, trace))
        except Exception as exc:  # noqa: BLE001 - a metric bug on one sample is that sample's failure
            return Rollout(index, None, "", shown, output, RolloutError("score_fn", f"{type(exc).__name__}: {exc}"),
                           usage)
        return Rollout(index, score, feedback or f"This trajectory got a score of {score:g}.", shown, output, None,
                       usage, self._demos(trace, names))

    def _keys(self, program: dspy.Module) -> list[str]:
        """The API keys of the LMs in play, to redact from error messages (providers echo them)."""
        return [str((getattr(lm, "kwargs", None) or {}).get("api_key") or "") for lm in self._lms(program)]

    def _lms(self, program: dspy.Module) -> list[Any]:
        return [self.lm, *(getattr(p, "lm", None) for _, p in program.named_predictors())]

    def _demos(self, trace: Sequence[tuple[Any, dict[str, Any], Any]], names: Mapping[int, str]
               ) -> dict[str, dict[str, Any]]:
        """Each predictor's first call in this run as a demo of its fields (MIPRO's bootstrapped demos)."""
        demos: dict[str, dict[str, Any]] = {}
        for predictor, inputs, outputs in trace:
            name = names.get(id(predictor))
            if name is None or name in demos:
                continue
            out = dict(outputs.items()) if hasattr(outputs, "items") else {}
            demo = {k: json_safe(v) for k, v in {**inputs, **out}.items() if k in predictor.signature.fields}
            demos[name] = demo
        return demos

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.max_concurrent, thread_name_prefix="rollouts")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._limit = None

    def __repr__(self) -> str:
        return f"ProgramTask(components={self.components}, examples={len(self.examples)})"

