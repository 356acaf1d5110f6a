"""optimize_mipro against in-process fakes of the Task and LanguageModel seams: reuse, corners, budget,
determinism, multi-component search and resume."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollouts_dspy.errors import CheckpointError
from rollouts_dspy.prompt_optimization.events import RunStarted, RunWarning, StepFinished
from rollouts_dspy.prompt_optimization.mipro import MIPROConfig, optimize_mipro
from rollouts_dspy.prompt_optimization.mipro.schedule import minibatch
from rollouts_dspy.prompt_optimization.mipro.search import Study
from rollouts_dspy.prompt_optimization.types import Candidate

from .fakes import FakeProposer, FakeTask

INITIAL = Candidate({"system": "Answer the question."})


def _config(**kw):
    params = dict(num_candidates=4, num_trials=8, minibatch_size=6, max_bootstrapped_demos=2, max_labeled_demos=2,
                  num_demo_sets=5, bootstrap_threshold=1.0, full_eval_every=3, train_seeds=tuple(range(24)),
                  val_seeds=tuple(range(24, 36)), max_concurrent=8)
    params.update(kw)
    return MIPROConfig(**params)


async def _run(task=None, proposer=None, config=None, initial=INITIAL):
    events = []
    task = task or FakeTask()
    outcome = await optimize_mipro(task, proposer or FakeProposer(), initial, config or _config(),
                                   reporter=events.append)
    return outcome, task, events


async def test_scores_are_reused_never_rerun_and_events_flow():
    outcome, task, events = await _run()
    assert max(task.calls.values()) == 1  # every (combination, sample) pair ran at most once
    assert isinstance(events[0], RunStarted) and events[0].estimate["proposer_calls"] == 4
    steps = [e for e in events if isinstance(e, StepFinished)]
    assert [s.stats.generation for s in steps] == list(range(8)) == [h.generation for h in outcome.history]
    assert outcome.rollouts_used == task.total
    initial = next(r for r in outcome.records if r.origin == "initial")
    assert initial.id == "i0d0" and initial.candidate == INITIAL and initial.val_scores
    # The winner is chosen on validation: the initial combination is always among the validated, and the best
    # has the highest validation mean of them.
    validated = [r for r in outcome.records if r.val_scores]
    assert initial in validated and all(len(r.val_scores) == 12 for r in validated)
    assert outcome.record(outcome.best_id).val_mean == max(r.val_mean for r in validated)
    assert len({r.id for r in outcome.records}) == len(outcome.records)


async def test_same_seed_same_result_other_seed_other_search():
    a, _, _ = await _run()
    b, _, _ = await _run()
    c, _, _ = await _run(config=_config(seed=7))
    assert a.best_id == b.best_id and a.records == b.records
    assert [(h.generation, h.mean_score) for h in a.history] == [(h.generation, h.mean_score) for h in b.history]
    assert [r.id for r in a.records] != [r.id for r in c.records] or a.history != c.history


@pytest.mark.parametrize("kw", [
    dict(max_bootstrapped_demos=0, max_labeled_demos=3),          # labeled-only
    dict(max_bootstrapped_demos=0, max_labeled_demos=0),          # zero-shot
    dict(num_candidates=1, max_bootstrapped_demos=0, max_labeled_demos=0),  # one combination, fully evaluated
    dict(val_seeds=(30, 31), minibatch_size=20),                  # validation smaller than the minibatch
    dict(val_seeds=()),                                           # no validation: best by full evaluation
    dict(train_seeds=(0, 1, 2), minibatch_size=35),               # train smaller than the minibatch
])
async def test_corners_where_miprov2_crashes_run_fine(kw):
    outcome, task, _ = await _run(config=_config(**kw))
    assert len(outcome.history) == 8 and outcome.best_id in {r.id for r in outcome.records}
    assert max(task.calls.values()) == 1


async def test_failed_rollouts_are_not_scores():
    outcome, _, _ = await _run(task=FakeTask(fail_every=2))
    for r in outcome.records:
        assert all(i % 2 for i in r.train_scores) and all(i % 2 for i in r.val_scores)
    for h in outcome.history:
        assert h.num_evaluated == sum(i % 2 for i in minibatch(tuple(range(24)), 6, 0, h.generation))


async def test_multi_component_searches_an_index_pair_per_component():
    task = FakeTask(("first", "second"))
    initial = Candidate({"first": "Do one.", "second": "Do two."})
    outcome, _, _ = await _run(task=task, initial=initial, config=_config(num_trials=10))
    assert all(r.id.count("-") == 1 for r in outcome.records)
    assert set(outcome.record(outcome.best_id).candidate.instructions) == {"first", "second"}
    assert any(r.id != "i0d0-i0d0" for r in outcome.records)


async def test_garbage_proposer_leaves_instruction_zero_and_a_warning():
    outcome, _, events = await _run(proposer=FakeProposer("garbage"))
    assert all(r.id.startswith("i0") for r in outcome.records)
    assert any(isinstance(e, RunWarning) and "proposals" in e.message for e in events)
    outcome, _, _ = await _run(proposer=FakeProposer("raise"))
    assert len(outcome.history) == 8


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(max_rollouts=st.integers(1, 160))
async def test_budget_is_never_exceeded(max_rollouts):
    outcome, task, _ = await _run(config=_config(max_rollouts=max_rollouts))
    assert task.total <= max_rollouts and outcome.rollouts_used <= max_rollouts
    if max_rollouts < 100:
        assert outcome.stop_reason == "budget"


async def test_cost_budget_stops_cleanly():
    outcome, task, _ = await _run(config=_config(max_cost_usd=0.05))  # 0.001 per rollout
    assert outcome.cost_usd <= 0.05 + 1e-9 and task.total <= 50 and outcome.stop_reason == "budget"


async def test_trials_run_concurrently_within_max_concurrent():
    _, task, _ = await _run(config=_config(minibatch_size=2, max_concurrent=8))
    assert task.max_in_flight > 2  # several trials' minibatches at once


async def test_resume_repeats_no_finished_trial(tmp_path):
    storage = str(tmp_path / "study.db")
    task = FakeTask()
    first, _, _ = await _run(task=task, config=_config(storage=storage, num_trials=5))
    calls_after_first = task.total
    second, _, events = await _run(task=task, config=_config(storage=storage, num_trials=9))
    assert max(task.calls.values()) == 1  # nothing ran twice across the two processes' worth of work
    assert [h.generation for h in second.history] == list(range(9))
    assert second.history[:5] == first.history[:5]
    assert [e.stats.generation for e in events if isinstance(e, StepFinished)] == [5, 6, 7, 8]
    assert task.total > calls_after_first
    # a third run with the same num_trials runs no trial at all
    before = task.total
    third, _, events = await _run(task=task, config=_config(storage=storage, num_trials=9))
    assert task.total == before and not [e for e in events if isinstance(e, StepFinished)]
    assert third.best_id == second.best_id


async def test_resume_after_a_crash_finishes_the_study(tmp_path):
    storage = str(tmp_path / "study.db")
    with pytest.raises(RuntimeError, match="simulated crash"):
        await _run(task=FakeTask(crash_after=60), config=_config(storage=storage))
    task = FakeTask()
    outcome, _, _ = await _run(task=task, config=_config(storage=storage))
    assert len(outcome.history) == 8
    study = Study({"system": (1, 1)}, 0, storage).study  # the SQLite study itself
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    assert states.count("COMPLETE") == 8 and "RUNNING" not in states


async def test_resume_with_another_config_is_a_clear_error(tmp_path):
    storage = str(tmp_path / "study.db")
    await _run(config=_config(storage=storage, num_trials=2))
    with pytest.raises(CheckpointError, match="different run"):
        await _run(config=_config(storage=storage, num_trials=2, minibatch_size=5))
