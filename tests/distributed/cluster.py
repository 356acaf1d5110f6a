"""A real local Ray cluster for the distributed tests: a head node plus worker nodes started in this machine's
loopback, each node a raylet process with its own worker processes, and a way to kill a node as a crash would
(SIGKILL to its raylet and every process under it)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

INSTALL = "pip install -e '.[dev]' (its dev extra includes ray) or pip install 'rollouts-dspy[ray]'"
FAST_FAILURE_DETECTION = {"health_check_period_ms": 500, "health_check_failure_threshold": 4,
                          "health_check_initial_delay_ms": 0}
"""A killed node is declared dead within ~2 s instead of Ray's default ~15 s."""


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # the process ended while we looked
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def _until(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {timeout:.0f} s", pytrace=False)
        time.sleep(0.05)


class LocalRayCluster:
    """`start(head_cpus)` a cluster and connect this process to it as the driver."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.address = cluster.address

    @classmethod
    def start(cls, head_cpus: int = 1) -> LocalRayCluster:
        try:
            import ray
            from ray.cluster_utils import Cluster
        except ImportError as exc:
            pytest.fail(f"the distributed tests need Ray ({exc}): {INSTALL}", pytrace=False)
        try:
            cluster = Cluster(initialize_head=True, head_node_args={
                "num_cpus": head_cpus, "include_dashboard": False, "_system_config": FAST_FAILURE_DETECTION})
            ray.init(address=cluster.address, log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 - any failure to start is reported with what to do
            pytest.fail(f"a local Ray cluster could not start ({type(exc).__name__}: {exc}); check that Ray "
                        f"works on this machine (python -c 'import ray; ray.init()'), or reinstall it: {INSTALL}",
                        pytrace=False)
        return cls(cluster)

    def add_node(self, num_cpus: int = 1, *, warm_up: Any = None) -> Any:
        """A new node; with `warm_up` (a function), run once on it before it is returned: its worker is then
        started and ready, and the head's scheduler has seen the node take work (so it sends work there)."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node = self.cluster.add_node(num_cpus=num_cpus)
        self.cluster.wait_for_nodes()
        if warm_up is not None:
            pinned = NodeAffinitySchedulingStrategy(node_id=node.node_id, soft=False)
            ran_on = ray.get(ray.remote(warm_up).options(num_cpus=1, scheduling_strategy=pinned).remote(),
                             timeout=120)
            assert ran_on == node.node_id, f"the warm-up ran on {ran_on}, not on the new node {node.node_id}"
            _until(lambda: ray.available_resources().get("CPU", 0) >= self.cpus(), "the new node's CPUs to be free")
        return node

    @staticmethod
    def cpus() -> float:
        import ray

        return sum(n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive"))

    @staticmethod
    def node_id(node: Any) -> str:
        return node.node_id

    def kill_node(self, node: Any) -> list[int]:
        """SIGKILL the node's raylet and everything under it (its workers); returns the pids killed."""
        raylet = node.all_processes["raylet"][0].process.pid
        victims = [*descendants(raylet), raylet]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # already gone: a worker exits by itself once its raylet is dead
        return victims

    def forget_node(self, node: Any) -> None:
        """Reap a killed node's processes and drop it from the cluster's books."""
        self.cluster.remove_node(node, allow_graceful=False)

    def shutdown(self) -> None:
        import ray

        ray.shutdown()
        self.cluster.shutdown()
