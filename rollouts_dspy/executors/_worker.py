"""The Ray worker's side of a rollout (imported in Ray worker processes, never by the driver's engine).

Each worker process keeps one event loop on a thread of its own and the Tasks it has built, by recipe id: a
Task is rebuilt once per worker process (its LLM session, HTTP clients and program caches then live as long as
the worker), not once per rollout. A rollout runs as a coroutine on that loop while the Ray task waits for it;
when Ray cancels the task (the driver was cancelled), the coroutine is cancelled too, so no call goes on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import threading
from collections import OrderedDict
from typing import Any

from ..prompt_optimization.protocols import Rollout, Task
from ..prompt_optimization.types import Candidate
from .base import CountsRetries, KeepsRuns

__all__ = ["run_rollout"]

KEEP_TASKS = 4
"""Tasks a worker keeps built (runs of one driver share a worker pool; old runs' Tasks are dropped)."""

CANCEL_POLL_SECONDS = 0.1
"""How soon a cancelled rollout stops on its worker."""

_tasks: OrderedDict[str, tuple[Task, str]] = OrderedDict()  # recipe id -> (the Task, the id of this build of it)
_builds = itertools.count()
_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="rollouts-dspy-worker-loop", daemon=True).start()
            _loop = loop
        return _loop


def _task(recipe_id: str, boxed_recipe: list[Any]) -> tuple[Task, str]:
    with _lock:
        built = _tasks.get(recipe_id)
        if built is not None:
            _tasks.move_to_end(recipe_id)
            return built
    import ray

    # The recipe comes in a list so that Ray does not fetch it for every rollout: only a worker that has not
    # built this Task yet reads it from the object store.
    built = (ray.get(boxed_recipe[0]).build(), f"{os.getpid()}:{next(_builds)}")
    with _lock:
        _tasks[recipe_id] = built
        while len(_tasks) > KEEP_TASKS:
            _, (old, _) = _tasks.popitem(last=False)
            close = getattr(old, "close", None)
            if callable(close):
                close()
    return built


def run_rollout(recipe_id: str, boxed_recipe: list[Any], candidate: Candidate,
                index: int) -> tuple[Rollout, Any, tuple[str, dict[str, int]]]:
    """One rollout of `candidate` on sample `index`, by this worker's Task of `recipe_id`; what its run left
    behind for the driver's Task (see KeepsRuns; None for Tasks without it); and this build of the Task with the
    retries its LLM calls needed so far (see CountsRetries; a running total, so a lost report loses nothing)."""
    task, build = _task(recipe_id, boxed_recipe)
    future = asyncio.run_coroutine_threadsafe(task.run(candidate, index), _event_loop())
    try:
        while True:
            # Short waits, not one long one: Ray cancels a task by scheduling KeyboardInterrupt for this thread,
            # which is raised only when the thread runs Python code again.
            try:
                rollout = future.result(timeout=CANCEL_POLL_SECONDS)
            except concurrent.futures.TimeoutError:
                continue
            run = task.take_run(candidate.key, index) if isinstance(task, KeepsRuns) else None
            return rollout, run, (build, dict(task.retries()) if isinstance(task, CountsRetries) else {})
    except BaseException:
        # Cancelled (or this process is going down): stop the rollout's calls, then let Ray see it.
        future.cancel()
        raise
