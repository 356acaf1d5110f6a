"""The one `compile` pipeline both teleprompters run: build the ProgramTask(s), report progress and tracking,
run the async engine from sync `compile`, stop cleanly on errors and Ctrl-C, and turn the engine's outcome
into the optimized program with the results every DSPy user gets (`search_outcome`, `optimization_result`).
What differs between RolloutsGEPA and RolloutsMIPRO comes in a `CompileSpec`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import dspy

from ..executors import Executor, LocalExecutor
from ..prompt_optimization.events import Event, Reporter
from ..prompt_optimization.frontdoor import dataset_hash
from ..prompt_optimization.types import SYSTEM, CandidateRecord, OptimizationResult, SearchOutcome
from .candidates import apply_candidate
from .inputs import Split
from .lm_model import DSPyLanguageModel
from .program_task import ProgramTask, TaskOptions
from .progress import Progress
from .template_module import module_to_template
from .tracking import ExperimentTracker

__all__ = ["CompileSpec", "Compiled", "Tasks", "compile_program", "program_world", "run_coroutine"]

T = TypeVar("T")


@dataclass(frozen=True)
class Tasks:
    """The task the engine optimizes on, and (MIPRO) the one it bootstraps demos with (None: the same)."""

    main: ProgramTask
    bootstrap: ProgramTask | None = None


@dataclass(frozen=True)
class CompileSpec:
    """One teleprompter's compile, as the pipeline needs it. `config` is the engine's validated config (it has
    `max_rollouts`, `seed` and `to_dict()`); `search` runs the engine on the tasks with the reporter;
    `bootstrap` is the program and options of a separate demo-bootstrapping task, when there is one."""

    method: str
    student: dspy.Module
    split: Split
    lm: Any
    metric: Callable[..., Any]
    config: Any
    model: DSPyLanguageModel
    role: str
    options: TaskOptions
    search: Callable[[Tasks, Reporter], Coroutine[Any, Any, SearchOutcome]]
    bootstrap: tuple[dspy.Module, TaskOptions] | None = None
    executor: Executor | None = None


@dataclass(frozen=True)
class Compiled:
    program: dspy.Module
    outcome: SearchOutcome
    tasks: Tasks


def program_world(student: dspy.Module, split: Split, lm: Any, optimizer_lm: Any) -> dict[str, Any]:
    """What a checkpoint must agree on besides the config (the engines' RunContext fingerprint): the program's
    predictors and signatures, the examples' content and the LMs' models, so a journal of another dataset or
    model is refused on resume."""
    return {"program": [(n, p.signature.signature) for n, p in student.named_predictors()],
            "dataset": dataset_hash([ex.toDict() for ex in split.examples]), "lm": getattr(lm, "model", repr(lm)),
            "optimizer_lm": getattr(optimizer_lm, "model", repr(optimizer_lm))}


def _reporters(*reporters: Reporter | None) -> Reporter | None:
    chosen = [r for r in reporters if r is not None]
    if not chosen:
        return None

    def report(event: Event) -> None:
        for r in chosen:
            r(event)

    return report


def compile_program(spec: CompileSpec, *, reporter: Reporter | None = None,
                    tracker: ExperimentTracker | None = None) -> Compiled:
    """Run the engine and return the best program (a deep copy of the student), with `search_outcome` and
    `optimization_result` attached. Worker threads are joined before this returns or raises."""
    tracking = tracker if tracker is not None and tracker.active else None
    progress = Progress(spec.method, spec.config.max_rollouts, then=_reporters(tracking, reporter))
    options = dataclasses.replace(spec.options, on_rollout=progress.on_rollout)
    task = ProgramTask(spec.student, spec.split.examples, spec.metric, spec.lm, options)
    boot = None
    if spec.bootstrap is not None:
        program, boot_options = spec.bootstrap
        boot = ProgramTask(program, spec.split.examples, spec.metric, spec.lm,
                           dataclasses.replace(boot_options, on_rollout=progress.on_rollout))
    tasks = Tasks(task, boot)
    # Where rollouts run (docs/cluster.md): the engine gets the executor's tasks; what they bring back is
    # accounted on these local ones (progress, usage, traces for per-predictor feedback, best outputs).
    executor = spec.executor or LocalExecutor()
    running = Tasks(executor.task(task), None if boot is None else executor.task(boot))
    if tracking is not None:
        tracking.start(spec.method, spec.config.to_dict())
    failed = True
    try:
        outcome = run_coroutine(lambda: spec.search(running, progress))
        failed = False
    finally:
        for t in (task, boot):
            if t is not None:
                t.close()
        progress.close()
        if tracking is not None:
            tracking.finish(failed)
    best = apply_candidate(spec.student, outcome.record(outcome.best_id).candidate)
    best.search_outcome = outcome
    best.optimization_result = optimization_result(spec, outcome, tasks)
    return Compiled(best, outcome, tasks)


def run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the engine from sync `compile`: `asyncio.run` here, or on a helper thread (with this context, so
    `dspy.context` holds) when called from code that already runs an event loop (notebooks, async apps). A
    Ctrl-C while waiting for the helper thread cancels the engine there, as `asyncio.run` does here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    context = contextvars.copy_context()
    started: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Task[T]]] = \
        concurrent.futures.Future()

    async def main() -> T:
        task = asyncio.ensure_future(make())
        started.set_result((asyncio.get_running_loop(), task))
        return await task

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rollouts-compile") as pool:
        done = pool.submit(context.run, lambda: asyncio.run(main()))
        try:
            return done.result()
        except BaseException:
            if started.done() and not done.done():
                loop, task = started.result()
                loop.call_soon_threadsafe(task.cancel)
            raise


def optimization_result(spec: CompileSpec, outcome: SearchOutcome, tasks: Tasks) -> OptimizationResult | None:
    """Our typed result, for single-predictor programs (a PromptTemplate holds one instruction); None for
    programs with several predictors, whose full record is `search_outcome`."""
    predictors = list(spec.student.named_predictors())
    if len(predictors) != 1:
        return None
    name = predictors[0][0]

    def as_system(record: CandidateRecord) -> CandidateRecord:
        cand = record.candidate
        demos = cand.demos.get(name, ())
        renamed = type(cand)({SYSTEM: cand.instructions[name]},
                             {SYSTEM: _template_demos(spec.student, demos)} if demos else {})
        return dataclasses.replace(record, candidate=renamed)

    renamed = dataclasses.replace(outcome, records=tuple(as_system(r) for r in outcome.records))
    return renamed.to_result(module_to_template(spec.student), method=spec.method, seed=spec.config.seed,
                             usage=usage_table(tasks, outcome, spec.role), config=spec.config.to_dict())


def _template_demos(student: dspy.Module, demos: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Field-dict demos as FewShotExample dicts, the template's demo form."""
    program = student.deepcopy()
    _, predictor = next(iter(program.named_predictors()))
    predictor.demos = [dspy.Example(**dict(d)) for d in demos]
    return tuple(ex.to_dict() for ex in module_to_template(program).few_shot_examples)


def usage_table(tasks: Tasks, outcome: SearchOutcome, role: str) -> dict[str, dict[str, Any]]:
    """Rollouts, calls, tokens and dollars by role, as far as DSPy reported them: the program runs of this
    process, and the optimizer's own calls as the run's meter counted them (whoever made them: the reflection
    LM, a custom instruction proposer's LMs; earlier processes of a resumed run included)."""
    def row(usage: Any) -> dict[str, Any]:
        return {"calls": usage.calls, "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens, "cost_usd": usage.cost_usd}

    runs = [t for t in (tasks.main, tasks.bootstrap) if t is not None]
    usage = runs[0].usage
    for t in runs[1:]:
        usage = usage + t.usage
    meter = outcome.usage.get(role, {})
    own = {k: meter.get(k, 0) for k in ("calls", "prompt_tokens", "completion_tokens")}
    own["cost_usd"] = meter.get("cost_usd") if meter.get("cost_known", True) else None
    return {"task": {"rollouts": sum(t.rollouts_run for t in runs), **row(usage)}, role: own}
