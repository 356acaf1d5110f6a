"""run_mipro end to end on the scripted server (real HTTP): improvement, determinism, resume, budget, a garbage
proposer, the calculator world through environment_factory, and a small Banking77 run."""

from __future__ import annotations

from rollouts_dspy.prompt_optimization.mipro import propose_instructions
from tests.conftest import make_endpoint

from .worlds import (
    ROWS,
    WEAK_INTENT,
    initial_record,
    mipro_config,
    run_world,
)


async def test_quickstart_raises_validation_clearly_and_searches_demos(server):
    result = await run_world(server, mipro_config(max_labeled_demos=12))
    initial = initial_record(result)
    assert result.best_template.score >= initial.val_mean + 0.15, (initial.val_mean, result.best_template.score)
    assert result.best_template.system != WEAK_INTENT.system
    # Demo sets were searched too, and the result carries exactly the chosen combination's demos as FewShotExamples.
    assert any(t.few_shot_examples for t in result.final_population)
    chosen = next(r for r in result.candidates if r.id == result.best_candidate_id)
    assert [d.to_dict() for d in result.best_template.few_shot_examples] == \
        [dict(d) for d in chosen.candidate.demos.get("system", ())]
    assert len(result.history) == 10 and result.method == "mipro" and result.usage["proposer"]["calls"] == 6
    assert {t.id for t in result.final_population} == {r.id for r in result.candidates}


async def test_same_seed_same_result(server):
    a = await run_world(server, mipro_config(num_trials=4, num_candidates=4))
    requests_a = server.stats().requests_by_model
    server.reset_stats()
    b = await run_world(server, mipro_config(num_trials=4, num_candidates=4))
    assert server.stats().requests_by_model == requests_a
    assert a.best_template.system == b.best_template.system
    assert a.best_template.few_shot_examples == b.best_template.few_shot_examples
    assert [(h.generation, h.mean_score, h.num_evaluated) for h in a.history] == \
           [(h.generation, h.mean_score, h.num_evaluated) for h in b.history]
    assert [(r.id, r.train_scores, r.val_scores) for r in a.candidates] == \
           [(r.id, r.train_scores, r.val_scores) for r in b.candidates]


async def test_budget_is_never_exceeded(server):
    result = await run_world(server, mipro_config(max_rollouts=200))
    task_requests = server.stats().requests_by_model.get("scripted-task", 0)
    assert result.rollouts_used <= 200 and task_requests <= 200
    assert result.stop_reason == "budget"
    assert initial_record(result).val_scores  # the validation reserve was kept


async def test_a_garbage_proposer_does_not_kill_the_run(server):
    # scripted-task answers proposal requests with one intent label: not an instruction
    result = await run_world(server, mipro_config(num_trials=4), proposer_model="scripted-task")
    assert len(result.history) == 4 and all(r.id.startswith("i0") for r in result.candidates)
    assert result.best_template.score >= initial_record(result).val_mean


async def test_propose_instructions_spec_function(server):
    out = await propose_instructions(WEAK_INTENT, ROWS[:40], make_endpoint(server, "scripted-reflect"), 4)
    assert out[0] == WEAK_INTENT.system and 2 <= len(out) <= 4
    assert all("answer:" in text for text in out[1:])  # rule-bearing instructions grounded in the labeled rows
