"""The run's limits hold on a Ray cluster: at most `max_concurrent` rollouts run at once however big the cluster,
the budget admits each rollout once whatever happens to its worker, a worker that dies on every try gives a
failed rollout (the run goes on), a Task's bug stops the run as it would locally, and a cancelled run cancels
its rollouts on the workers."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from rollouts_dspy.errors import ConfigError
from rollouts_dspy.executors import RayExecutor
from rollouts_dspy.prompt_optimization.types import Candidate
from rollouts_dspy.runtime import Budget, Runtime

from .helpers import LoggingTask, LoggingTaskRecipe, peak_running, read_log

pytestmark = pytest.mark.distributed

CANDIDATE = Candidate({"system": "anything"})


def _events(log, kind: str) -> list[int]:  # noqa: ANN001
    return [int(line.split()[1]) for line in read_log(log) if line.startswith(kind + " ")]


async def test_rollouts_on_the_cluster_never_exceed_max_concurrent_and_the_budget(ray_cluster, tmp_path):
    log = tmp_path / "rollouts.log"
    # The head's one CPU fits four rollouts of 0.25 CPU: the cluster could run four at once; the run allows two.
    executor = RayExecutor(address=ray_cluster.address, cpus_per_rollout=0.25)
    task = executor.task(LoggingTask(LoggingTaskRecipe(str(log), seconds=0.1, partner_for_first=True)))
    runtime = Runtime(method="gepa", budget=Budget(max_rollouts=10), max_concurrent=2)
    results = await runtime.evaluator(task).evaluate(CANDIDATE, range(16))
    assert sorted(results) == list(range(10))  # the first ten in order; the budget paid for no more
    assert {i: r.score for i, r in results.items()} == {i: (i % 3) / 2 for i in range(10)}
    assert sorted(_events(log, "start")) == list(range(10)) == sorted(_events(log, "end"))
    assert peak_running(log) == 2
    assert runtime.rollouts_used == 10


async def test_a_rollout_whose_worker_dies_on_every_try_is_a_failed_rollout_admitted_once(ray_cluster, tmp_path):
    log = tmp_path / "rollouts.log"
    executor = RayExecutor(address=ray_cluster.address, cpus_per_rollout=0.25, max_retries=1)
    task = executor.task(LoggingTask(LoggingTaskRecipe(str(log), die_on=3)))
    runtime = Runtime(method="gepa", budget=Budget(max_rollouts=50), max_concurrent=2)
    results = await runtime.evaluator(task).evaluate(CANDIDATE, range(6))
    lost = results[3]
    assert lost.score is None and lost.error is not None and lost.error.kind == "task"
    assert "lost on the Ray cluster (WorkerCrashedError" in lost.feedback and "up to 2 times" in lost.feedback
    assert all(results[i].score == (i % 3) / 2 for i in (0, 1, 2, 4, 5))
    starts = Counter(_events(log, "start"))
    assert starts[3] == 2 and 3 not in _events(log, "end")  # tried twice (Ray's retry), each worker killed
    assert runtime.rollouts_used == 6  # ... and admitted once


async def test_a_bug_in_the_task_on_a_worker_stops_the_run_with_the_task_s_own_error(ray_cluster, tmp_path):
    log = tmp_path / "rollouts.log"
    executor = RayExecutor(address=ray_cluster.address, cpus_per_rollout=0.25)
    task = executor.task(LoggingTask(LoggingTaskRecipe(str(log), raise_on=1)))
    runtime = Runtime(method="gepa", budget=Budget(), max_concurrent=2)
    with pytest.raises(RuntimeError, match="a bug in the task on sample 1"):
        await runtime.evaluator(task).evaluate(CANDIDATE, [0, 1])


def test_a_rollout_bigger_than_every_node_is_refused_before_it_could_wait_forever(ray_cluster, tmp_path):
    executor = RayExecutor(address=ray_cluster.address, cpus_per_rollout=64)
    with pytest.raises(ConfigError, match=r"cpus_per_rollout=64 is more than any node .*\(the largest has 1 CPUs\)"):
        executor.task(LoggingTask(LoggingTaskRecipe(str(tmp_path / "rollouts.log"))))


async def test_cancelling_the_run_cancels_its_rollouts_on_the_workers(ray_cluster, tmp_path):
    log = tmp_path / "rollouts.log"
    executor = RayExecutor(address=ray_cluster.address, cpus_per_rollout=0.25)
    task = executor.task(LoggingTask(LoggingTaskRecipe(str(log), seconds=600)))
    runtime = Runtime(method="gepa", budget=Budget(), max_concurrent=2)
    run = asyncio.ensure_future(runtime.evaluator(task).evaluate(CANDIDATE, [0, 1, 2]))
    deadline = time.monotonic() + 30
    while len(_events(log, "start")) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert sorted(_events(log, "start")) == [0, 1], "two rollouts never started on the cluster"
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    while len(_events(log, "cancelled")) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    # Both running rollouts were stopped on their workers; the third never started; none finished.
    assert sorted(_events(log, "cancelled")) == [0, 1]
    assert _events(log, "end") == [] and 2 not in _events(log, "start")
