"""Where rollouts run: the Executor seam and its string aliases.

An executor decides only where a Task's `run(candidate, index)` executes. The engine, the run's Evaluator (cache,
ledger admission, journal, concurrency limit) and every decision stay in the calling process, so swapping the
executor never changes a result: same seed and same LLM answers give the same run. `"local"` (the default) runs
rollouts in the calling process; `"ray"` (or a configured `RayExecutor`) runs them as Ray tasks on a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError
from ..prompt_optimization.protocols import Rollout, Task

__all__ = ["EXECUTOR_NAMES", "CountsRetries", "Executor", "KeepsRuns", "LocalExecutor", "resolve_executor"]


@runtime_checkable
class Executor(Protocol):
    """Turns the front door's Task into the Task the engine runs.

    Contract: the returned Task has the same `components`, `labeled_demo` and rollout results as `task`; only
    where (and in which process) `run` executes differs. Called once per run, before its first LLM call: an
    executor that cannot run `task` raises ConfigError there."""

    name: str

    def task(self, task: Task) -> Task: ...


@runtime_checkable
class KeepsRuns(Protocol):
    """An optional Task capability, for Tasks whose runs leave more behind than their Rollout (a DSPy program's
    trace and prediction, which per-predictor feedback and kept outputs read later). Where a rollout ran,
    `take_run` gives that (picklable); in the calling process, `import_run` accounts for the rollout with it as
    if it had run there."""

    def take_run(self, key: str, index: int) -> Any: ...

    def import_run(self, key: str, index: int, rollout: Rollout, run: Any) -> None: ...


@runtime_checkable
class CountsRetries(Protocol):
    """An optional Task capability: the retries its LLM calls needed, per role, since the Task was built. Where a
    rollout ran in another process, that process's retries are reported back and `add_retries` adds them to the
    calling process's Task, so the run's usage table counts them as a local run's does."""

    def retries(self) -> Mapping[str, int]: ...

    def add_retries(self, counts: Mapping[str, int]) -> None: ...


class LocalExecutor:
    """Rollouts run in the calling process, on its event loop (the default)."""

    name = "local"

    def task(self, task: Task) -> Task:
        return task

    def __repr__(self) -> str:
        return "LocalExecutor()"


def _ray() -> Executor:
    from .ray_executor import RayExecutor

    return RayExecutor()


_ALIASES = {"local": LocalExecutor, "ray": _ray}
EXECUTOR_NAMES = tuple(_ALIASES)
"""The string aliases `resolve_executor` accepts."""


def resolve_executor(value: Executor | str | None, *, field: str = "executor") -> Executor:
    """The executor named by `value` (None: local). The one place aliases are resolved: call it at the public
    boundary (RunOptions, a teleprompter's constructor) and pass the object on."""
    if value is None:
        return LocalExecutor()
    if isinstance(value, str):
        make = _ALIASES.get(value)
        if make is None:
            raise ConfigError(f"{field} must be one of {list(EXECUTOR_NAMES)} or an Executor object "
                              f"(e.g. RayExecutor(address=...)), but got {value!r}")
        return make()
    if isinstance(value, Executor):
        return value
    raise ConfigError(f"{field} must be one of {list(EXECUTOR_NAMES)} or an Executor object, but got "
                      f"{type(value).__name__}")
