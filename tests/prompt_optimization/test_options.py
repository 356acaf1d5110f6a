"""The slim public signatures: RunOptions (reporter, progress, executor), SharedEvaluation (one session and one
rollout cache across evaluations), MIPROConfig as the settings of the MIPRO step functions, and the old keywords
still working for one release with a DeprecationWarning, the same result, and a clear error beside the new one."""

from __future__ import annotations

import inspect

import pytest

from rollouts_dspy import (
    GEPAConfig,
    MIPROConfig,
    RunOptions,
    bootstrap_demos,
    evaluate_detailed,
    propose_instructions,
    run_gepa,
    run_mipro,
)
from rollouts_dspy.errors import ConfigError
from rollouts_dspy.executors import LocalExecutor
from rollouts_dspy.prompt_optimization.events import RunFinished
from rollouts_dspy.testing import generate_intent_queries
from tests.conftest import QUIET, make_endpoint
from tests.prompt_optimization.mipro.worlds import ROWS, WEAK_INTENT, exact_label

DATA = generate_intent_queries(40, seed=7)
DEPRECATED = pytest.warns(DeprecationWarning, match="is deprecated and will be removed in 0.3")


def small_gepa() -> GEPAConfig:
    return GEPAConfig(population_size=3, generations=1, elite_size=1, train_seeds=tuple(range(16)),
                      val_seeds=tuple(range(16, 28)), minibatch_size=4, reflection_minibatch_size=4, seed=2,
                      max_concurrent=8)


def test_run_options_are_checked_when_built_and_the_executor_is_resolved_once():
    assert isinstance(RunOptions().executor, LocalExecutor) and RunOptions().progress is True
    with pytest.raises(ConfigError, match="RunOptions.reporter must be a callable"):
        RunOptions(reporter="stderr")
    with pytest.raises(ConfigError, match="RunOptions.progress must be True or False"):
        RunOptions(progress="no")
    with pytest.raises(ConfigError, match=r"RunOptions.executor must be one of \['local', 'ray'\]"):
        RunOptions(executor="dask")


def test_the_signatures_show_only_the_current_parameters():
    assert list(inspect.signature(run_gepa).parameters)[-2:] == ["environment_factory", "options"]
    assert list(inspect.signature(run_mipro).parameters)[-2:] == ["environment_factory", "options"]
    assert "shared" in inspect.signature(evaluate_detailed).parameters
    assert list(inspect.signature(bootstrap_demos).parameters)[-2:] == ["environment_factory", "config"]
    assert list(inspect.signature(propose_instructions).parameters)[-2:] == ["seeds", "config"]
    assert inspect.iscoroutinefunction(run_gepa) and inspect.iscoroutinefunction(evaluate_detailed)


async def test_run_gepa_old_keywords_warn_and_give_the_same_run(server):
    task, reflect = make_endpoint(server), make_endpoint(server, "scripted-reflect")
    events = []
    current = await run_gepa(WEAK_INTENT, small_gepa(), DATA, task, reflect, exact_label,
                             options=RunOptions(reporter=events.append))
    with DEPRECATED:
        old_events = []
        old = await run_gepa(WEAK_INTENT, small_gepa(), DATA, task, reflect, exact_label, reporter=old_events.append,
                             progress=False)
    assert old.candidates == current.candidates and old.best_template == current.best_template
    assert isinstance(old_events[-1], RunFinished) and len(old_events) == len(events)


async def test_an_old_keyword_beside_options_is_refused_before_any_llm_call(server):
    task, proposer = make_endpoint(server), make_endpoint(server, "scripted-reflect")
    config = MIPROConfig(train_seeds=tuple(range(16)), num_candidates=3, num_trials=2)
    with pytest.raises(ConfigError, match="pass progress inside options=, not beside it"):
        await run_mipro(WEAK_INTENT, config, DATA, task, proposer, exact_label, options=QUIET, progress=False)
    assert server.stats().requests_total == 0


async def test_evaluate_detailed_old_session_and_cache_keywords_still_share(server):
    task = make_endpoint(server)
    cache: dict = {}
    with DEPRECATED:
        await evaluate_detailed(WEAK_INTENT, [0, 1, 2], ROWS, task, exact_label, cache=cache)
    with DEPRECATED:
        again = await evaluate_detailed(WEAK_INTENT, [1, 2, 3], ROWS, task, exact_label, cache=cache)
    assert server.stats().requests_total == 4 and len(again.rollouts) == 3  # rows 1 and 2 came from the cache


async def test_bootstrap_demos_reads_its_settings_from_the_config_and_the_old_keywords_fold_into_it(server):
    task = make_endpoint(server)
    strict = MIPROConfig(train_seeds=tuple(range(12)), bootstrap_threshold=2.0, max_concurrent=4)
    assert await bootstrap_demos(WEAK_INTENT, ROWS, range(12), task, exact_label, 3, config=strict) == []
    lenient = await bootstrap_demos(WEAK_INTENT, ROWS, range(12), task, exact_label, 3,
                                    config=MIPROConfig(train_seeds=tuple(range(12)), bootstrap_threshold=0.0))
    assert len(lenient) == 3
    with DEPRECATED:
        old = await bootstrap_demos(WEAK_INTENT, ROWS, range(12), task, exact_label, 3, threshold=0.0,
                                    max_concurrent=4)
    assert old == lenient
    with pytest.raises(ConfigError, match="config must be a MIPROConfig"):
        await bootstrap_demos(WEAK_INTENT, ROWS, range(12), task, exact_label, 3, config=small_gepa())


async def test_propose_instructions_follows_the_configs_awareness_flags(server):
    proposer = make_endpoint(server, "scripted-reflect")
    with_summary = await propose_instructions(WEAK_INTENT, ROWS[:40], proposer, 4)
    assert server.stats().requests_total == 4 and len(with_summary) >= 2  # a dataset summary, then 3 proposals
    server.reset_stats()
    blind = MIPROConfig(train_seeds=tuple(range(40)), data_aware=False)
    await propose_instructions(WEAK_INTENT, ROWS[:40], proposer, 4, config=blind)
    assert server.stats().requests_total == 3  # no summary asked for
    server.reset_stats()
    with DEPRECATED:
        old = await propose_instructions(WEAK_INTENT, ROWS[:40], proposer, 4, seed=0, per_prompt=40)
    assert old == with_summary
