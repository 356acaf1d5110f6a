"""The engine through its async shell, on in-process fakes of the Task and LanguageModel seams."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import pytest
from gepa_helpers import FakeReflection, FakeTask

from rollouts_dspy.errors import CheckpointError, ConfigError
from rollouts_dspy.prompt_optimization.events import CandidateDropped, RunFinished, RunStarted, StepFinished
from rollouts_dspy.prompt_optimization.gepa import GEPAConfig, optimize_gepa
from rollouts_dspy.prompt_optimization.types import Candidate
from rollouts_dspy.runtime import JOURNAL_FILE, ProviderUnavailableError

INITIAL = Candidate({"system": "Answer the question well."})


def config(**kw) -> GEPAConfig:
    params = dict(population_size=5, generations=4, elite_size=2, mutation_rate=0.5, crossover_rate=0.5,
                  train_seeds=tuple(range(12)), val_seeds=tuple(range(12, 24)), reflection_minibatch_size=3)
    params.update(kw)
    return GEPAConfig(**params)


async def test_reflection_plumbing_improves_the_fake_task_and_keeps_lineage():
    """Plumbing, not search quality: FakeReflection writes exactly the word FakeTask rewards, so the rising score
    shows that failures' feedback reaches the reflection request and its answer reaches the next candidates."""
    task, model = FakeTask(), FakeReflection()
    events = []
    out = await optimize_gepa(task, model, INITIAL, config(), reporter=events.append)
    initial, best = out.records[0], out.record(out.best_id)
    assert initial.origin == "initial" and initial.train_mean == 0.0
    assert best.val_mean > 0.3 and best.train_mean > initial.train_mean
    assert len(out.history) == 4 and [h.generation for h in out.history] == [0, 1, 2, 3]
    ids = {r.id for r in out.records}
    for r in out.records[1:]:
        assert r.parents and set(r.parents) <= ids and r.origin != "initial"
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert sum(isinstance(e, StepFinished) for e in events) == 4


async def test_no_prompt_is_ever_evaluated_twice_on_a_sample():
    task = FakeTask()
    out = await optimize_gepa(task, FakeReflection(), INITIAL, config(generations=5))
    counts = Counter(task.runs)
    assert counts and max(counts.values()) == 1
    assert len({r.candidate.key for r in out.records}) == len(out.records)
    assert out.rollouts_used == len(task.runs)


def test_a_budget_that_cannot_pay_for_one_step_is_refused_before_any_call():
    with pytest.raises(ConfigError, match=r"max_rollouts=7 cannot pay for one improvement step.*at least 32"):
        config(max_rollouts=7, minibatch_size=4, pareto_size=12)


@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("limit", [40, 61, 100])
async def test_the_rollout_budget_is_never_exceeded(limit, split):
    task = FakeTask()
    out = await optimize_gepa(task, FakeReflection(), INITIAL,
                              config(max_rollouts=limit, minibatch_size=4, pareto_split=split))
    assert len(task.runs) <= limit and out.rollouts_used <= limit
    assert out.stop_reason == "budget"  # unbounded, this run makes 150-220 rollouts
    # Whatever the budget left, the winner is the best on validation among the candidates validated on every
    # validation row; without one, the best training mean; without any score, the initial candidate.
    best = out.record(out.best_id)
    complete = [r for r in out.records if len(r.val_scores) == 12]
    compared = [r for r in out.records
                if set(out.compared_on) <= set(r.val_scores if out.compared_split == "val" else r.train_scores)]

    def mean_on(r):
        scores = r.val_scores if out.compared_split == "val" else r.train_scores
        return sum(scores[i] for i in out.compared_on) / len(out.compared_on)

    if complete:
        assert best.val_mean == max(r.val_mean for r in complete)
    elif compared:
        assert mean_on(best) == max(mean_on(r) for r in compared)
    else:
        assert best is out.records[0]
    if limit >= 61:
        # Room was kept back for validating the top candidates on every validation sample.
        assert len(out.record(out.best_id).val_scores) == 12


async def test_a_generation_runs_its_calls_together_within_max_concurrent():
    task, model = FakeTask(delay=0.01), FakeReflection(delay=0.01)
    await optimize_gepa(task, model, INITIAL, config(max_concurrent=6, population_size=6, elite_size=1))
    assert 1 < task.max_in_flight <= 6
    assert 1 < model.max_in_flight <= 6


async def test_failed_rollouts_are_not_scores_and_an_all_failed_candidate_is_never_best():
    task = FakeTask(fail=frozenset(range(0, 24, 2)))
    out = await optimize_gepa(task, FakeReflection(), INITIAL, config())
    for r in out.records:
        assert not set(r.train_scores) & set(range(0, 24, 2))
    assert out.records[0].failures >= 6
    everything_fails = FakeTask(fail=frozenset(range(24)))
    out = await optimize_gepa(everything_fails, FakeReflection(), INITIAL, config(generations=2))
    assert out.record(out.best_id).train_mean is None and out.best_id == out.records[0].id


async def test_a_provider_outage_stops_the_run_with_a_resumable_checkpoint(tmp_path):
    down = FakeTask(fail=frozenset(range(24)), fail_kind="llm")
    with pytest.raises(ProviderUnavailableError, match=r"failed \d+ rollouts in a row"):
        await optimize_gepa(down, FakeReflection(), INITIAL, config(checkpoint_dir=str(tmp_path)))
    assert (tmp_path / JOURNAL_FILE).exists()
    back = FakeTask()
    out = await optimize_gepa(back, FakeReflection(), INITIAL, config(checkpoint_dir=str(tmp_path)))
    assert out.stop_reason in ("generations", "perfect_score") and out.record(out.best_id).train_mean > 0


async def test_garbage_or_empty_reflection_answers_leave_the_run_intact():
    events = []
    model = FakeReflection(answers=["", "???", "```\nok\n```", "I'm sorry, I cannot help with that request."])
    out = await optimize_gepa(FakeTask(), model, INITIAL, config(max_stale_generations=None), reporter=events.append)
    assert [r.id for r in out.records] == [out.best_id] and out.stop_reason == "generations"
    dropped = [e for e in events if isinstance(e, CandidateDropped)]
    assert len(dropped) == 12 and all("empty answer" in " ".join(e.reasons) or "garbage" in " ".join(e.reasons)
                                      for e in dropped)
    # Every child tried mutation_attempts times (identical requests share one answer).
    assert 3 * 4 < len(model.calls) <= 4 * 3 + 3 * 3 * 3


async def test_a_run_whose_reflections_never_yield_a_child_stops_as_stalled():
    model = FakeReflection(answers=["", "???"])
    out = await optimize_gepa(FakeTask(), model, INITIAL, config(generations=1000, max_stale_generations=2))
    # Two generations in a row made no child; the third generation's steps were already in flight and finish.
    assert out.stop_reason == "stalled" and len(out.history) == 3
    calls = len(model.calls)
    model = FakeReflection(answers=["", "???"])
    out = await optimize_gepa(FakeTask(), model, INITIAL,
                              config(generations=1000, max_stale_generations=None, max_reflection_calls=20))
    assert out.stop_reason == "reflection_calls" and calls <= len(model.calls) < 20 + 3 * 4


async def test_a_one_component_task_is_not_told_about_steps():
    model = FakeReflection()
    await optimize_gepa(FakeTask(components=("predict",)), model, Candidate({"predict": "Answer well."}),
                        config(generations=1))
    assert model.calls and not any("step called" in c[0].content for c in model.calls)
    two = FakeReflection()
    await optimize_gepa(FakeTask(components=("a", "b")), two, Candidate({"a": "One.", "b": "Two."}),
                        config(generations=1))
    assert any('the step called "b"' in c[0].content for c in two.calls)


async def test_each_component_of_a_multi_component_candidate_gets_mutated():
    task = FakeTask(components=("first", "second"))
    initial = Candidate({"first": "Step one.", "second": "Step two."})
    out = await optimize_gepa(task, FakeReflection(), initial, config())
    changed = Counter(name for r in out.records[1:] for name in ("first", "second")
                      if r.candidate.instructions[name] != initial.instructions[name])
    assert changed["first"] and changed["second"]


async def test_val_split_plumbing_scores_children_on_validation_only_and_reflects_on_training_rollouts():
    """Plumbing: the validation gain comes from FakeReflection writing the word FakeTask rewards; what this pins is
    where each candidate is scored and which rows the reflection is shown."""
    task, model = FakeTask(), FakeReflection()
    cfg = config(train_seeds=tuple(range(24)), val_seeds=tuple(range(24, 36)), minibatch_size=4,
                 generations=5, pareto_split="val")
    out = await optimize_gepa(task, model, INITIAL, cfg)
    initial, best = out.records[0], out.record(out.best_id)
    assert best.val_mean > initial.val_mean and len(best.val_scores) == 12
    # No candidate ever ran on all of train_seeds: only on the gating minibatches.
    assert all(len(r.train_scores) < 24 for r in out.records)
    # Every child that passed gating has a complete validation score; the others none.
    for r in out.records:
        assert len(r.val_scores) in (0, 12)
    # The best is the best validated candidate; the history's best is on validation too.
    assert best.val_mean == max(r.val_mean for r in out.records if r.val_scores)
    assert out.history[-1].best_score == best.val_mean
    # The reflection was shown training rollouts only, never a validation row.
    shown = {int(q) for call in model.calls for q in re.findall(r"\bq(\d+)\b", call[0].content)}
    assert shown and shown <= set(range(24))
    # No validation phase after the search: the last generation's count is the run's.
    assert out.history[-1].rollouts_used == out.rollouts_used


async def test_train_split_validates_the_top_candidates_after_the_search():
    out = await optimize_gepa(FakeTask(), FakeReflection(), INITIAL, config(minibatch_size=4))  # the default split
    validated = [r for r in out.records if r.val_scores]
    # The top val_candidates (3) by Pareto mean, and the start: the result is never worse on validation than it.
    assert 2 <= len(validated) <= 4 and out.records[0] in validated
    assert out.record(out.best_id).val_mean >= out.records[0].val_mean
    assert out.history[-1].rollouts_used < out.rollouts_used
    assert any(len(r.train_scores) == 12 for r in out.records[1:])


async def test_minibatch_gating_spends_pareto_evaluations_only_on_improvers():
    # A reflection that never names a needed word: no child beats its parent on its minibatch.
    # (pareto_split "val": a Pareto-set evaluation shows as validation scores.)
    useless = FakeReflection(answers=["```\nAnswer the question well. Also mind details.\n```",
                                      "```\nAnswer the question well, carefully.\n```"])
    cfg = config(minibatch_size=3, train_seeds=tuple(range(24)), val_seeds=tuple(range(24, 36)), pareto_split="val")
    out = await optimize_gepa(FakeTask(), useless, INITIAL, cfg)
    children = out.records[1:]
    assert children and all(r.train_scores and not r.val_scores for r in children)
    helpful = await optimize_gepa(FakeTask(), FakeReflection(), INITIAL, cfg)
    assert any(len(r.val_scores) == 12 for r in helpful.records[1:])


async def test_the_search_stops_early_on_a_perfect_training_score():
    out = await optimize_gepa(FakeTask(words=1), FakeReflection(), INITIAL, config(generations=10))
    assert out.stop_reason == "perfect_score" and len(out.history) < 10
    assert out.record(out.best_id).train_mean == 1.0


@pytest.mark.parametrize("split", ["train", "val"])
async def test_same_seed_same_answers_same_result(split):
    a = await optimize_gepa(FakeTask(), FakeReflection(), INITIAL, config(seed=3, minibatch_size=4, pareto_split=split))
    b = await optimize_gepa(FakeTask(delay=0.003), FakeReflection(delay=0.002), INITIAL,
                            config(seed=3, minibatch_size=4, pareto_split=split))
    assert a.records == b.records and a.best_id == b.best_id and a.rollouts_used == b.rollouts_used


@pytest.mark.parametrize("split", ["train", "val"])
async def test_an_interrupted_run_resumes_without_rerunning_finished_rollouts(tmp_path, split):
    full = await optimize_gepa(FakeTask(), FakeReflection(), INITIAL, config(seed=5, pareto_split=split))

    class Stop(Exception):
        pass

    def stop_after_two(event):
        if isinstance(event, StepFinished) and event.stats.generation == 1:
            raise Stop

    first_task = FakeTask()
    with pytest.raises(Stop):
        await optimize_gepa(first_task, FakeReflection(), INITIAL,
                            config(seed=5, checkpoint_dir=str(tmp_path), pareto_split=split), reporter=stop_after_two)
    second_task = FakeTask()
    resumed = await optimize_gepa(second_task, FakeReflection(), INITIAL,
                                  config(seed=5, checkpoint_dir=str(tmp_path), pareto_split=split))
    # Nothing finished is paid twice; the rollouts in flight at the interruption were sent, so they count.
    assert not set(first_task.finished) & set(second_task.runs)
    lost = len(first_task.runs) - len(first_task.finished)
    assert resumed.records == full.records and resumed.best_id == full.best_id
    assert resumed.rollouts_used == full.rollouts_used + lost
    assert [h.best_score for h in resumed.history] == [h.best_score for h in full.history]


async def test_a_run_cancelled_mid_generation_keeps_its_finished_rollouts(tmp_path):
    full = await optimize_gepa(FakeTask(), FakeReflection(), INITIAL, config(seed=2))
    first = FakeTask()
    run = asyncio.ensure_future(
        optimize_gepa(first, FakeReflection(), INITIAL, config(seed=2, checkpoint_dir=str(tmp_path))))
    while len(first.finished) < 42:  # what Ctrl-C does to asyncio.run: cancel the run in the middle of gen 1
        await asyncio.sleep(0.001)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    second = FakeTask()
    resumed = await optimize_gepa(second, FakeReflection(), INITIAL, config(seed=2, checkpoint_dir=str(tmp_path)))
    assert len(first.finished) > 42 - 1 and not set(first.finished) & set(second.runs)
    assert resumed.records == full.records and resumed.best_id == full.best_id
    assert resumed.rollouts_used == full.rollouts_used + len(first.runs) - len(first.finished)


async def test_resuming_with_other_settings_is_a_clear_error(tmp_path):
    await optimize_gepa(FakeTask(), FakeReflection(), INITIAL, config(generations=1, checkpoint_dir=str(tmp_path)))
    with pytest.raises(CheckpointError, match="seed"):
        await optimize_gepa(FakeTask(), FakeReflection(), INITIAL,
                            config(generations=1, seed=9, checkpoint_dir=str(tmp_path)))
    # More generations is not "other settings": the run continues where it stopped.
    task = FakeTask()
    more = await optimize_gepa(task, FakeReflection(), INITIAL, config(generations=2, checkpoint_dir=str(tmp_path)))
    assert len(more.history) == 2 and (INITIAL.key, 0) not in task.runs


async def test_a_training_holdout_validates_the_best_and_the_start():
    task = FakeTask()
    cfg = GEPAConfig(train_seeds=tuple(range(120)), max_rollouts=600, reflection_minibatch_size=3, seed=4,
                     holdout_size=24)
    assert cfg.pareto_size > 0
    out = await optimize_gepa(task, FakeReflection(), INITIAL, cfg)
    held = set(out.records[0].val_scores)
    assert len(held) == 24 and not held & set(out.compared_on)
    # The holdout is never shown to a reflection nor used to compare candidates during the search: only the
    # validated candidates (the top ones and the start) ever ran on it.
    validated = [r for r in out.records if r.val_scores]
    assert out.records[0] in validated and 2 <= len(validated) <= 4
    ran_on_holdout = {key for key, i in task.runs if i in held}
    assert ran_on_holdout == {r.candidate.key for r in validated}
    assert out.record(out.best_id).val_mean >= out.records[0].val_mean
    assert GEPAConfig(train_seeds=tuple(range(120))).holdout_size == 0  # opt-in
