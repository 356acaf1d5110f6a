"""After cancellation (Ctrl-C, an outage error, a sibling's crash) no new paid LM call starts: a DSPy program
running on a worker thread stops before its next call (issue 15, defect 7)."""

from __future__ import annotations

import asyncio

import dspy
import pytest

from rollouts_dspy.dspy_integration import ProgramTask, TaskOptions, rows_to_examples
from rollouts_dspy.dspy_integration.candidates import candidate_of
from rollouts_dspy.dspy_integration.metrics import ExactMatch
from rollouts_dspy.testing import ScriptedServer, generate_intent_queries


class ThreeSteps(dspy.Module):
    """Three LM calls in a row."""

    def __init__(self):
        super().__init__()
        self.first = dspy.Predict("query -> intent")
        self.second = dspy.Predict("query, draft -> intent")
        self.third = dspy.Predict("query, draft -> intent")

    def forward(self, query):
        draft = self.first(query=query).intent
        draft = self.second(query=query, draft=draft).intent
        return self.third(query=query, draft=draft)


@pytest.fixture
def slow_server():
    with ScriptedServer(latency=0.4) as server:
        yield server


async def _wait_for_request(server: ScriptedServer) -> None:
    for _ in range(500):  # until the first call is on the wire (bounded: 5 s)
        if server.stats().in_flight:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the program never called the LM")


def test_a_cancelled_rollout_makes_no_further_lm_call(slow_server):
    lm = dspy.LM("openai/scripted-task", api_base=slow_server.base_url, api_key="x", cache=False, num_retries=0)
    examples = rows_to_examples(generate_intent_queries(2, seed=1), ["query"])
    task = ProgramTask(ThreeSteps(), examples, ExactMatch(), lm, TaskOptions(max_concurrent=2))

    async def cancel_during_the_first_call():
        runs = [asyncio.ensure_future(task.run(candidate_of(task.student), i)) for i in range(2)]
        await _wait_for_request(slow_server)
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    asyncio.run(cancel_during_the_first_call())
    task.close()  # joins the worker threads: whatever they were going to call has been called by now
    stats = slow_server.stats()
    assert stats.requests_total == 2 and stats.in_flight == 0  # the two first calls, nothing after them
    assert task.rollouts_run == 0
