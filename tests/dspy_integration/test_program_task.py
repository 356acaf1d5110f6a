"""ProgramTask: candidates applied to copies, rollouts in worker threads under the compile-time LM."""

from __future__ import annotations

import asyncio

import dspy
import pytest

from rollouts_dspy.dspy_integration.data import rows_to_examples
from rollouts_dspy.dspy_integration.lm_model import DSPyLanguageModel
from rollouts_dspy.dspy_integration.metrics import ExactMatch
from rollouts_dspy.dspy_integration.program_task import (
    ProgramTask,
    TaskOptions,
    apply_candidate,
    candidate_of,
    classify_error,
)
from rollouts_dspy.dtypes import Message
from rollouts_dspy.prompt_optimization.types import Candidate

RULES = ("Classify the customer query.\n"
         '- If the query mentions "refund", answer: request_refund\n'
         '- If the query mentions "pin", answer: pin_blocked')


class TwoStep(dspy.Module):
    def __init__(self):
        super().__init__()
        self.rewrite = dspy.Predict("query -> summary")
        self.classify = dspy.ChainOfThought("summary -> intent")

    def forward(self, query):
        return self.classify(summary=self.rewrite(query=query).summary)


async def _run_all(task, candidate, indices):
    try:
        return await asyncio.gather(*(task.run(candidate, i) for i in indices))
    finally:
        task.close()


def test_candidate_round_trip_and_student_untouched():
    student = dspy.ChainOfThought("query -> intent")
    student.predict.demos = [dspy.Example(query="q", reasoning="r", intent="card_arrival")]
    before = student.predict.signature
    candidate = candidate_of(student)
    assert set(candidate.instructions) == {"predict"}
    assert candidate.demos["predict"] == ({"query": "q", "reasoning": "r", "intent": "card_arrival"},)
    program = apply_candidate(student, candidate.with_instruction("predict", "New text").with_demos("predict", ()))
    assert program.predict.signature.instructions == "New text" and program.predict.demos == []
    assert student.predict.signature is before and student.predict.demos[0].intent == "card_arrival"
    assert list(program.predict.signature.fields) == list(before.fields)


def test_rules_lift_scores_and_lm_comes_from_the_task(server, task_lm, intent_rows):
    refunds = [r for r in intent_rows if "refund" in r["query"].lower()][:4]
    examples = rows_to_examples(refunds + intent_rows[:12], ["query"])
    task = ProgramTask(dspy.Predict("query -> intent"), examples, ExactMatch(), task_lm, TaskOptions(max_concurrent=4))
    base = candidate_of(task.student)
    assert task.components == ("self",)  # a bare Predict names itself "self"
    n = len(examples)
    plain = asyncio.run(_run_all(task, base, range(n)))
    ruled = asyncio.run(_run_all(task, base.with_instruction("self", RULES), range(n)))
    assert all(r.error is None and r.usage.calls == 1 for r in plain + ruled)
    assert sum(r.score for r in ruled) >= sum(r.score for r in plain)
    refund = [r for r in ruled if "refund" in r.inputs["query"].lower()]
    assert refund and all(r.score == 1.0 for r in refund)
    assert plain[0].demos["self"].keys() == {"query", "intent"}
    assert server.stats().requests_by_model.get("scripted-task", 0) == 2 * n
    assert dspy.settings.lm is None  # nothing configured globally


def test_multi_predictor_program_traces(task_lm, intent_rows):
    examples = rows_to_examples(intent_rows[:3], ["query"])
    task = ProgramTask(TwoStep(), examples, ExactMatch(), task_lm)
    assert task.components == ("rewrite", "classify.predict")
    rollouts = asyncio.run(_run_all(task, candidate_of(task.student), range(3)))
    for r in rollouts:
        assert set(r.demos) == {"rewrite", "classify.predict"}
        assert "### Step 1: rewrite" in r.output and "### Step 2: classify.predict" in r.output
    assert task.labeled_demo(0, "rewrite") is None  # the example has no `summary` label
    assert task.labeled_demo(0, "classify.predict") is None


def test_failures_are_data(server, task_lm, intent_rows):
    examples = rows_to_examples(intent_rows[:2], ["query"])

    def broken_metric(example, pred, trace=None):
        raise KeyError("boom")

    task = ProgramTask(dspy.Predict("query -> intent"), examples, broken_metric, task_lm)
    r, = asyncio.run(_run_all(task, candidate_of(task.student), [0]))
    assert r.score is None and r.error.kind == "score_fn" and "boom" in r.error.detail

    class Crashing(dspy.Module):
        def __init__(self):
            super().__init__()
            self.p = dspy.Predict("query -> intent")

        def forward(self, query):
            raise ValueError("bad program")

    task = ProgramTask(Crashing(), examples, ExactMatch(), task_lm, TaskOptions(failure_score=0.0))
    r, = asyncio.run(_run_all(task, candidate_of(task.student), [1]))
    assert r.score == 0.0 and r.error.kind == "task"


def test_classify_error():
    from dspy.utils.exceptions import LMRateLimitError

    assert classify_error(LMRateLimitError(message="slow down", model="m")) == "llm"
    assert classify_error(ValueError("x")) == "task"


def test_context_lm_reaches_worker_threads(task_lm, intent_rows):
    examples = rows_to_examples(intent_rows[:4], ["query"])
    task = ProgramTask(dspy.Predict("query -> intent"), examples, ExactMatch(), None, TaskOptions(max_concurrent=2))
    with dspy.context(lm=task_lm):
        rollouts = asyncio.run(_run_all(task, candidate_of(task.student), range(4)))
    assert all(r.error is None for r in rollouts)


def test_predictor_keeps_its_own_lm(server, task_lm, reflect_lm, intent_rows):
    student = dspy.Predict("query -> intent")
    own = dspy.LM("openai/scripted-task-own", api_base=server.base_url, api_key="scripted", cache=False)
    student.lm = own
    task = ProgramTask(student, rows_to_examples(intent_rows[:2], ["query"]), ExactMatch(), task_lm)
    asyncio.run(_run_all(task, candidate_of(student), range(2)))
    assert server.stats().requests_by_model.get("scripted-task-own") == 2


def test_dspy_language_model(reflect_lm):
    model = DSPyLanguageModel(reflect_lm)
    text, usage = asyncio.run(model.complete([Message("user", "Propose an instruction: ```\nClassify.\n```")]))
    assert text and usage.calls == 1 and usage.prompt_tokens > 0
    with pytest.raises(ValueError):
        DSPyLanguageModel(None)


def test_candidate_keys_share_built_programs(task_lm, intent_rows):
    task = ProgramTask(dspy.Predict("query -> intent"), rows_to_examples(intent_rows[:1], ["query"]), ExactMatch(),
                       task_lm)
    a = Candidate({"self": "x"})
    assert task.program(a) is task.program(Candidate({"self": "x"}))
    assert task.program(a) is not task.program(Candidate({"self": "y"}))


def test_runs_on_the_samples_feedback_may_be_asked_about_are_never_forgotten(monkeypatch, task_lm, intent_rows):
    from rollouts_dspy.dspy_integration import program_task

    monkeypatch.setattr(program_task, "KEEP_RUNS", 1)  # remember a single other run
    examples = rows_to_examples(intent_rows[:4], ["query"])
    student = dspy.Predict("query -> intent")
    task = ProgramTask(student, examples, ExactMatch(), task_lm, TaskOptions(keep_runs_for=frozenset({0})))
    candidate = candidate_of(student)
    for i in range(4):  # one at a time: the order of the runs is the order of the indices
        asyncio.run(_run_all(task, candidate, [i]))
    remembered = [task.run_record(candidate.key, i) is not None for i in range(4)]
    assert remembered == [True, False, False, True]
