"""The DSPy front door's Task: a candidate applied to a copy of a DSPy program, run on an Example, scored by a
DSPy metric called as DSPy calls it.

Programs are built once per candidate content (`Candidate.key`) from a deep copy of the student, which is never
touched. DSPy calls are sync, so each rollout runs on a worker thread of the task's own pool, inside a copy of
the caller's context (`dspy.context` holds there) and under `dspy.context(lm=<the LM in effect at compile
time>)`; predictors that have their own LM keep it. A cancelled rollout starts no new LM call (see `guard`).

Beyond the Task protocol it answers the GEPA engine's per-component feedback question (`component_feedback`:
the metric called with `pred_name`/`pred_trace`, as dspy.GEPA asks) from the traces of the runs it remembers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import dspy

from ..dtypes import Usage
from ..errors import ConfigError
from ..prompt_optimization.protocols import Rollout
from ..prompt_optimization.template_task import without_own_demo
from ..prompt_optimization.types import Candidate
from . import guard
from .candidates import apply_candidate, candidate_of, json_safe
from .data import example_inputs
from .metrics import MetricCaller, metric_result
from .program_run import FormatFailure, RunRecord, RunSettings, format_structure, run_program
from .providers import check_priced_lms, classify_error, usage_of
from .reflective import component_call
from .run_memory import RunMemory

__all__ = ["ProgramTask", "TaskOptions", "TooManyErrors", "apply_candidate", "candidate_of", "check_priced_lms",
           "classify_error", "json_safe", "usage_of"]

logger = logging.getLogger("dspy.teleprompt.rollouts_dspy")

DEFAULT_THREADS = 8
KEEP_RUNS = 4096
"""Runs remembered (the most recent ones) on samples outside `TaskOptions.keep_runs_for`."""


class TooManyErrors(RuntimeError):
    """More programs raised than `max_errors` allows (MIPROv2's `max_errors`): the run stops."""


@dataclass(frozen=True, kw_only=True)
class TaskOptions:
    """How a ProgramTask runs and scores, with DSPy's names where DSPy has the knob.

    `bootstrap`: score with the trace (demo bootstrapping) instead of as an evaluation. `fixed_program`: run the
    program as given whatever candidate is asked for (a teacher). `settings`: extra `dspy.context` settings per
    run (`teacher_settings`). `max_errors`: stop the run once this many programs raised (None: never; a failed
    sample is data). `memory`: what the runs leave behind for later questions (per-predictor feedback, the
    Predictions behind `track_best_outputs`), kept across a resume with a checkpoint directory.
    `keep_runs_for`: the samples whose runs (traces) are remembered for the whole run, because feedback may be
    asked about them at any later step (GEPA: the training samples); other runs are remembered up to KEEP_RUNS,
    so whether a trace is still there never depends on how many runs happened in between. `on_rollout`:
    called (on the worker thread) after each rollout, e.g. by a progress bar."""

    max_concurrent: int = DEFAULT_THREADS
    failure_score: float = 0.0
    bootstrap: bool = False
    fixed_program: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict)
    add_format_failure_as_feedback: bool = False
    warn_on_score_mismatch: bool = True
    max_errors: int | None = None
    provide_traceback: bool = False
    memory: RunMemory | None = None
    keep_runs_for: frozenset[int] = frozenset()
    on_rollout: Callable[[Rollout], None] | None = None


class ProgramTask:
    """Runs candidates of a DSPy program on a list of Examples, scored by a DSPy metric (either form).
    `lm` is the LM captured at compile time (None: predictors must have their own)."""

    def __init__(self, student: dspy.Module, examples: Sequence[dspy.Example], metric: Callable[..., Any], lm: Any,
                 options: TaskOptions | None = None) -> None:
        self.student = student
        self.examples = list(examples)
        self.lm = lm
        self.options = options or TaskOptions()
        self.caller = MetricCaller(metric)
        self._predictors = dict(student.named_predictors())
        self.components: tuple[str, ...] = tuple(self._predictors)
        # Inputs in signature order (never in the order of DSPy's input-key set, which varies by process).
        order = [name for p in self._predictors.values() for name in p.signature.input_fields]
        self.settings = RunSettings(lm=lm, caller=self.caller, input_order=tuple(dict.fromkeys(order)),
                                    failure_score=self.options.failure_score, bootstrap=self.options.bootstrap,
                                    settings=self.options.settings,
                                    provide_traceback=self.options.provide_traceback)
        self._programs: OrderedDict[str, dspy.Module] = OrderedDict()
        self._runs: OrderedDict[tuple[str, int], RunRecord] = OrderedDict()
        self._kept_runs: dict[tuple[str, int], RunRecord] = {}
        self.memory = self.options.memory or RunMemory()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._limit: asyncio.Semaphore | None = None
        self._lock = threading.Lock()
        self._warned_mismatch = False
        self.rollouts_run = 0
        self.errors = 0
        self.usage = Usage()

    # -- Task protocol -------------------------------------------------------------------------------------
    async def run(self, candidate: Candidate, index: int) -> Rollout:
        shown = example_inputs(self.examples[index], self.settings.input_order)
        shown = {k: json_safe(v) for k, v in shown.items()}

        def is_own(demo: Mapping[str, Any]) -> bool:
            shared = [k for k in shown if k in demo]
            return bool(shared) and all(demo[k] == shown[k] for k in shared)

        asked = candidate
        for name in list(candidate.demos):
            candidate = without_own_demo(candidate, name, is_own)
        program = self.student if self.options.fixed_program else self.program(candidate)
        return await self.call_in_thread(self._run_sync, program, asked.key, index)

    def labeled_demo(self, index: int, component: str) -> Mapping[str, Any] | None:
        predictor = self._predictors.get(component)
        if predictor is None:
            return None
        fields = predictor.signature.fields
        demo = {k: json_safe(v) for k, v in self.examples[index].items() if k in fields}
        has_input = any(k in demo for k in predictor.signature.input_fields)
        has_output = any(k in demo for k in predictor.signature.output_fields)
        return demo if has_input and has_output else None

    async def component_feedback(self, candidate: Candidate, rollouts: Sequence[Rollout], component: str
                                 ) -> list[Rollout]:
        """The rollouts with the feedback meant for `component`: the metric called with `pred_name=component`
        and `pred_trace` that predictor's call in the run (one drawn, seeded, when it ran several times), as
        dspy.GEPA does. A rollout whose run is not remembered (e.g. restored from a checkpoint) keeps its own
        feedback; one where `component` did not run, or whose reply for it did not parse while
        `add_format_failure_as_feedback` is off, is left out (dspy.GEPA leaves them out too)."""
        return await self.call_in_thread(self._feedback_sync, candidate.key, list(rollouts), component)

    def run_record(self, key: str, index: int) -> RunRecord | None:
        """The remembered run of the candidate with content key `key` on sample `index` (None when it is not
        remembered: never run in this process, e.g. replayed from a checkpoint, or long forgotten)."""
        with self._lock:
            return self._kept_runs.get((key, index)) or self._runs.get((key, index))

    # -- building and running --------------------------------------------------------------------------------
    def program(self, candidate: Candidate) -> dspy.Module:
        """The student with this candidate applied, built once per candidate content."""
        with self._lock:
            program = self._programs.get(candidate.key)
            if program is None:
                program = apply_candidate(self.student, candidate)
                self._programs[candidate.key] = program
                while len(self._programs) > 64:
                    self._programs.popitem(last=False)
            else:
                self._programs.move_to_end(candidate.key)
            return program

    async def call_in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` on the task's pool in a copy of this context, under the concurrency limit (DSPy code of the
        optimizer's strategies runs here too); when the awaiting coroutine is cancelled, the worker makes no
        further LM call."""
        if self._limit is None:
            self._limit = asyncio.Semaphore(self.options.max_concurrent)
        flag = guard.CancelFlag()
        async with self._limit:
            future = asyncio.get_running_loop().run_in_executor(
                self._executor(), contextvars.copy_context().run, self._guarded, flag, fn, args)
            try:
                return await future
            except asyncio.CancelledError:
                flag.set()
                raise

    @staticmethod
    def _guarded(flag: guard.CancelFlag, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        guard.bind(flag)
        guard.check_cancelled()  # queued work whose caller is gone never starts
        with dspy.context(callbacks=[*(dspy.settings.callbacks or []), guard.CANCEL_GUARD]):
            return fn(*args)

    def _run_sync(self, program: dspy.Module, key: str, index: int) -> Rollout:
        rollout, record = run_program(program, self.examples[index], index, self.settings)
        self._remember(key, index, rollout, record)
        return rollout

    def _remember(self, key: str, index: int, rollout: Rollout, record: RunRecord) -> None:
        """Account for a finished run: counters, the run kept for later feedback, progress, max_errors."""
        with self._lock:
            self.rollouts_run += 1
            self.usage = self.usage + rollout.usage
            if index in self.options.keep_runs_for:
                self._kept_runs[(key, index)] = record
            else:
                self._runs[(key, index)] = record
                self._runs.move_to_end((key, index))
                while len(self._runs) > KEEP_RUNS:
                    self._runs.popitem(last=False)
            failed = rollout.error is not None and rollout.error.kind in ("task", "score_fn")
            self.errors += failed
            errors = self.errors
        self.memory.add_prediction(key, index, record.prediction)  # kept (and written) before it is journaled
        if self.options.on_rollout is not None:
            self.options.on_rollout(rollout)
        limit = self.options.max_errors
        if failed and limit is not None and errors >= limit:
            raise TooManyErrors(f"{errors} program runs raised, reaching max_errors={limit}; the run stops "
                                f"(last: {rollout.error.detail[:300] if rollout.error else ''})")

    # -- rollouts run in another process (rollouts_dspy/executors) -------------------------------------------
    def take_run(self, key: str, index: int) -> Any:
        """Where the rollout ran: what its run left behind, to send to the process that asked for it (and
        forget here): the Prediction and the trace, with the trace's predictor names (None if not kept)."""
        with self._lock:
            record = self._runs.pop((key, index), None) or self._kept_runs.pop((key, index), None)
        if record is None:
            return None
        return record.prediction, record.trace, [record.names.get(id(p)) for p, _, _ in record.trace]

    def import_run(self, key: str, index: int, rollout: Rollout, run: Any) -> None:
        """In the process that asked: a rollout that ran elsewhere, accounted as if it had run here (`run` as
        take_run gave it; None when nothing came back), so per-predictor feedback, kept predictions, progress,
        usage and max_errors see it."""
        prediction, trace, names = run if run is not None else (None, [], [])
        by_id = {id(entry[0]): name for entry, name in zip(trace, names, strict=True) if name is not None}
        self._remember(key, index, rollout, RunRecord(self.examples[index], prediction, list(trace), by_id))

    def _feedback_sync(self, key: str, rollouts: list[Rollout], component: str) -> list[Rollout]:
        out = []
        for rollout in rollouts:
            index = rollout.sample_index
            known, feedback = self.memory.feedback(key, index, component)
            if not known:
                record = self.run_record(key, index)
                if record is None or record.prediction is None and not record.trace:
                    out.append(rollout)  # nothing to ask the metric about: the run's own feedback
                    continue
                try:
                    feedback = self._feedback_for(record, rollout, key, component)
                except Exception as exc:  # noqa: BLE001 - a metric bug on one run keeps that run's feedback
                    logger.error("Error in the metric's feedback for predictor %r on example %d: %s: %s",
                                 component, index, type(exc).__name__, str(exc)[:300])
                    feedback = rollout.feedback
                self.memory.add_feedback(key, index, component, feedback)
            if feedback is not None:
                out.append(replace(rollout, feedback=feedback))
        return out

    def _feedback_for(self, record: RunRecord, rollout: Rollout, key: str, component: str) -> str | None:
        chosen = component_call(record, key, rollout.sample_index, component,
                                failures=self.options.add_format_failure_as_feedback)
        if chosen is None:
            return None
        if isinstance(chosen[2], FormatFailure):
            return "Your output failed to parse. Follow this structure:\n" + format_structure(chosen[0].signature)
        value = metric_result(self.caller.feedback(record.example, record.prediction, record.trace, component,
                                                   [chosen]))
        if rollout.score is not None and value.score != rollout.score:
            self._mismatch(component)
        return value.feedback or f"This trajectory got a score of {rollout.score}."

    def _mismatch(self, component: str) -> None:
        with self._lock:
            warn, self._warned_mismatch = not self._warned_mismatch, True
        if warn and self.options.warn_on_score_mismatch:
            logger.warning("The metric's score with pred_name=%r differs from its score of the whole program. "
                           "The program's score is kept; the per-predictor call only gives feedback. (Set "
                           "warn_on_score_mismatch=False to silence this.)", component)

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.options.max_concurrent,
                                                               thread_name_prefix="rollouts")
        return self._pool

    def close(self) -> None:
        """Wait for the worker threads (cancelled rollouts stop before their next LM call)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._limit = None

    def __repr__(self) -> str:
        return f"ProgramTask(components={self.components}, examples={len(self.examples)})"


def check_components(student: dspy.Module, teacher: dspy.Module) -> None:
    """A teacher's runs become the student's demos by predictor name: both must have the same predictors."""
    mine = [(n, list(p.signature.fields)) for n, p in student.named_predictors()]
    theirs = [(n, list(p.signature.fields)) for n, p in teacher.named_predictors()]
    if mine != theirs:
        raise ConfigError(f"teacher must have the student's predictors (names and fields) so its runs can be the "
                          f"student's demos; student: {mine}, teacher: {theirs}")
