"""dspy.GEPA's arguments drive the same behaviours here: add_format_failure_as_feedback, warn_on_score_mismatch,
failure_score, num_threads, use_merge, seed, reflection_minibatch_size, perfect_score."""

from __future__ import annotations

import asyncio

import dspy
import pytest
from dspy_helpers import RecordingLM, TwoStep

from rollouts_dspy.dspy_integration import ProgramTask, RolloutsGEPA, TaskOptions, rows_to_examples
from rollouts_dspy.dspy_integration.candidates import candidate_of
from rollouts_dspy.testing import generate_intent_queries

EXAMPLES = rows_to_examples(generate_intent_queries(30, seed=13), ["query"])
TRAIN, VAL = EXAMPLES[:10], EXAMPLES[10:18]


class Unparseable(dspy.LM):
    """Answers every call with text no adapter can read."""

    def __call__(self, prompt=None, messages=None, **kwargs):
        return ["I would rather not use your format."]


def accuracy(gold, pred, trace=None, pred_name=None, pred_trace=None):
    ok = str(pred.intent).strip().lower() == gold.intent.lower()
    return dspy.Prediction(score=float(ok), feedback=f"{'right' if ok else 'wrong'} for {pred_name}")


def feedback_after_runs(student, lm, metric, options, indices=(0, 1)):
    task = ProgramTask(student, TRAIN, metric, lm, options)
    candidate = candidate_of(student)

    async def go():
        try:
            rollouts = await asyncio.gather(*(task.run(candidate, i) for i in indices))
            return rollouts, {c: await task.component_feedback(candidate, rollouts, c) for c in task.components}
        finally:
            task.close()

    return asyncio.run(go())


@pytest.mark.parametrize("shown", [True, False])
def test_format_failures_as_feedback(shown):
    rollouts, feedback = feedback_after_runs(dspy.Predict("query -> intent"), Unparseable("openai/none"), accuracy,
                                             TaskOptions(failure_score=-1.0, add_format_failure_as_feedback=shown))
    assert all(r.score == -1.0 and r.output.startswith("Couldn't parse the output") for r in rollouts)
    if shown:
        assert [r.feedback.splitlines()[0] for r in feedback["self"]] == \
            ["Your output failed to parse. Follow this structure:"] * 2
        assert all("[[ ## intent ## ]]" in r.feedback for r in feedback["self"])
    else:
        assert feedback["self"] == []  # dspy.GEPA leaves format failures out of the reflection


@pytest.mark.parametrize("warn", [True, False])
def test_score_mismatch_warning(warn, task_lm, capsys):
    def per_step(gold, pred, trace=None, pred_name=None, pred_trace=None):
        return dspy.Prediction(score=0.5 if pred_name else 1.0, feedback="f")

    feedback_after_runs(TwoStep(), task_lm, per_step, TaskOptions(warn_on_score_mismatch=warn))
    err = capsys.readouterr().err
    assert err.count("differs from its score of the whole program") == (1 if warn else 0)  # once per run


def test_failure_score_num_threads_and_no_merge(server, task_lm, reflect_lm):
    class SometimesCrashing(dspy.Module):
        def __init__(self):
            super().__init__()
            self.p = dspy.Predict("query -> intent")

        def forward(self, query):
            if "card" in query.lower():
                raise ValueError("program bug")
            return self.p(query=query)

    with dspy.context(lm=task_lm):
        optimized = RolloutsGEPA(reflection_lm=reflect_lm, max_metric_calls=60, failure_score=-1.0, num_threads=2,
                                 use_merge=False).compile(SometimesCrashing(), trainset=TRAIN, valset=VAL)
    crashing = {i for i, ex in enumerate(TRAIN + VAL) if "card" in ex.query.lower()}
    seed = optimized.search_outcome.records[0]
    scores = {**seed.train_scores, **seed.val_scores}
    assert crashing & set(scores) and all(scores[i] == -1.0 for i in crashing & set(scores))
    assert server.stats().max_in_flight <= 2
    assert all(r.origin in ("initial", "mutation") for r in optimized.search_outcome.records)
    assert optimized.optimization_result.config["crossover_rate"] == 0.0


def test_same_seed_same_run_and_the_reflection_minibatch(server, task_lm):
    def compile_with(seed):
        reflect = RecordingLM("openai/scripted-reflect", api_base=server.base_url, api_key="x", cache=False)
        with dspy.context(lm=task_lm):
            program = RolloutsGEPA(reflection_lm=reflect, max_metric_calls=70, seed=seed,
                                   reflection_minibatch_size=2).compile(
                dspy.Predict("query -> intent"), trainset=TRAIN, valset=VAL)
        return program, reflect

    first, reflect = compile_with(5)
    second, _ = compile_with(5)
    assert [(r.id, r.candidate, dict(r.val_scores)) for r in first.search_outcome.records] == \
        [(r.id, r.candidate, dict(r.val_scores)) for r in second.search_outcome.records]
    assert first.optimization_result.config["seed"] == 5
    assert reflect.requests and all(text.count("## Example ") <= 2 for text, _ in reflect.requests)


def test_perfect_score_ends_the_run_once_reached(task_lm, reflect_lm):
    with dspy.context(lm=task_lm):
        optimized = RolloutsGEPA(metric=accuracy, reflection_lm=reflect_lm, max_metric_calls=200,
                                 perfect_score=0.0).compile(dspy.Predict("query -> intent"), trainset=TRAIN,
                                                            valset=VAL)
    assert optimized.search_outcome.stop_reason == "perfect_score"
    assert optimized.search_outcome.rollouts_used < 200


def test_a_metric_that_fails_when_asked_for_feedback_keeps_the_runs_own_feedback(task_lm, caplog):
    def fragile(gold, pred, trace=None, pred_name=None, pred_trace=None):
        if pred_name == "check":
            raise KeyError("no feedback for this step")
        return accuracy(gold, pred, trace, pred_name, pred_trace)

    rollouts, feedback = feedback_after_runs(TwoStep(), task_lm, fragile, TaskOptions())
    assert [r.feedback for r in feedback["check"]] == [r.feedback for r in rollouts]  # the program-level feedback
    assert all(r.feedback.endswith("for draft") for r in feedback["draft"])
    assert "Error in the metric's feedback for predictor 'check'" in caplog.text
