"""After cancellation (Ctrl-C, an outage error, a sibling's crash) no new paid LM call starts: a DSPy program
running on a worker thread stops before its next call (issue 15, defect 7).

Deterministic by construction: each program's first LM call is answered by the server and then held at a gate
until both runs have been cancelled, so the order of events never depends on timing."""

from __future__ import annotations

import asyncio
import threading

import dspy

from rollouts_dspy.dspy_integration import ProgramTask, TaskOptions, rows_to_examples
from rollouts_dspy.dspy_integration.candidates import candidate_of
from rollouts_dspy.dspy_integration.metrics import ExactMatch
from rollouts_dspy.testing import generate_intent_queries

WAIT = 30.0
"""Only a bound on a hang (a broken program would otherwise block the test forever), never a verdict."""


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


class GatedLM(dspy.LM):
    """A dspy.LM whose calls reach the server, then wait at a gate before returning their answer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.answered = threading.Semaphore(0)
        self.gate = threading.Event()

    def __call__(self, prompt=None, messages=None, **kwargs):
        response = super().__call__(prompt, messages=messages, **kwargs)
        self.answered.release()
        if not self.gate.wait(WAIT):
            raise TimeoutError("the gate was never opened")
        return response


def test_a_cancelled_rollout_makes_no_further_lm_call(server):
    lm = GatedLM("openai/scripted-task", api_base=server.base_url, api_key="x", cache=False, num_retries=0)
    examples = rows_to_examples(generate_intent_queries(2, seed=1), ["query"])
    task = ProgramTask(ThreeSteps(), examples, ExactMatch(), lm, TaskOptions(max_concurrent=2))

    async def cancel_while_both_first_calls_are_held():
        runs = [asyncio.ensure_future(task.run(candidate_of(task.student), i)) for i in range(2)]
        for _ in runs:  # both programs' first calls have been answered by the server and are held
            assert await asyncio.to_thread(lm.answered.acquire, True, WAIT), "a program never called its LM"
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        assert all(run.cancelled() for run in runs)

    server.reset_stats()
    try:
        asyncio.run(cancel_while_both_first_calls_are_held())
    finally:
        lm.gate.set()  # the held calls return; each program then reaches its next call, which must not start
        task.close()  # joins the worker threads: whatever they were going to call has been called by now
    stats = server.stats()
    assert stats.requests_total == 2  # the two first calls, nothing after them
    assert task.rollouts_run == 0
