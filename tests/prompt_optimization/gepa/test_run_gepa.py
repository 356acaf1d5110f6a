"""run_gepa end to end on the scripted server (real HTTP): it learns, stays in budget, is reproducible and
resumable, survives a useless mutation model, and runs tool-using agents."""

from __future__ import annotations

import csv
import io
import json
import warnings

import pytest
from gepa_helpers import WEAK, arithmetic_score, intent_score

from rollouts_dspy import RunOptions
from rollouts_dspy.environments.calculator import CalculatorEnvironment
from rollouts_dspy.errors import DatasetError
from rollouts_dspy.prompt_optimization.evaluation import evaluate_template
from rollouts_dspy.prompt_optimization.events import CandidateDropped, StepFinished
from rollouts_dspy.prompt_optimization.gepa import GEPAConfig, run_gepa
from rollouts_dspy.prompt_optimization.types import OptimizationResult, PromptTemplate
from rollouts_dspy.runtime import JOURNAL_FILE
from rollouts_dspy.testing import (
    FaultConfig,
    IntentWorld,
    ScriptedServer,
    generate_arithmetic_problems,
    generate_intent_queries,
)
from tests.conftest import QUIET, make_endpoint

DATA = generate_intent_queries(90, seed=7)


PRICING = (0.15, 0.6)  # known prices: cost is tracked (and litellm's cost table is not consulted per call)


def config(**kw) -> GEPAConfig:
    params = dict(population_size=5, generations=3, elite_size=2, train_seeds=tuple(range(36)),
                  val_seeds=tuple(range(36, 90)), minibatch_size=6, reflection_minibatch_size=8, seed=1,
                  max_concurrent=32)
    params.update(kw)
    return GEPAConfig(**params)


@pytest.fixture
def task_endpoint(server):
    return make_endpoint(server, "scripted-task", pricing=PRICING)


@pytest.fixture
def reflect_endpoint(server):
    return make_endpoint(server, "scripted-reflect", pricing=PRICING)


def task_requests(server) -> int:
    return server.stats().requests_by_model.get("scripted-task", 0)


@pytest.mark.parametrize("split", ["train", "val"])
async def test_gepa_lifts_a_weak_prompt_clearly_on_validation(server, task_endpoint, reflect_endpoint, split):
    # "val": the reflection sees the parent's rollouts on the gating minibatch only,
    # so that minibatch gets 8 rows, as many as "train" shows the reflection.
    cfg = config(pareto_split=split) if split == "train" else config(pareto_split=split, minibatch_size=8)
    initial = await evaluate_template(WEAK, cfg.val_seeds, DATA, task_endpoint, intent_score)
    server.reset_stats()
    result = await run_gepa(WEAK, cfg, DATA, task_endpoint, reflect_endpoint, intent_score, options=QUIET)
    assert isinstance(result, OptimizationResult)
    assert result.best_template.score >= initial.score + 0.15, (initial.score, result.best_template.score)
    assert "Rules:" in result.best_template.system and result.best_template.user_template == WEAK.user_template
    assert len(result.history) == 3
    if split == "train":  # the top candidates are validated after the search
        assert result.history[-1].rollouts_used < result.rollouts_used
    else:  # every accepted child was validated during the search: nothing is left to do after it
        assert result.history[-1].rollouts_used == result.rollouts_used
        assert result.history[-1].best_score == result.best_template.score
    assert task_requests(server) == result.rollouts_used
    best = next(c for c in result.candidates if c.id == result.best_candidate_id)
    assert len(best.val_scores) == 54 and best.parents
    assert {t.id for t in result.final_population} == {c.id for c in result.candidates}
    assert result.usage["reflection"]["calls"] > 0 and result.method == "gepa"


async def test_the_budget_is_never_exceeded(server, task_endpoint, reflect_endpoint):
    result = await run_gepa(WEAK, config(max_rollouts=150), DATA, task_endpoint, reflect_endpoint, intent_score,
                            options=QUIET)
    assert result.rollouts_used <= 150 and task_requests(server) <= 150
    assert result.stop_reason == "budget"
    # The reserve for validation was kept: the best was scored on every validation sample.
    assert result.best_template.score is not None
    assert len(next(c for c in result.candidates if c.id == result.best_candidate_id).val_scores) == 54


async def test_the_dollar_budget_is_never_exceeded(task_endpoint, reflect_endpoint):
    result = await run_gepa(WEAK, config(max_cost_usd=0.001), DATA, task_endpoint, reflect_endpoint, intent_score,
                            options=QUIET)
    spent = sum(role["cost_usd"] for role in result.usage.values())
    assert 0 < spent <= 0.001 and result.stop_reason == "budget"


async def test_same_seed_same_best_prompt(task_endpoint, reflect_endpoint):
    a = await run_gepa(WEAK, config(generations=3), DATA, task_endpoint, reflect_endpoint, intent_score,
                       options=QUIET)
    b = await run_gepa(WEAK, config(generations=3), DATA, task_endpoint, reflect_endpoint, intent_score,
                       options=QUIET)
    assert a.best_template.system == b.best_template.system and a.candidates == b.candidates


async def test_a_killed_run_resumes_to_the_same_result_without_rerunning_rollouts(
    server, task_endpoint, reflect_endpoint, tmp_path
):
    full = await run_gepa(WEAK, config(), DATA, task_endpoint, reflect_endpoint, intent_score, options=QUIET)
    server.reset_stats()

    def kill_after_second_generation(event):
        if isinstance(event, StepFinished) and event.stats.generation == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await run_gepa(WEAK, config(checkpoint_dir=str(tmp_path)), DATA, task_endpoint, reflect_endpoint,
                       intent_score, options=RunOptions(reporter=kill_after_second_generation))
    killed = task_requests(server)
    assert 0 < killed < full.rollouts_used
    resumed = await run_gepa(WEAK, config(checkpoint_dir=str(tmp_path)), DATA, task_endpoint, reflect_endpoint,
                             intent_score, options=QUIET)
    # Nothing that finished ran twice: only the calls in flight at the kill were sent again (at most
    # max_concurrent), and the resumed run counts every call the provider was sent.
    resent = task_requests(server) - full.rollouts_used
    assert 0 <= resent <= 32 and resumed.rollouts_used >= task_requests(server)
    assert resumed.best_template.system == full.best_template.system and resumed.candidates == full.candidates
    journal = (tmp_path / JOURNAL_FILE).read_text()
    assert "sk-test" not in journal and "api_key" not in journal


@pytest.mark.parametrize("useless", ["label", "empty"])
async def test_a_useless_mutation_model_leaves_the_run_intact(server, task_endpoint, useless):
    events = []
    if useless == "label":  # the task model answers a bare label: garbage as an instruction
        result = await run_gepa(WEAK, config(generations=2), DATA, task_endpoint, task_endpoint, intent_score,
                                options=RunOptions(reporter=events.append))
    else:  # a reflection server that always answers nothing
        with ScriptedServer(faults=FaultConfig(rate=1.0, kinds=("empty",))) as silent:
            mute = make_endpoint(silent, "scripted-reflect", max_retries=1)
            result = await run_gepa(WEAK, config(generations=2), DATA, task_endpoint, mute, intent_score,
                                    options=RunOptions(reporter=events.append))
    assert result.best_template.system == WEAK.system and len(result.candidates) == 1
    assert result.stop_reason == "generations" and len(result.history) == 2
    assert any(isinstance(e, CandidateDropped) for e in events)


async def test_tool_using_agents_run_through_environment_factory(server, task_endpoint, reflect_endpoint):
    problems = generate_arithmetic_problems(30, seed=3)
    template = PromptTemplate("Solve the arithmetic problem.", "{problem}")
    cfg = GEPAConfig(population_size=4, generations=2, elite_size=1, train_seeds=tuple(range(12)),
                     val_seeds=tuple(range(12, 30)), reflection_minibatch_size=3)
    result = await run_gepa(template, cfg, problems, task_endpoint, reflect_endpoint, arithmetic_score,
                            lambda row: CalculatorEnvironment(), options=QUIET)
    initial = next(c for c in result.candidates if c.origin == "initial")
    assert result.best_template.score > initial.train_mean
    assert "calculator" in result.best_template.system.lower()


async def test_banking77_small(banking77_dir):
    labels = tuple(json.loads((banking77_dir / "categories.json").read_text()))
    rows = list(csv.DictReader(io.StringIO((banking77_dir / "train.csv").read_text())))
    by_label: dict[str, list[dict]] = {}
    for row in rows:
        by_label.setdefault(row["category"], []).append({"query": row["text"], "intent": row["category"]})
    chosen = labels[:8]  # 8 intents, 10 queries each: small enough for the suite
    data = [by_label[label][k] for k in range(10) for label in chosen]
    template = PromptTemplate("Classify the query.", "Query: {query}\nIntents: " + ", ".join(chosen))
    cfg = GEPAConfig(population_size=6, generations=4, elite_size=2, train_seeds=tuple(range(40)),
                     val_seeds=tuple(range(40, 80)), minibatch_size=8, reflection_minibatch_size=4, seed=1)
    with ScriptedServer(intent_world=IntentWorld(labels=labels)) as world:
        task, reflect = make_endpoint(world, "scripted-task"), make_endpoint(world, "scripted-reflect")
        initial = await evaluate_template(template, cfg.val_seeds, data, task, intent_score)
        result = await run_gepa(template, cfg, data, task, reflect, intent_score, options=QUIET)
    assert result.best_template.score > initial.score, (initial.score, result.best_template.score)


async def test_bad_inputs_fail_before_any_llm_call(server, task_endpoint, reflect_endpoint):
    with pytest.raises(DatasetError, match="val_seeds contains 500"):
        await run_gepa(WEAK, config(val_seeds=(500,)), DATA, task_endpoint, reflect_endpoint, intent_score)
    with pytest.raises(DatasetError, match="train_seeds"):
        await run_gepa(WEAK, config(train_seeds=(0, 95)), DATA, task_endpoint, reflect_endpoint, intent_score)
    assert server.stats().requests_total == 0


async def test_overlap_warns_and_progress_prints_one_line_per_generation(task_endpoint, reflect_endpoint, capsys):
    cfg = config(generations=2, train_seeds=tuple(range(20)), val_seeds=tuple(range(15, 30)))
    with pytest.warns(UserWarning, match="share 5 indices") as caught:
        await run_gepa(WEAK, cfg, DATA, task_endpoint, reflect_endpoint, intent_score)
    assert caught[0].filename == __file__  # the warning points at the caller's line, not into asyncio
    lines = [line for line in capsys.readouterr().err.splitlines() if "] generation " in line]
    assert len(lines) == 2 and "rollouts" in lines[0] and "tokens" in lines[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        await run_gepa(WEAK, cfg, DATA, task_endpoint, reflect_endpoint, intent_score, options=QUIET)
    assert capsys.readouterr().err == ""


async def test_a_checkpoint_resumes_on_the_same_model_at_another_address(task_endpoint, reflect_endpoint, tmp_path):
    cfg = config(generations=1, checkpoint_dir=str(tmp_path))
    await run_gepa(WEAK, cfg, DATA, task_endpoint, reflect_endpoint, intent_score, options=QUIET)
    with ScriptedServer() as moved:  # the same scripted model behind a new port: not "other settings"
        task, reflect = make_endpoint(moved, "scripted-task"), make_endpoint(moved, "scripted-reflect")
        result = await run_gepa(WEAK, cfg, DATA, task, reflect, intent_score, options=QUIET)
        assert moved.stats().requests_by_model.get("scripted-task", 0) == 0
    assert len(result.history) == 1
