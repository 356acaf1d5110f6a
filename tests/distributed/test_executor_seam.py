"""The executor seam without a cluster: aliases resolved once with clear errors, validated Ray options, recipes
that rebuild the front doors' Tasks in another process with the same rollouts, and Ray never loaded unless used."""

from __future__ import annotations

import subprocess
import sys

import cloudpickle
import pytest

from rollouts_dspy import GEPAConfig, LLMSession, RunOptions, run_gepa
from rollouts_dspy.errors import ConfigError
from rollouts_dspy.executors import (
    EXECUTOR_NAMES,
    LocalExecutor,
    RayExecutor,
    TemplateTaskRecipe,
    recipe_of,
    resolve_executor,
)
from rollouts_dspy.prompt_optimization.template_task import TemplateTask
from rollouts_dspy.prompt_optimization.types import Candidate
from tests.conftest import make_endpoint

from . import helpers


def test_aliases_are_resolved_once_into_executors_and_an_unknown_one_lists_the_valid_names():
    assert isinstance(resolve_executor(None), LocalExecutor)
    assert isinstance(resolve_executor("local"), LocalExecutor)
    assert resolve_executor("ray") == RayExecutor()
    mine = RayExecutor(address="auto")
    assert resolve_executor(mine) is mine
    with pytest.raises(ConfigError, match=r"executor must be one of \['local', 'ray'\].*got 'dask'"):
        resolve_executor("dask")
    with pytest.raises(ConfigError, match="got int"):
        resolve_executor(3)
    assert EXECUTOR_NAMES == ("local", "ray")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"address": ""}, "address must be a Ray address"),
    ({"num_cpus": 0}, "num_cpus must be an integer >= 1 or None, but got 0"),
    ({"num_cpus": 2, "address": "auto"}, "num_cpus sizes a local cluster"),
    ({"cpus_per_rollout": 0}, "cpus_per_rollout must be a number > 0, but got 0"),
    ({"cpus_per_rollout": float("nan")}, "cpus_per_rollout must be a number > 0"),
    ({"max_retries": -1}, "max_retries must be an integer >= 0, but got -1"),
    ({"runtime_env": "pip"}, "runtime_env must be a mapping"),
])
def test_ray_options_are_checked_when_made(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RayExecutor(**kwargs)


def test_a_task_without_a_recipe_cannot_go_to_ray_and_the_error_says_what_it_needs():
    class Opaque:
        components = ("system",)

    with pytest.raises(ConfigError, match=r"a Opaque cannot run its rollouts in other processes: give it a recipe\(\)"):
        recipe_of(Opaque())


async def test_a_template_task_rebuilt_from_its_pickled_recipe_gives_the_same_rollouts(server, tmp_path):
    dataset = helpers.intent_dataset(12)
    task = TemplateTask(helpers.TEMPLATE, dataset, make_endpoint(server), helpers.score_intent,
                        LLMSession(max_concurrent=3, seed=5))
    recipe = recipe_of(task)
    assert isinstance(recipe, TemplateTaskRecipe) and (recipe.seed, recipe.max_concurrent) == (5, 3)
    rebuilt = cloudpickle.loads(cloudpickle.dumps(recipe)).build()
    assert isinstance(rebuilt, TemplateTask) and rebuilt.session is not task.session
    candidate = Candidate.from_template(helpers.TEMPLATE).with_instruction(
        "system", 'Classify the query.\n- If the query mentions "refund", answer: request_refund')
    for index in range(12):
        assert await rebuilt.run(candidate, index) == await task.run(candidate, index)


def test_a_dspy_program_task_rebuilt_from_its_pickled_recipe_gives_the_same_rollouts(server):
    dspy = pytest.importorskip("dspy")
    from rollouts_dspy.dspy_integration.program_task import ProgramTask, candidate_of

    lm, examples = helpers.dspy_lm(server, "scripted-task"), helpers.dspy_examples(6)
    student = dspy.Predict("query -> intent")

    def metric(gold, pred, trace=None):  # noqa: ANN001, ANN202
        return float(pred.intent.strip() == gold.intent)

    task = ProgramTask(student, examples, metric, lm)
    rebuilt = cloudpickle.loads(cloudpickle.dumps(recipe_of(task))).build()
    try:
        candidate = candidate_of(student)
        import asyncio

        async def both(i):  # noqa: ANN001, ANN202
            return await rebuilt.run(candidate, i), await task.run(candidate, i)

        for i in range(6):
            mine, theirs = asyncio.run(both(i))
            assert (mine.score, mine.output, mine.demos) == (theirs.score, theirs.output, theirs.demos)
    finally:
        task.close()


async def test_an_unknown_executor_stops_run_gepa_before_any_llm_call(server):
    config = GEPAConfig(population_size=2, generations=1, train_seeds=(0, 1), max_rollouts=10)
    with pytest.raises(ConfigError, match="RunOptions.executor must be one of"):
        await run_gepa(helpers.TEMPLATE, config, helpers.intent_dataset(4), make_endpoint(server),
                       make_endpoint(server, "scripted-reflect"), helpers.score_intent,
                       options=RunOptions(executor="dask", progress=False))
    assert server.stats().requests_total == 0


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_ray_is_imported_only_when_a_ray_executor_is_used():
    code = """
import sys
from rollouts_dspy import RolloutsGEPA, RolloutsMIPRO, run_gepa, run_mipro
from rollouts_dspy.executors import LocalExecutor, RayExecutor, resolve_executor
resolve_executor("ray"); resolve_executor("local")
RolloutsGEPA(executor="ray"); RolloutsMIPRO(executor="ray")
assert LocalExecutor().task("the task") == "the task"
print("ray" in sys.modules)
"""
    assert _python(code) == "False"


def test_without_ray_installed_the_ray_executor_says_what_to_install():
    code = """
import sys
sys.modules["ray"] = None  # as if Ray were not installed: importing it raises ImportError
from rollouts_dspy.errors import ConfigError
from rollouts_dspy.executors import RayExecutor
class T:
    components = ("system",)
    def recipe(self):
        return None
try:
    RayExecutor().task(T())
except ConfigError as exc:
    print(exc)
"""
    assert "pip install 'rollouts-dspy[ray]'" in _python(code)


def test_a_dspy_run_taken_where_it_ran_answers_per_predictor_feedback_where_it_is_imported(server):
    """What a ProgramTask run leaves behind travels (pickled) to another ProgramTask, which then gives the same
    per-predictor feedback and counts the rollout, as the one that ran it would."""
    pytest.importorskip("dspy")
    from rollouts_dspy.dspy_integration.program_task import ProgramTask, candidate_of
    from rollouts_dspy.executors import KeepsRuns

    lm, examples = helpers.dspy_lm(server, "scripted-task"), helpers.dspy_examples(4)
    student = helpers.two_step_program()
    ran_here = ProgramTask(student, examples, helpers.per_predictor_metric, lm)
    asked_here = ProgramTask(student, examples, helpers.per_predictor_metric, lm)
    assert isinstance(ran_here, KeepsRuns)
    candidate = candidate_of(student)
    import asyncio

    async def go():  # noqa: ANN202
        rollouts = [await ran_here.run(candidate, i) for i in range(4)]
        expected = {c: await ran_here.component_feedback(candidate, rollouts, c) for c in ("draft", "check")}
        for r in rollouts:
            run = cloudpickle.loads(cloudpickle.dumps(ran_here.take_run(candidate.key, r.sample_index)))
            asked_here.import_run(candidate.key, r.sample_index, r, run)
        got = {c: await asked_here.component_feedback(candidate, rollouts, c) for c in ("draft", "check")}
        return rollouts, expected, got

    try:
        rollouts, expected, got = asyncio.run(go())
    finally:
        ran_here.close()
        asked_here.close()
    assert got == expected
    assert {r.feedback for rs in got.values() for r in rs} != {r.feedback for r in rollouts}  # it is per-predictor
    assert asked_here.rollouts_run == 4 and asked_here.usage == ran_here.usage
    assert ran_here.take_run(candidate.key, 0) is None  # taken: the worker keeps nothing
