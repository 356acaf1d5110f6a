"""The hard budget holds under concurrency, retries and faults: `max_rollouts` task rollouts and `max_cost_usd`
dollars (task, reflection and proposer calls together) are never exceeded."""

from __future__ import annotations

import pytest
from reliability_helpers import config_for, run

from rollouts_dspy.testing import FaultConfig, ScriptedServer

METHODS = ["gepa", "mipro"]
PRICING = (20.0, 80.0)  # USD per million tokens: a task rollout costs ~ $0.003, a reflection ~ $0.04


def flaky() -> ScriptedServer:
    return ScriptedServer(faults=FaultConfig(rate=0.2, seed=9, timeout_seconds=1.0))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("limit", [40, 90])
async def test_max_rollouts_is_never_exceeded_under_faults_and_concurrency(method, limit):
    # MIPRO validates its best and the starting point only (12 rows each) so that 40 rollouts pay for a trial.
    cfg = config_for(method, None, max_rollouts=limit, max_concurrent=16,
                     **({"generations": 6} if method == "gepa" else {"num_trials": 12, "num_top_for_validation": 1}))
    with flaky() as bad:
        result = await run(method, bad, cfg, endpoint_overrides={"max_retries": 2})
        stats = bad.stats()
    task = result.usage["task"]
    attempted = task["calls"] + task["failures"]  # every task rollout ends as one success or one final failure
    assert result.rollouts_used <= limit and attempted <= limit, (result.rollouts_used, task)
    assert stats.requests_by_model["scripted-task"] - task["retries"] <= limit
    assert task["retries"] > 0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dollars", [0.1, 0.3])
async def test_max_cost_usd_is_never_exceeded_under_faults_and_concurrency(method, dollars):
    cfg = config_for(method, None, max_cost_usd=dollars, max_concurrent=16,
                     **({"generations": 6} if method == "gepa" else {"num_trials": 12}))
    with flaky() as bad:
        result = await run(method, bad, cfg, endpoint_overrides={"max_retries": 2, "pricing": PRICING})
    spent = sum(u["cost_usd"] for u in result.usage.values())
    assert spent <= dollars, (spent, result.usage)
    assert result.usage["task"]["cost_usd"] > 0
    # Unbounded, this run spends ~$0.7-0.9: the cap is what stopped it, and the run says so. The guard admits work
    # while money remains rather than refusing early.
    assert result.stop_reason == "budget", (result.stop_reason, spent)
    assert spent >= dollars / 2, (spent, result.usage)


@pytest.mark.parametrize("teleprompter", ["gepa", "mipro"])
def test_the_dspy_teleprompters_keep_max_rollouts_under_faults(teleprompter):
    dspy = pytest.importorskip("dspy")
    from reliability_helpers import DATA

    from rollouts_dspy.dspy_integration.data import rows_to_examples
    from rollouts_dspy.dspy_integration.gepa import RolloutsGEPA
    from rollouts_dspy.dspy_integration.mipro import RolloutsMIPRO

    examples = rows_to_examples(DATA, ["query"])
    with flaky() as bad:
        lm = dspy.LM("openai/scripted-task", api_base=bad.base_url, api_key="scripted", cache=False, num_retries=3,
                     timeout=0.5)
        make = (lambda: RolloutsGEPA(reflection_lm=lm, max_rollouts=50, num_threads=16)) if teleprompter == "gepa" \
            else (lambda: RolloutsMIPRO(prompt_model=lm, task_model=lm, auto=None, num_candidates=2, max_rollouts=50,
                                        num_threads=16, config={"num_trials": 20, "minibatch_size": 6}))
        with dspy.context(lm=lm):
            program = make().compile(dspy.Predict("query -> intent"), trainset=examples[:16],
                                     valset=examples[16:24])
        assert bad.stats().faults_injected
    assert program.search_outcome.rollouts_used <= 50
    assert program.optimization_result.usage["task"]["rollouts"] <= 50
