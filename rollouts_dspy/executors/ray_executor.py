"""Rollouts as Ray tasks on a cluster; the engine and every decision stay in the driver.

`RayExecutor(...).task(task)` returns a `RayTask`: the driver's Evaluator still admits every rollout through the
Ledger (before it launches), caches and journals it, and holds one of the run's `max_concurrent` slots while it
runs -- so the driver's limit is the cluster's: never more Ray tasks in flight than `max_concurrent`. `RayTask.run`
ships (candidate, index) to a Ray worker, which rebuilds the Task once per worker process from its picklable recipe
(see recipes.py) and runs the rollout there. A worker that dies mid-rollout (its process or its node killed) makes
Ray run the rollout again elsewhere (`max_retries`): the ledger admitted it once and counts it once. A rollout whose
workers died `max_retries + 1` times comes back as a failed, unmeasured rollout (kind 'task'), and the run goes on.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..dtypes import Usage
from ..errors import ConfigError
from ..prompt_optimization.protocols import ComponentFeedback, Rollout, RolloutError, Task
from ..prompt_optimization.types import Candidate
from .base import CountsRetries, KeepsRuns
from .recipes import recipe_of

__all__ = ["RayExecutor", "RayTask", "ship_by_value"]

INSTALL_HINT = "pip install 'rollouts-dspy[ray]' (or pip install ray)"
_ids = itertools.count()


def import_ray() -> Any:
    """Ray, imported only when a Ray executor is used (the base install does not depend on it)."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"executor 'ray' needs Ray, which is not installed ({exc}): {INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True, kw_only=True)
class RayExecutor:
    """Run rollouts as Ray tasks.

    `address`: the cluster to join, as for `ray.init` ("auto", "HOST:PORT" of the head node); None joins the
    cluster named by RAY_ADDRESS, else starts a local one (with `num_cpus` CPUs: only for a local cluster).
    `cpus_per_rollout`: Ray CPUs one rollout holds (1.0: one rollout per CPU, for CPU-heavy environments and
    score_fns; 0.25 lets four LLM-bound rollouts share a CPU). `max_retries`: how often Ray runs a rollout again
    when its worker dies. `runtime_env`: Ray's runtime environment for the workers (env_vars, pip, working_dir).
    When Ray is already initialized in this process, it is used as it is.
    """

    name: ClassVar[str] = "ray"

    address: str | None = None
    num_cpus: int | None = None
    cpus_per_rollout: float = 1.0
    max_retries: int = 3
    runtime_env: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.address is not None and (not isinstance(self.address, str) or not self.address.strip()):
            raise ConfigError(f"address must be a Ray address such as 'auto' or 'HOST:PORT', or None, but got "
                              f"{self.address!r}")
        if self.num_cpus is not None:
            if isinstance(self.num_cpus, bool) or not isinstance(self.num_cpus, int) or self.num_cpus < 1:
                raise ConfigError(f"num_cpus must be an integer >= 1 or None, but got {self.num_cpus!r}")
            if self.address is not None:
                raise ConfigError(f"num_cpus sizes a local cluster this process starts; the cluster at address "
                                  f"{self.address!r} has its own CPUs: leave num_cpus None, got {self.num_cpus!r}")
        cpus = self.cpus_per_rollout
        if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not math.isfinite(cpus) or cpus <= 0:
            raise ConfigError(f"cpus_per_rollout must be a number > 0, but got {cpus!r}")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigError(f"max_retries must be an integer >= 0, but got {self.max_retries!r}")
        if self.runtime_env is not None and not isinstance(self.runtime_env, Mapping):
            raise ConfigError(f"runtime_env must be a mapping (Ray's runtime environment) or None, but got "
                              f"{type(self.runtime_env).__name__}")

    def connect(self) -> Any:
        """Join (or start) the cluster once per process; returns the `ray` module."""
        ray = import_ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"address": self.address, "include_dashboard": False}
            if self.num_cpus is not None:
                kwargs["num_cpus"] = self.num_cpus
            if self.runtime_env is not None:
                kwargs["runtime_env"] = dict(self.runtime_env)
            ray.init(**kwargs)
        return ray

    def task(self, task: Task) -> RayTask:
        """`task` with its rollouts on the cluster. Raises ConfigError (before any LLM call) when Ray is missing
        or the task cannot be pickled for the workers (e.g. a score_fn holding an open file)."""
        recipe = recipe_of(task)
        ray = self.connect()
        self._check_fits(ray)
        try:
            shipped = ray.put(recipe)
        except Exception as exc:  # noqa: BLE001 - a pickling failure names the culprit in its message
            raise ConfigError(f"the task cannot be sent to Ray workers ({type(exc).__name__}: {exc}); the "
                              "score_fn, environment_factory, dataset (or DSPy program, metric and LM) must be "
                              "picklable with cloudpickle") from None
        cls = _RayFeedbackTask if isinstance(task, ComponentFeedback) else RayTask
        return cls(task, shipped, self)


    def _check_fits(self, ray: Any) -> None:
        """A rollout asking for more CPUs than any node has would wait forever: say so now."""
        largest = max((n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0)
        if self.cpus_per_rollout > largest:
            raise ConfigError(f"cpus_per_rollout={self.cpus_per_rollout!r} is more than any node of the Ray cluster "
                              f"has (the largest has {largest:g} CPUs): no rollout could ever start")


def ship_by_value(module_names: Sequence[str]) -> None:
    """Send the functions of these imported modules to the workers by value instead of by name: for code the
    workers cannot import, such as a CLI config's `my_scoring:score` (a file beside the config, found on the
    driver only because the config's folder was searched). Process-wide, like cloudpickle's registry."""
    import sys

    from ray import cloudpickle

    for name in module_names:
        cloudpickle.register_pickle_by_value(sys.modules[name])


@functools.lru_cache(maxsize=1)
def _remote_rollout() -> Any:
    import ray

    from ._worker import run_rollout

    return ray.remote(run_rollout)


class RayTask:
    """The driver's side of a Task whose rollouts run on Ray workers (see the module doc). `components` and
    `labeled_demo` are answered by the local Task; `rollouts_run` and `usage` count what came back; a local Task
    that keeps its runs (KeepsRuns) is handed each one that came back, and accounts for it."""

    def __init__(self, local: Task, shipped_recipe: Any, executor: RayExecutor) -> None:
        self.local = local
        self.components = tuple(local.components)
        self.executor = executor
        self._recipe = shipped_recipe
        self._id = f"{socket.gethostname()}:{os.getpid()}:{next(_ids)}"
        self._remote = _remote_rollout().options(num_cpus=executor.cpus_per_rollout,
                                                 max_retries=executor.max_retries, retry_exceptions=False)
        self.rollouts_run = 0
        self.usage = Usage()
        self._retries_seen: dict[str, dict[str, int]] = {}  # per build of the Task on a worker: its running total

    async def run(self, candidate: Candidate, index: int) -> Rollout:
        from ray.exceptions import RayError, RayTaskError

        ref = self._remote.remote(self._id, [self._recipe], candidate, index)
        run: Any = None
        try:
            rollout, run, (build, retries) = await ref
            self._count_retries(build, retries)
        except asyncio.CancelledError:
            import ray

            ray.cancel(ref)  # the worker cancels the rollout's calls (see _worker.run_rollout)
            raise
        except RayTaskError as exc:
            # The Task itself raised (it must not, for a sample's failure): as in a local run, the run stops.
            raise exc.as_instanceof_cause() from None
        except RayError as exc:
            rollout = self._lost(index, exc)
        self.rollouts_run += 1
        self.usage = self.usage + rollout.usage
        if isinstance(self.local, KeepsRuns):
            self.local.import_run(candidate.key, index, rollout, run)
        return rollout

    def _count_retries(self, build: str, totals: Mapping[str, int]) -> None:
        """Add to the local Task the retries a worker's Task made since its last report (reports of one worker
        may arrive out of order: a total below the highest seen adds nothing)."""
        seen = self._retries_seen.setdefault(build, {})
        new: dict[str, int] = {}
        for role, n in totals.items():
            if n > seen.get(role, 0):
                new[role], seen[role] = n - seen.get(role, 0), n
        if new and isinstance(self.local, CountsRetries):
            self.local.add_retries(new)

    def _lost(self, index: int, exc: BaseException) -> Rollout:
        """A rollout Ray could not finish (e.g. its worker died on every try): failed and unmeasured, not retried
        in this run. What its lost attempts spent is unknown."""
        tries = self.executor.max_retries + 1
        detail = f"{type(exc).__name__}: {str(exc)[:500]}"
        return Rollout(index, None, f"the rollout was lost on the Ray cluster ({type(exc).__name__}; Ray tries a "
                       f"rollout whose worker dies up to {tries} times)", error=RolloutError("task", detail))

    def labeled_demo(self, index: int, component: str) -> Mapping[str, Any] | None:
        return self.local.labeled_demo(index, component)

    def close(self) -> None:
        close = getattr(self.local, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"RayTask({self.local!r}, {self.executor!r})"


class _RayFeedbackTask(RayTask):
    """A RayTask over a Task with per-component feedback: the local Task answers it in the driver, from the
    rollouts and the runs (KeepsRuns) that came back, as in a local run."""

    async def component_feedback(self, candidate: Candidate, rollouts: Sequence[Rollout],
                                 component: str) -> list[Rollout]:
        return await self.local.component_feedback(candidate, rollouts, component)  # type: ignore[attr-defined]
