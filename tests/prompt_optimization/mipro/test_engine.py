"""optimize_mipro against in-process fakes of the Task and LanguageModel seams: reuse, phases and events, corners,
budgets (rollouts and dollars), determinism whatever order calls finish in, multi-component search and resume from
the journal. The fake task rewards the word "good" that the fake proposer writes: these tests show plumbing, not
search quality (that is measured on the scripted Banking77 world, benchmarks/mipro_tuning.py)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollouts_dspy.errors import CheckpointError
from rollouts_dspy.prompt_optimization.events import (
    BudgetUpdated,
    CandidateDropped,
    PhaseStarted,
    RunFinished,
    RunStarted,
    StepFinished,
)
from rollouts_dspy.prompt_optimization.mipro import MIPROConfig, optimize_mipro
from rollouts_dspy.prompt_optimization.mipro.schedule import minibatch
from rollouts_dspy.prompt_optimization.types import Candidate
from rollouts_dspy.runtime import JOURNAL_FILE

from .fakes import FakeProposer, FakeTask

INITIAL = Candidate({"system": "Answer the question."})


def _config(**kw):
    params = dict(num_candidates=4, num_trials=8, minibatch_size=6, max_bootstrapped_demos=2, max_labeled_demos=2,
                  num_demo_sets=5, bootstrap_threshold=1.0, full_eval_every=3, train_seeds=tuple(range(24)),
                  val_seeds=tuple(range(24, 36)), max_concurrent=8)
    params.update(kw)
    return MIPROConfig(**params)


async def _run(task=None, proposer=None, config=None, initial=INITIAL, **kw):
    events = []
    task = task or FakeTask()
    outcome = await optimize_mipro(task, proposer or FakeProposer(), initial, config or _config(),
                                   reporter=events.append, **kw)
    return outcome, task, events


def _comparable(outcome):
    return (outcome.best_id, outcome.records, outcome.stop_reason,
            [(h.generation, h.mean_score, h.num_evaluated, h.rollouts_used, h.tokens) for h in outcome.history])


async def test_scores_are_reused_never_rerun_and_every_phase_says_so():
    outcome, task, events = await _run()
    assert max(task.calls.values()) == 1  # every (combination, sample) pair ran at most once
    assert isinstance(events[0], RunStarted) and events[0].estimate["proposer_calls"] == 4
    phases = [e.phase for e in events if isinstance(e, PhaseStarted)]
    assert phases[:3] == ["bootstrap", "proposals", "search"] and phases[-1] == "validation"
    assert "full evaluation" in phases
    steps = [e for e in events if isinstance(e, StepFinished)]
    assert [s.stats.generation for s in steps] == list(range(8)) == [h.generation for h in outcome.history]
    assert outcome.rollouts_used == task.total and isinstance(events[-1], RunFinished)
    initial = outcome.records[0]
    assert initial.origin == "initial" and initial.id == "i0d0" and initial.candidate == INITIAL
    assert initial.val_scores and outcome.usage["task"]["calls"] == task.total
    assert outcome.usage["proposer"]["calls"] == 4
    # The winner is chosen on validation: the initial combination is always among the validated, and the best
    # has the highest validation mean of them.
    validated = [r for r in outcome.records if r.val_scores]
    assert initial in validated and all(len(r.val_scores) == 12 for r in validated)
    assert outcome.record(outcome.best_id).val_mean == max(r.val_mean for r in validated)
    assert len({r.id for r in outcome.records}) == len(outcome.records)


async def test_counters_stay_live_through_the_final_evaluations():
    # Defect 10: during MIPRO's last full evaluations the display froze (no BudgetUpdated, no phase event).
    _, task, events = await _run()
    start = max(k for k, e in enumerate(events) if isinstance(e, PhaseStarted) and e.phase == "validation")
    updates = [e.rollouts_used for e in events[start:] if isinstance(e, BudgetUpdated)]
    assert len(updates) >= 3 and updates == sorted(updates) and updates[-1] == task.total
    assert all(e.tokens > 0 for e in events if isinstance(e, BudgetUpdated))


async def test_best_so_far_is_never_below_a_score_it_was_shown_with():
    # Defect 13: progress printed "best 0.333 ... (best so far 0.000)".
    _, _, events = await _run()
    shown = None
    for e in (e for e in events if isinstance(e, StepFinished)):
        shown = e.stats.best_score if shown is None else max(shown, e.stats.best_score)
        assert e.best_so_far == shown


@pytest.mark.parametrize("delays", [(1, 2), (3, 4)])
async def test_the_order_calls_finish_in_does_not_change_the_result(delays):
    # Issue 12: trials run several at once and full evaluations in the background; every decision is ordered by
    # launch, so seeded random per-call delays (a different finishing order per seed) give the same search.
    config = _config(num_trials=12, minibatch_size=4, max_concurrent=8, full_eval_every=2)
    first, task_a, _ = await _run(task=FakeTask(delay_seed=delays[0]), config=config)
    second, task_b, _ = await _run(task=FakeTask(delay_seed=delays[1]), config=config)
    assert task_a.max_in_flight > config.minibatch_size  # more than one trial was in flight at once
    assert _comparable(first) == _comparable(second)
    assert task_a.calls == task_b.calls


async def test_same_seed_same_result_other_seed_other_search():
    a, _, _ = await _run()
    b, _, _ = await _run()
    c, _, _ = await _run(config=_config(seed=7))
    assert _comparable(a) == _comparable(b)
    assert [r.id for r in a.records] != [r.id for r in c.records] or a.history != c.history


@pytest.mark.parametrize("kw", [
    dict(max_bootstrapped_demos=0, max_labeled_demos=3),          # labeled-only
    dict(max_bootstrapped_demos=0, max_labeled_demos=0),          # zero-shot
    dict(num_candidates=1, max_bootstrapped_demos=0, max_labeled_demos=0),  # one combination, fully evaluated
    dict(val_seeds=(30, 31), minibatch_size=20),                  # validation smaller than the minibatch
    dict(val_seeds=()),                                           # no validation: best by full evaluation
    dict(train_seeds=(0, 1, 2), minibatch_size=35),               # train smaller than the minibatch
    dict(program_aware=False, data_aware=False, tip_aware=False, fewshot_aware=False),
])
async def test_corners_where_miprov2_crashes_run_fine(kw):
    outcome, task, _ = await _run(config=_config(**kw))
    assert len(outcome.history) == 8 and outcome.best_id in {r.id for r in outcome.records}
    assert max(task.calls.values()) == 1


async def test_without_validation_the_best_is_the_best_full_evaluation():
    outcome, _, _ = await _run(config=_config(val_seeds=()))
    full = [r for r in outcome.records if len(r.train_scores) == 24]
    assert outcome.record(outcome.best_id) in full
    assert outcome.record(outcome.best_id).train_mean == max(r.train_mean for r in full)


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


async def test_a_garbage_or_broken_proposer_drops_candidates_visibly_and_the_run_goes_on():
    outcome, _, events = await _run(proposer=FakeProposer("garbage"))
    assert all(r.id.startswith("i0") for r in outcome.records)
    dropped = [e for e in events if isinstance(e, CandidateDropped)]
    assert len(dropped) == 3 and all("not an instruction" in e.reasons[0] for e in dropped)
    # Defect 5: an exception that is not the provider's (a bug, a broken LM) is never an outage.
    outcome, _, events = await _run(proposer=FakeProposer("raise"))
    assert len(outcome.history) == 8
    assert all("RuntimeError: proposer down" in e.reasons[0] for e in events if isinstance(e, CandidateDropped))


async def test_bootstrapping_with_a_teacher_task_keeps_its_runs_apart():
    # ENGINE-HOOKS: `bootstrap_task` bootstraps demos with another task (e.g. a teacher program).
    teacher = FakeTask()
    outcome, task, _ = await _run(bootstrap_task=teacher, config=_config(max_labeled_demos=0))
    assert teacher.total > 0 and all(key == INITIAL.key for key, _ in teacher.calls)
    boot_rows = {i for _, i in teacher.calls}
    initial = outcome.records[0]
    # The teacher's runs are not the starting point's scores: the student ran its own trial on its own.
    assert (INITIAL.key, 0) not in teacher.calls or (INITIAL.key, 0) in task.calls
    assert set(initial.train_scores) <= {i for key, i in task.calls if key == INITIAL.key}
    assert boot_rows and any(r.candidate.demos for r in outcome.records)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(max_rollouts=st.integers(60, 200))
async def test_budget_is_never_exceeded(max_rollouts):
    outcome, task, _ = await _run(config=_config(max_rollouts=max_rollouts, num_trials=30))
    assert task.total <= max_rollouts and outcome.rollouts_used <= max_rollouts
    assert outcome.stop_reason == "budget"
    assert outcome.records[0].val_scores  # the validation reserve was kept


async def test_a_dollar_cap_also_admits_proposer_calls():
    # Defect 6: proposer calls were charged after the fact, never admitted: ten $0.01 proposals under a $0.05 cap
    # all ran. Defect 1: a budget refusal is not an outage (no ProviderUnavailableError).
    proposer = FakeProposer(cost=0.01)
    outcome, task, events = await _run(proposer=proposer, config=_config(num_candidates=11, max_cost_usd=0.05))
    assert proposer.calls < 11 and outcome.cost_usd <= 0.05 + 1e-9
    assert any("the budget is spent" in e.reasons[0] for e in events if isinstance(e, CandidateDropped))
    assert outcome.stop_reason == "budget"


async def test_trials_run_concurrently_within_max_concurrent():
    _, task, _ = await _run(config=_config(minibatch_size=2, max_concurrent=8))
    assert 2 < task.max_in_flight <= 8  # several trials' minibatches at once


async def test_the_journal_is_the_checkpoint_appended_never_rewritten(tmp_path):
    # Defect 4: the whole JSON state was rewritten and fsynced after every rollout.
    outcome, task, _ = await _run(config=_config(checkpoint_dir=str(tmp_path)))
    assert [p.name for p in tmp_path.iterdir()] == [JOURNAL_FILE]
    kinds = [line.split('"t":"')[1][:1] for line in (tmp_path / JOURNAL_FILE).read_text().splitlines()[1:]]
    assert kinds.count("r") == task.total and kinds.count("s") == len(outcome.history) + 2


async def test_resume_replays_the_run_and_pays_for_nothing_twice(tmp_path):
    task = FakeTask()
    first, _, _ = await _run(task=task, config=_config(checkpoint_dir=str(tmp_path), num_trials=5))
    calls_after_first = task.total
    second, _, events = await _run(task=task, config=_config(checkpoint_dir=str(tmp_path), num_trials=9))
    assert max(task.calls.values()) == 1  # nothing ran twice across the two processes' worth of work
    assert [h.generation for h in second.history] == list(range(9))
    assert _comparable(first)[3][:5] == _comparable(second)[3][:5]
    assert task.total > calls_after_first
    uninterrupted, _, _ = await _run(config=_config(num_trials=9))
    assert _comparable(second) == _comparable(uninterrupted)
    before = task.total  # a third run of the same config calls nothing: every answer is in the journal
    third, _, _ = await _run(task=task, config=_config(checkpoint_dir=str(tmp_path), num_trials=9))
    assert task.total == before and _comparable(third) == _comparable(second)
    assert third.usage == second.usage and third.rollouts_used == second.rollouts_used


async def test_resume_after_a_crash_ends_where_an_uninterrupted_run_ends(tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        await _run(task=FakeTask(crash_after=60), config=_config(checkpoint_dir=str(tmp_path)))
    task = FakeTask()
    resumed, _, _ = await _run(task=task, config=_config(checkpoint_dir=str(tmp_path)))
    uninterrupted, fresh, _ = await _run()
    assert _comparable(resumed) == _comparable(uninterrupted)
    assert task.total <= fresh.total - 60 + 8  # at most the calls in flight at the crash are paid again


async def test_resume_with_another_config_is_a_clear_error(tmp_path):
    await _run(config=_config(checkpoint_dir=str(tmp_path), num_trials=2))
    with pytest.raises(CheckpointError, match="different settings.*config"):
        await _run(config=_config(checkpoint_dir=str(tmp_path), num_trials=2, minibatch_size=5))


async def test_an_rdb_storage_holds_the_study(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'study.db'}"
    outcome, _, _ = await _run(config=_config(storage=url))
    study = optuna.load_study(study_name="rollouts-mipro", storage=url)
    trials = study.get_trials(deepcopy=False)
    assert sum(t.state.name == "COMPLETE" for t in trials) >= len(outcome.history)
    await _run(config=_config(storage=url))  # a second run recreates it (the journal, not the DB, resumes)
    assert len(optuna.load_study(study_name="rollouts-mipro", storage=url).trials) == len(trials)
