"""run_gepa with its rollouts on a real two-node Ray cluster, one node killed mid-rollout: the budget holds, the
lost rollout runs again elsewhere and counts once, and the result is the local run's."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from rollouts_dspy import GEPAConfig, RunOptions, run_gepa
from rollouts_dspy.executors import RayExecutor
from rollouts_dspy.runtime import JOURNAL_FILE, read_journal
from tests.conftest import QUIET, make_endpoint

from . import helpers

pytestmark = pytest.mark.distributed

CONFIG = GEPAConfig(population_size=3, generations=6, elite_size=1, minibatch_size=6, train_seeds=tuple(range(24)),
                    val_seeds=tuple(range(24, 40)), max_rollouts=140, max_concurrent=4, seed=3)


class NodeKiller(threading.Thread):
    """Waits for the stalled rollout's marker file, then kills the node it stalls on."""

    def __init__(self, cluster, node, marker: Path) -> None:  # noqa: ANN001
        super().__init__(daemon=True)
        self.cluster, self.node, self.marker = cluster, node, marker
        self.killed: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            if self.marker.exists() and self.marker.read_text():
                self.killed = self.cluster.kill_node(self.node)
                return
            self.done.wait(0.02)


def comparable(result):  # noqa: ANN001, ANN201
    """What a run decided: every candidate with its per-sample scores and lineage, the history (without wall
    time), the best, why it stopped and what it used."""
    return (result.best_template, result.candidates, result.stop_reason, result.rollouts_used,
            [dataclasses.replace(h, elapsed_seconds=0.0) for h in result.history])


def admissions(checkpoint_dir: Path):  # noqa: ANN201
    return read_journal(checkpoint_dir / JOURNAL_FILE, method="gepa", fingerprint=None)


async def test_a_killed_ray_node_loses_no_rollout_breaks_no_budget_and_changes_no_result(ray_cluster, server,
                                                                                       tmp_path):
    dataset = helpers.intent_dataset(40)
    task, reflect = make_endpoint(server), make_endpoint(server, "scripted-reflect")
    local_dir, ray_dir = tmp_path / "local", tmp_path / "ray"

    local = await run_gepa(helpers.TEMPLATE, dataclasses.replace(CONFIG, checkpoint_dir=str(local_dir)), dataset,
                           task, reflect, helpers.score_intent, options=QUIET)
    local_requests = server.stats().requests_by_model
    server.reset_stats()

    victim = ray_cluster.add_node(num_cpus=1, warm_up=helpers.warm_up)
    marker = tmp_path / "stalled-on-victim"
    killer = NodeKiller(ray_cluster, victim, marker)
    killer.start()
    started = time.monotonic()
    try:
        distributed = await run_gepa(
            helpers.TEMPLATE, dataclasses.replace(CONFIG, checkpoint_dir=str(ray_dir)), dataset, task, reflect,
            helpers.StallOnNode(ray_cluster.node_id(victim), str(marker)),
            options=RunOptions(progress=False, executor=RayExecutor(address=ray_cluster.address, max_retries=2)))
    finally:
        killer.done.set()
        killer.join()
        ray_cluster.forget_node(victim)
    assert killer.killed, f"no rollout ran on the second node in {time.monotonic() - started:.0f} s"

    # The run was stopped by its budget, and the budget held: admissions counted the lost rollout once.
    assert local.stop_reason == "budget"
    journal, local_journal = admissions(ray_dir), admissions(local_dir)
    assert distributed.rollouts_used == journal.admitted == local_journal.admitted <= CONFIG.max_rollouts
    # Every admitted rollout finished exactly once (the lost one on the head node, after the kill) ...
    finished = [(key, r.sample_index) for key, r in journal.finished]
    assert len(finished) == len(set(finished)) == journal.admitted
    # ... and the server saw exactly one request more than the local run: the stalled rollout's call, whose
    # answer died with its node. Reflection ran in the driver, the same calls as locally.
    requests = server.stats().requests_by_model
    assert requests["scripted-task"] == local_requests["scripted-task"] + 1
    assert requests["scripted-reflect"] == local_requests["scripted-reflect"]
    # Same seed, same answers: the same run.
    assert comparable(distributed) == comparable(local)
