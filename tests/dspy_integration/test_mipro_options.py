"""MIPROv2's arguments drive the same behaviours here: teacher and teacher_settings (demos bootstrapped with the
teacher), init_temperature, the proposer toggles and view_data_batch_size, max_errors, provide_traceback,
verbose, minibatch."""

from __future__ import annotations

import dspy
import pytest
from dspy_helpers import RecordingLM, TwoStep

from rollouts_dspy.dspy_integration import RolloutsMIPRO, rows_to_examples
from rollouts_dspy.dspy_integration.program_task import TooManyErrors
from rollouts_dspy.testing import generate_intent_queries

EXAMPLES = rows_to_examples(generate_intent_queries(40, seed=12), ["query"])
TRAIN, VAL = EXAMPLES[:12], EXAMPLES[12:20]


def recording(server, model):
    return RecordingLM(f"openai/{model}", api_base=server.base_url, api_key="x", cache=False)


def run(student, *, teacher=None, optimizer=None, **compile_args):
    compile_args = {"num_trials": 3, "minibatch_size": 4, **compile_args}
    return optimizer.compile(student, trainset=TRAIN, valset=VAL, teacher=teacher, **compile_args)


def test_teacher_bootstraps_the_demos(server, task_lm, reflect_lm):
    teacher = dspy.ChainOfThought("query -> intent")
    teacher.set_lm(recording(server, "scripted-task-teacher"))
    student = dspy.ChainOfThought("query -> intent")
    with dspy.context(lm=task_lm):
        optimized = run(student, teacher=teacher, optimizer=RolloutsMIPRO(
            prompt_model=reflect_lm, auto=None, num_candidates=3, max_labeled_demos=0))
    by_model = server.stats().requests_by_model
    assert by_model["scripted-task-teacher"] == len(teacher.predict.lm.requests) > 0  # only bootstrapping
    teacher_runs = {text for text, _ in teacher.predict.lm.requests}
    demos = [d for r in optimized.search_outcome.records for d in r.candidate.demos.get("predict", ())]
    assert demos and all(any(d["query"] in text for text in teacher_runs) for d in demos)


def test_teacher_settings_apply_to_bootstrap_runs_only(server, task_lm, reflect_lm):
    other = recording(server, "scripted-task-settings")
    with dspy.context(lm=task_lm):
        run(dspy.Predict("query -> intent"), optimizer=RolloutsMIPRO(
            prompt_model=reflect_lm, auto=None, num_candidates=2, teacher_settings={"lm": other}))
    # The bootstrap runs went to teacher_settings' LM; the search's evaluations to the LM in effect.
    assert other.requests and server.stats().requests_by_model["scripted-task"] > 0


def test_init_temperature_and_the_proposer_toggles(server, task_lm):
    proposer = recording(server, "scripted-reflect")
    with dspy.context(lm=task_lm):
        run(TwoStep(), optimizer=RolloutsMIPRO(prompt_model=proposer, auto=None, num_candidates=3,
                                               init_temperature=0.7), view_data_batch_size=5)
    summary, *proposals = proposer.requests
    assert all(kwargs.get("temperature") == 0.7 for _, kwargs in proposer.requests)
    assert "Here are 5 rows" in summary[0] and len(proposals) == 2 * 2  # two proposals for each predictor
    assert any("for the step `draft`" in text for text, _ in proposals)
    assert sum("Tip:" in text for text, _ in proposals) >= 2
    quiet = recording(server, "scripted-reflect")
    with dspy.context(lm=task_lm):
        run(TwoStep(), optimizer=RolloutsMIPRO(prompt_model=quiet, auto=None, num_candidates=3),
            program_aware_proposer=False, data_aware_proposer=False, tip_aware_proposer=False,
            fewshot_aware_proposer=False)
    texts = [text for text, _ in quiet.requests]
    assert len(texts) == 4  # no data summary
    assert not any("for the step" in t or "Tip:" in t or "About the data: Here" in t for t in texts)
    assert not any("Examples of the task" in t for t in texts)


def test_max_errors_stops_the_run_and_provide_traceback_keeps_the_traceback(task_lm, reflect_lm, capsys):
    class Crashing(dspy.Module):
        def __init__(self):
            super().__init__()
            self.p = dspy.Predict("query -> intent")

        def forward(self, query):
            if "refund" in query.lower() or len(query) % 2:
                raise ValueError("program bug")
            return self.p(query=query)

    with dspy.context(lm=task_lm), pytest.raises(TooManyErrors, match="max_errors=3"):
        run(Crashing(), optimizer=RolloutsMIPRO(prompt_model=reflect_lm, auto=None, num_candidates=2,
                                                 max_errors=3))
    with dspy.context(lm=task_lm):
        optimized = run(Crashing(), optimizer=RolloutsMIPRO(prompt_model=reflect_lm, auto=None, num_candidates=2),
                        provide_traceback=True)
    assert optimized.search_outcome.records  # without max_errors a failed sample is data, the run goes on
    err = capsys.readouterr().err
    assert "Set `provide_traceback=True`" in err  # the first run: one line per failure
    assert 'raise ValueError("program bug")' in err and "Traceback (most recent call last)" in err


def test_verbose_logs_proposals_and_trials(task_lm, reflect_lm, capsys):
    with dspy.context(lm=task_lm):
        run(dspy.Predict("query -> intent"), optimizer=RolloutsMIPRO(prompt_model=reflect_lm, auto=None,
                                                                      num_candidates=2, verbose=True))
    err = capsys.readouterr().err
    assert "scripted-reflect answered:" in err and "trial 0: i0d0 score" in err


def test_minibatch_false_scores_every_trial_on_the_whole_training_split(task_lm, reflect_lm):
    with dspy.context(lm=task_lm):
        optimized = run(dspy.Predict("query -> intent"), minibatch=False,
                        optimizer=RolloutsMIPRO(prompt_model=reflect_lm, auto=None, num_candidates=2))
    logs = [log for log in optimized.trial_logs.values() if "0_predictor_instruction" in log]
    assert logs and all("full_eval_score" in log and "mb_score" not in log for log in logs)
    assert optimized.optimization_result.config["minibatch_size"] == len(TRAIN)
