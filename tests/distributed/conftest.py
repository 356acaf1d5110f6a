"""Fixtures of the distributed tests: a real local Ray cluster (one for this directory's tests) and a
real PostgreSQL server. When either cannot start, the tests fail with what to install (never a skip)."""

from __future__ import annotations

import os

# Every Ray process binds to loopback (127.0.0.1) instead of the machine's network address: the tests' traffic
# stays on this machine. Read by Ray when it is imported, so it is set before anything imports Ray.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import pytest  # noqa: E402

from . import helpers  # noqa: E402
from .cluster import LocalRayCluster  # noqa: E402


@pytest.fixture(scope="package")
def ray_cluster():
    """A head node with one CPU (one worker process), this process its driver. Tests add and kill nodes."""
    cluster = LocalRayCluster.start(head_cpus=1)
    import ray.cloudpickle

    # Workers receive the tests' score_fns and fake Tasks by value: they cannot import the tests package.
    ray.cloudpickle.register_pickle_by_value(helpers)
    try:
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture(scope="package")
def postgres_url():
    """A real PostgreSQL server in a temp directory for this test session: its `postgresql://` URL."""
    from rollouts_dspy.testing.postgres import PostgresUnavailable, TempPostgres

    server = TempPostgres()
    try:
        url = server.start()
    except PostgresUnavailable as exc:
        server.stop()
        pytest.fail(f"the distributed tests need a PostgreSQL server: {exc}", pytrace=False)
    try:
        yield url
    finally:
        server.stop()
