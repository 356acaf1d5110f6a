"""DSPy LMs on the session's scripted server (cache off: every call really reaches the server)."""

from __future__ import annotations

import pytest

dspy = pytest.importorskip("dspy")


@pytest.fixture
def task_lm(server):
    return dspy.LM("openai/scripted-task", api_base=server.base_url, api_key="scripted", cache=False,
                   num_retries=1)


@pytest.fixture
def reflect_lm(server):
    return dspy.LM("openai/scripted-reflect", api_base=server.base_url, api_key="scripted", cache=False,
                   num_retries=1)


@pytest.fixture
def intent_rows():
    from rollouts_dspy.testing import generate_intent_queries

    return generate_intent_queries(40, seed=3)



@pytest.fixture
def counting_metric():
    from dspy_helpers import CountingMetric

    return CountingMetric()
