"""The Ray worker's side of a rollout (imported in Ray worker processes, never by the driver's engine).

Each worker process keeps one event loop on a thread of its own and the Tasks it has built, by recipe id: a
Task is rebuilt once per worker process (its LLM session, HTTP clients and program caches then live as long as
the worker), not once per rollout. A rollout runs as a coroutine on that loop while the Ray task waits for it;
when Ray cancels the task (the driver was cancelled), the coroutine is cancelled too, so no call goes on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import OrderedDict
from typing import Any

from ..prompt_optimization.protocols import Rollout, Task
from ..prompt_optimization.types import Candidate
from .base import KeepsRuns

__all__ = ["run_rollout"]

KEEP_TASKS = 4
"""Tasks a worker keeps built (runs of one driver share a worker pool; old runs' Tasks are dropped)."""

CANCEL_POLL_SECONDS = 0.1
"""How soon a cancelled rollout stops on its worker."""

_tasks: OrderedDict[str, Task] = OrderedDict()
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


def _task(recipe_id: str, boxed_recipe: list[Any]) -> Task:
    with _lock:
        task = _tasks.get(recipe_id)
        if task is not None:
            _tasks.move_to_end(recipe_id)
            return task
    import ray

    # The recipe comes in a list so that Ray does not fetch it for every rollout: only a worker that has not
    # built this Task yet reads it from the object store.
    task = ray.get(boxed_recipe[0]).build()
    with _lock:
        _tasks[recipe_id] = task
        while len(_tasks) > KEEP_TASKS:
            _, old = _tasks.popitem(last=False)
            close = getattr(old, "close", None)
            if callable(close):
                close()
    return task


def run_rollout(recipe_id: str, boxed_recipe: list[Any], candidate: Candidate, index: int) -> tuple[Rollout, Any]:
    """One rollout of `candidate` on sample `index`, by this worker's Task of `recipe_id`, and what its run left
    behind for the driver's Task (see KeepsRuns; None for Tasks without it)."""
    task = _task(recipe_id, boxed_recipe)
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
            return rollout, run
    except BaseException:
        # Cancelled (or this process is going down): stop the rollout's calls, then let Ray see it.
        future.cancel()
        raise
