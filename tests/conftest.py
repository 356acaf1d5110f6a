"""Shared fixtures: one scripted OpenAI-compatible server per test session, real HTTP on 127.0.0.1."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from rollouts_dspy.dtypes import Endpoint  # noqa: E402
from rollouts_dspy.prompt_optimization.options import RunOptions  # noqa: E402

BANKING77 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "banking77"


QUIET = RunOptions(progress=False)
"""Run options for a test run: no progress lines on stderr."""


def make_endpoint(server, model: str = "scripted-task", **overrides) -> Endpoint:
    """An Endpoint on the scripted server with fast retries, for tests."""
    params = dict(provider="openai", model=model, api_base=server.base_url, api_key="sk-test-not-a-real-key",
                  timeout=10.0, max_retries=2, retry_backoff=0.01)
    params.update(overrides)
    return Endpoint(**params)


@pytest.fixture(scope="session")
def scripted_server():
    from rollouts_dspy.testing import ScriptedServer

    with ScriptedServer() as server:
        yield server


@pytest.fixture
def server(scripted_server):
    scripted_server.reset_stats()
    return scripted_server


@pytest.fixture
def task_endpoint(server) -> Endpoint:
    return make_endpoint(server, "scripted-task")


@pytest.fixture
def reflect_endpoint(server) -> Endpoint:
    return make_endpoint(server, "scripted-reflect")


@pytest.fixture(scope="session")
def banking77_dir() -> Path:
    if not (BANKING77 / "train.csv").exists():
        pytest.skip(f"Banking77 not found at {BANKING77}")
    return BANKING77
