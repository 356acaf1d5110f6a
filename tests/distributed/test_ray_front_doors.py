"""Both front doors with executor=Ray on the real cluster give the local run's result: run_mipro (templates,
litellm on the workers) and RolloutsGEPA (a DSPy program and metric on the workers)."""

from __future__ import annotations

import dataclasses

import pytest

from rollouts_dspy import MIPROConfig, run_mipro
from rollouts_dspy.executors import RayExecutor
from tests.conftest import make_endpoint

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
    local = await run_mipro(*args, progress=False)
    local_requests = server.stats().requests_by_model
    server.reset_stats()
    distributed = await run_mipro(*args, progress=False, executor=RayExecutor(address=ray_cluster.address))
    assert server.stats().requests_by_model == local_requests
    assert _decisions(distributed) == _decisions(local)
    assert distributed.rollouts_used <= config.max_rollouts


def test_rollouts_gepa_on_ray_compiles_the_program_a_local_compile_does(ray_cluster, server):
    dspy = pytest.importorskip("dspy")
    from rollouts_dspy import RolloutsGEPA

    task_lm = dspy.LM("openai/scripted-task", api_base=server.base_url, api_key="scripted", cache=False,
                      num_retries=1)
    reflect_lm = dspy.LM("openai/scripted-reflect", api_base=server.base_url, api_key="scripted", cache=False,
                         num_retries=1)
    examples = [dspy.Example(query=r["query"], intent=r["intent"]).with_inputs("query")
                for r in helpers.intent_dataset(20)]

    def compile_with(executor):  # noqa: ANN001, ANN202
        optimizer = RolloutsGEPA(metric=helpers.dspy_feedback_metric, reflection_lm=reflect_lm, max_metric_calls=60,
                                 num_threads=4, executor=executor)
        with dspy.context(lm=task_lm):
            return optimizer.compile(dspy.Predict("query -> intent"), trainset=examples[:10], valset=examples[10:])

    local = compile_with("local")
    local_requests = server.stats().requests_by_model
    server.reset_stats()
    distributed = compile_with(RayExecutor(address=ray_cluster.address))
    assert server.stats().requests_by_model == local_requests
    assert distributed.search_outcome.records == local.search_outcome.records
    assert distributed.search_outcome.best_id == local.search_outcome.best_id
    assert distributed.signature.instructions == local.signature.instructions
    assert distributed.detailed_results.val_aggregate_scores == local.detailed_results.val_aggregate_scores
    # The usage the DSPy bridge reports counts the rollouts that came back from the workers.
    assert distributed.optimization_result.usage["task"]["rollouts"] == local.optimization_result.usage["task"][
        "rollouts"] > 0
