"""Any DSPy LM works as the task, reflection or proposer LM, including subclasses that override `__call__` or
`forward` (DSPy's own test LMs do); a provider failure reaches the engines as a provider failure (`kind`,
`retryable`), a bug as itself; one failed reflection/proposal call costs one candidate, not the run."""

from __future__ import annotations

import asyncio
import threading

import dspy
import pytest
from dspy.utils import DummyLM
from dspy.utils.exceptions import LMInvalidRequestError, LMServerError

from rollouts_dspy.dspy_integration import DSPyLanguageModel, RolloutsGEPA, RolloutsMIPRO, rows_to_examples
from rollouts_dspy.dtypes import Message
from rollouts_dspy.llm import LLMCallError
from rollouts_dspy.prompt_optimization.events import CandidateDropped
from rollouts_dspy.testing import generate_intent_queries

EXAMPLES = rows_to_examples(generate_intent_queries(30, seed=9), ["query"])
TRAIN, VAL = EXAMPLES[:10], EXAMPLES[10:20]
RULES = ('Classify the customer query into one banking intent label.\n'
         '- If the query mentions "refund" or "money back", answer: request_refund\n'
         '- If the query mentions "pin", answer: pin_blocked')


class Overriding(dspy.LM):
    """A dspy.LM subclass that overrides __call__ (records the call, then lets DSPy make it) and can fail its
    first `failures` calls with a given error."""

    def __init__(self, *args, failures: int = 0, error: type[Exception] = LMServerError, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.failures, self.error = failures, error
        self._lock = threading.Lock()

    def __call__(self, prompt=None, messages=None, **kwargs):
        with self._lock:
            self.calls += 1
            fail = self.calls <= self.failures
        if fail:
            raise self.error(message="scripted failure", model=self.model)
        return super().__call__(prompt, messages=messages, **kwargs)


def overriding(server, model: str, **kwargs) -> Overriding:
    return Overriding(f"openai/{model}", api_base=server.base_url, api_key="x", cache=False, **kwargs)


def test_provider_failures_and_bugs_are_told_apart(server):
    ask = [Message("system", "You write instructions."), Message("user", "Improve: ```\nClassify.\n```")]
    down = DSPyLanguageModel(overriding(server, "scripted-reflect", failures=1))
    with pytest.raises(LLMCallError) as failure:
        asyncio.run(down.complete(ask))
    assert failure.value.kind == "LMServerError" and failure.value.retryable
    text, _ = asyncio.run(down.complete(ask))  # the next call goes through
    assert text
    refused = DSPyLanguageModel(overriding(server, "scripted-reflect", failures=1, error=LMInvalidRequestError))
    with pytest.raises(LLMCallError) as failure:
        asyncio.run(refused.complete(ask))
    assert not failure.value.retryable

    class Buggy(dspy.LM):
        def __call__(self, prompt=None, messages=None, **kwargs):
            return None.text  # a bug in the LM subclass, not an outage

    with pytest.raises(AttributeError):
        asyncio.run(DSPyLanguageModel(Buggy("openai/x")).complete(ask))


def test_overriding_lms_as_task_and_reflection_lm_for_gepa(server):
    task, reflect = overriding(server, "scripted-task"), overriding(server, "scripted-reflect")
    with dspy.context(lm=task):
        optimized = RolloutsGEPA(reflection_lm=reflect, max_metric_calls=80, track_stats=True).compile(
            dspy.Predict("query -> intent"), trainset=TRAIN, valset=VAL)
    assert reflect.calls > 0 and task.calls == optimized.search_outcome.rollouts_used
    assert len(optimized.detailed_results.candidates) > 1  # reflections were used, not dropped


def test_a_forward_overriding_test_lm_as_reflection_and_proposer_lm(task_lm):
    """DSPy's DummyLM (it overrides `forward`) answering with fixed instructions."""
    answer = {"instruction": f"```\n{RULES}\n```"}
    with dspy.context(lm=task_lm):
        gepa = RolloutsGEPA(reflection_lm=DummyLM([answer] * 50), max_metric_calls=60).compile(
            dspy.Predict("query -> intent"), trainset=TRAIN, valset=VAL)
        mipro = RolloutsMIPRO(prompt_model=DummyLM([answer] * 50), auto=None, num_candidates=3).compile(
            dspy.Predict("query -> intent"), trainset=TRAIN, valset=VAL, num_trials=4, minibatch_size=5)
    assert any(r.candidate.instructions["self"] == RULES for r in gepa.search_outcome.records)
    assert any(r.candidate.instructions["self"] == RULES for r in mipro.search_outcome.records)
    assert mipro.prompt_model_total_calls == 3  # the data summary and two proposals, none skipped


def test_one_failed_proposal_costs_one_candidate(server, task_lm):
    proposer = overriding(server, "scripted-reflect", failures=1)
    events = []
    with dspy.context(lm=task_lm):
        optimized = RolloutsMIPRO(prompt_model=proposer, auto=None, num_candidates=4, reporter=events.append).compile(
            dspy.Predict("query -> intent"), trainset=TRAIN, valset=VAL, num_trials=4, minibatch_size=5,
            data_aware_proposer=False)
    # No data summary: three proposals, one of which failed (a CandidateDropped saying why); the run went on.
    assert proposer.calls == optimized.prompt_model_total_calls == 3
    dropped = [e for e in events if isinstance(e, CandidateDropped)]
    assert len(dropped) == 1 and "failed" in dropped[0].reasons[0], dropped
    assert optimized.search_outcome.stop_reason == "num_trials"


def test_one_failed_reflection_costs_one_child(server, task_lm):
    reflect = overriding(server, "scripted-reflect", failures=1, error=LMInvalidRequestError)
    with dspy.context(lm=task_lm):
        optimized = RolloutsGEPA(reflection_lm=reflect, max_metric_calls=80, track_stats=True).compile(
            dspy.Predict("query -> intent"), trainset=TRAIN, valset=VAL)
    assert len(optimized.detailed_results.candidates) > 1
