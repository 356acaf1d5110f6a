"""Both front doors with executor=Ray on the real cluster give the local run's result: run_mipro (templates,
litellm on the workers) and RolloutsGEPA (a DSPy program and metric on the workers)."""

from __future__ import annotations

import dataclasses

import pytest

from rollouts_dspy import MIPROConfig, RunOptions, run_mipro
from rollouts_dspy.executors import RayExecutor
from tests.conftest import QUIET, make_endpoint

from . import helpers

pytestmark = pytest.mark.distributed


def _decisions(result):  # noqa: ANN001, ANN202
    return (result.best_template, result.candidates, result.stop_reason, result.rollouts_used,
            [dataclasses.replace(h, elapsed_seconds=0.0) for h in result.history])


async def test_run_mipro_on_ray_makes_the_local_run_s_decisions(ray_cluster, server):
    config = MIPROConfig(num_candidates=3, num_trials=6, minibatch_size=6, max_bootstrapped_demos=2,
                         max_labeled_demos=2, num_demo_sets=2, train_seeds=tuple(range(16)),
                         val_seeds=tuple(range(16, 28)), max_rollouts=160, max_concurrent=4, seed=2)
    args = (helpers.TEMPLATE, config, helpers.intent_dataset(28), make_endpoint(server),
            make_endpoint(server, "scripted-reflect"), helpers.score_intent)
    local = await run_mipro(*args, options=QUIET)
    local_requests = server.stats().requests_by_model
    server.reset_stats()
    distributed = await run_mipro(*args, options=RunOptions(progress=False,
                                                        executor=RayExecutor(address=ray_cluster.address)))
    assert server.stats().requests_by_model == local_requests
    assert _decisions(distributed) == _decisions(local)
    assert distributed.rollouts_used <= config.max_rollouts


def test_rollouts_gepa_on_ray_compiles_the_program_a_local_compile_does(ray_cluster, server):
    """A two-predictor program whose metric's per-predictor feedback reads the run's trace: the traces come back
    from the workers, so reflection sees what it sees locally; so do the kept best outputs and the usage."""
    dspy = pytest.importorskip("dspy")
    from rollouts_dspy import RolloutsGEPA

    task_lm, reflect_lm = helpers.dspy_lm(server, "scripted-task"), helpers.dspy_lm(server, "scripted-reflect")
    examples = helpers.dspy_examples(20)
    reflections = []

    def compile_with(executor):  # noqa: ANN001, ANN202
        optimizer = RolloutsGEPA(metric=helpers.per_predictor_metric, reflection_lm=reflect_lm,
                                 max_metric_calls=80, num_threads=4, track_stats=True, track_best_outputs=True,
                                 executor=executor)
        with dspy.context(lm=task_lm):
            program = optimizer.compile(helpers.two_step_program(), trainset=examples[:10], valset=examples[10:])
        reflections.append([str(m["prompt"] or m["messages"]) for m in reflect_lm.history])  # what it was shown
        reflect_lm.history.clear()
        return program

    local = compile_with("local")
    local_requests = server.stats().requests_by_model
    server.reset_stats()
    distributed = compile_with(RayExecutor(address=ray_cluster.address))
    assert server.stats().requests_by_model == local_requests
    assert any("draft said" in text for text in reflections[0]), "no per-predictor feedback reached reflection"
    # The same reflection prompts (several steps reflect at once, so in whatever order their calls finish).
    assert sorted(reflections[1]) == sorted(reflections[0])
    assert distributed.search_outcome.records == local.search_outcome.records
    assert distributed.search_outcome.best_id == local.search_outcome.best_id
    assert [p.signature.instructions for _, p in distributed.named_predictors()] == [
        p.signature.instructions for _, p in local.named_predictors()]
    ours, theirs = distributed.detailed_results, local.detailed_results
    assert ours.val_aggregate_scores == theirs.val_aggregate_scores
    assert str(ours.best_outputs_valset) == str(theirs.best_outputs_valset) and theirs.best_outputs_valset
    assert distributed.optimization_result is None  # two predictors: the record is search_outcome


def test_rollouts_mipro_on_ray_compiles_the_program_a_local_compile_does(ray_cluster, server):
    """MIPRO's two tasks (bootstrapping demos with the metric's trace form, and the search) both on the workers."""
    dspy = pytest.importorskip("dspy")
    from rollouts_dspy import RolloutsMIPRO

    task_lm, prompt_lm = helpers.dspy_lm(server, "scripted-task"), helpers.dspy_lm(server, "scripted-reflect")
    examples = helpers.dspy_examples(24)

    def compile_with(executor):  # noqa: ANN001, ANN202
        optimizer = RolloutsMIPRO(metric=helpers.per_predictor_metric, prompt_model=prompt_lm, auto=None,
                                  num_candidates=3, num_threads=4, max_rollouts=150, executor=executor)
        with dspy.context(lm=task_lm):
            program = optimizer.compile(dspy.Predict("query -> intent"), trainset=examples[:12],
                                        valset=examples[12:], num_trials=4, minibatch_size=6)
        return program, optimizer.total_calls

    (local, local_calls) = compile_with("local")
    local_requests = server.stats().requests_by_model
    server.reset_stats()
    (distributed, calls) = compile_with(RayExecutor(address=ray_cluster.address))
    assert server.stats().requests_by_model == local_requests
    assert distributed.search_outcome.records == local.search_outcome.records
    assert distributed.signature.instructions == local.signature.instructions
    assert [dict(d) for d in distributed.demos] == [dict(d) for d in local.demos]
    assert any(r.candidate.demos for r in distributed.search_outcome.records)  # demos bootstrapped on workers
    assert calls == local_calls > 0


async def test_retries_made_on_the_workers_are_in_the_runs_usage_table(ray_cluster):
    """Every fault the provider answered a task call with was retried or failed for good -- on a Ray worker --
    and the result's usage table counts each one, as a local run's does (it used to say 0 retries on Ray)."""
    from rollouts_dspy.testing import FaultConfig, ScriptedServer

    config = MIPROConfig(num_candidates=3, num_trials=4, minibatch_size=6, max_bootstrapped_demos=2,
                         max_labeled_demos=2, num_demo_sets=2, train_seeds=tuple(range(16)),
                         val_seeds=tuple(range(16, 28)), max_rollouts=120, max_concurrent=4, seed=2)
    faults = FaultConfig(rate=0.15, kinds=("500",), models=("scripted-task",), seed=4)
    with ScriptedServer(faults=faults) as flaky:
        result = await run_mipro(helpers.TEMPLATE, config, helpers.intent_dataset(28),
                                 make_endpoint(flaky, max_retries=3), make_endpoint(flaky, "scripted-reflect"),
                                 helpers.score_intent,
                                 options=RunOptions(progress=False, executor=RayExecutor(address=ray_cluster.address)))
        injected = sum(flaky.stats().faults_injected.values())
    task = result.usage["task"]
    assert injected > 5 and task["retries"] + task["failures"] == injected, (injected, task)
