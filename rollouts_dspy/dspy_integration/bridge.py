"""What both DSPy teleprompters share: checking compile's inputs, the LMs in effect, the train/val split as
indices, budgets, running the async engine from sync `compile`, logging, and the results they attach.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import dspy

from ..errors import ConfigError, DatasetError
from ..prompt_optimization.events import Event, LinePrinter, Reporter
from ..prompt_optimization.types import SYSTEM, CandidateRecord, OptimizationResult, SearchOutcome
from .data import example_inputs
from .metrics import ExactMatch
from .template_module import module_to_template

__all__ = [
    "LoggingReporter",
    "Split",
    "attach_common",
    "check_student",
    "default_metric",
    "optimization_result",
    "resolve_budget",
    "run_coroutine",
    "split_indices",
    "task_lm",
]

logger = logging.getLogger("rollouts_dspy.dspy")

T = TypeVar("T")


class _LogStream:
    def __init__(self) -> None:
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            if line:
                logger.info(line)
        return len(text)

    def flush(self) -> None:
        pass


class LoggingReporter:
    """The default reporter of the DSPy front door: one line per step on the `rollouts_dspy.dspy` logger
    (DSPy's optimizers report through logging too), then any user reporter."""

    def __init__(self, then: Reporter | None = None) -> None:
        self._printer = LinePrinter(_LogStream())  # type: ignore[arg-type]
        self._then = then

    def __call__(self, event: Event) -> None:
        self._printer(event)
        if self._then is not None:
            self._then(event)


def task_lm(student: dspy.Module) -> Any:
    """The LM in effect now (`dspy.configure` or `dspy.context`), checked against predictors without an LM."""
    lm = dspy.settings.lm
    if lm is None:
        bare = [name for name, p in student.named_predictors() if getattr(p, "lm", None) is None]
        if bare:
            raise ConfigError(
                f"no LM is in effect for predictors {bare}: call compile inside `with dspy.context(lm=...)`, "
                "after `dspy.configure(lm=...)`, or give every predictor its own LM (`program.set_lm(lm)`)"
            )
    return lm


def check_student(student: Any, trainset: Any, teacher: Any, valset: Any) -> None:
    if not isinstance(student, dspy.Module):
        raise ConfigError(f"student must be a dspy.Module, but got {type(student).__name__}")
    if not list(student.named_predictors()):
        raise ConfigError("student has no predictors (dspy.Predict and the like) whose prompts could be optimized")
    if teacher is not None:
        raise ConfigError("teacher is not supported: demos are bootstrapped from the student's own runs")
    for name, data in (("trainset", trainset), ("valset", valset)):
        if data is None and name == "valset":
            continue
        if isinstance(data, (str, bytes, Mapping)) or not isinstance(data, Sequence) or not data:
            raise DatasetError(f"{name} must be a non-empty list of dspy.Example, but got {data!r:.100}")
        bad = next((i for i, ex in enumerate(data) if not isinstance(ex, dspy.Example)), None)
        if bad is not None:
            raise DatasetError(f"{name}[{bad}] must be a dspy.Example, but got {type(data[bad]).__name__}")


def default_metric(student: dspy.Module, trainset: Sequence[dspy.Example]) -> ExactMatch:
    """Exact match of the program's output fields against the example's labels; refuses a program whose
    outputs share no name with the labels (the metric could only ever say 0)."""
    outputs = {name for _, p in student.named_predictors() for name in p.signature.output_fields}
    first = trainset[0]
    labels = [k for k in first.keys() if k not in example_inputs(first)]
    if not set(labels) & outputs:
        raise ConfigError(
            f"no metric given and the examples' labels {labels} match none of the program's output fields "
            f"{sorted(outputs)}: pass metric=..., or name an output field after the label"
        )
    return ExactMatch()


@dataclass(frozen=True)
class Split:
    """trainset followed by valset as one dataset, and the indices of each part."""

    examples: list[dspy.Example]
    train_seeds: tuple[int, ...]
    val_seeds: tuple[int, ...]


def split_indices(trainset: Sequence[dspy.Example], valset: Sequence[dspy.Example] | None) -> Split:
    examples = list(trainset) + list(valset or ())
    n = len(trainset)
    return Split(examples, tuple(range(n)), tuple(range(n, len(examples))))


def resolve_budget(**limits: int | None) -> tuple[str, int] | None:
    """The one budget limit that is set among the given ones (None when none is); two set is an error."""
    given = {k: v for k, v in limits.items() if v is not None}
    if len(given) > 1:
        raise ConfigError(f"set at most one of {sorted(limits)}, but got {given}")
    for name, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, but got {value!r}")
        return name, value
    return None


def run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the engine from sync `compile`: `asyncio.run` here, or on a helper thread (with this context, so
    `dspy.context` holds) when called from code that already runs an event loop (notebooks, async apps)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rollouts-compile") as pool:
        return pool.submit(context.run, lambda: asyncio.run(make())).result()


def optimization_result(student: dspy.Module, outcome: SearchOutcome, *, method: str, seed: int,
                        usage: Mapping[str, Mapping[str, Any]], config: Mapping[str, Any]) -> OptimizationResult | None:
    """Our typed result, for single-predictor programs (a PromptTemplate holds one instruction); None for
    programs with several predictors, whose full record is `search_outcome`."""
    predictors = list(student.named_predictors())
    if len(predictors) != 1:
        return None
    name = predictors[0][0]
    base = module_to_template(student)

    def as_system(record: CandidateRecord) -> CandidateRecord:
        cand = record.candidate
        renamed = type(cand)({SYSTEM: cand.instructions[name]},
                             {SYSTEM: _template_demos(student, cand.demos.get(name, ()))} if cand.demos.get(name)
                             else {})
        return CandidateRecord(record.id, renamed, record.generation, record.origin, record.parents,
                               record.train_scores, record.val_scores, record.failures)

    renamed = SearchOutcome(tuple(as_system(r) for r in outcome.records), outcome.history, outcome.best_id,
                            outcome.stop_reason, outcome.rollouts_used, outcome.cost_usd)
    return renamed.to_result(base, method=method, seed=seed, usage=usage, config=config)


def _template_demos(student: dspy.Module, demos: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Field-dict demos as FewShotExample dicts, the template's demo form."""
    program = student.deepcopy()
    _, predictor = next(iter(program.named_predictors()))
    predictor.demos = [dspy.Example(**dict(d)) for d in demos]
    return tuple(ex.to_dict() for ex in module_to_template(program).few_shot_examples)


def attach_common(program: dspy.Module, outcome: SearchOutcome, result: OptimizationResult | None) -> None:
    program.search_outcome = outcome
    program.optimization_result = result


def record_score(record: CandidateRecord, on_val: bool) -> float | None:
    scores = record.val_scores if on_val else record.train_scores
    return sum(scores.values()) / len(scores) if scores else None


def rollouts_by_generation(outcome: SearchOutcome) -> dict[int, int]:
    return {stats.generation: stats.rollouts_used for stats in outcome.history}


def usage_dict(task: Any, model: Any, role: str) -> dict[str, dict[str, Any]]:
    """Rollouts, calls, tokens and dollars by role, as far as DSPy reported them."""
    def row(usage: Any) -> dict[str, Any]:
        return {"calls": usage.calls, "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens, "cost_usd": usage.cost_usd}

    return {"task": {"rollouts": task.rollouts_run, **row(task.usage)}, role: row(model.usage)}

