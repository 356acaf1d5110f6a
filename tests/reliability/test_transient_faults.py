"""A flaky provider (429, 500, timeouts, malformed JSON, empty answers on 20% of calls): every run completes,
transient failures are retried and counted, and no failed call ever shows up as a measured score. Permanent
errors (context too long, bad request) are the prompt's failure: a recorded, measured 0, never retried."""

from __future__ import annotations

from collections import defaultdict

import pytest
from reliability_helpers import (
    DATA,
    WEAK,
    endpoints,
    gepa_config,
    intent_score,
    measured_scores,
    mipro_config,
    run,
    saved_rollouts,
    task_requests,
)

from rollouts_dspy.prompt_optimization.evaluation import evaluate_detailed
from rollouts_dspy.testing import FaultConfig, ScriptedServer

METHODS = ["gepa", "mipro"]


def flaky(rate: float = 0.2, kinds: tuple[str, ...] | None = None, seed: int = 5,
          models: tuple[str, ...] = ()) -> ScriptedServer:
    faults = FaultConfig(rate=rate, seed=seed, timeout_seconds=1.0, models=models,
                         **({"kinds": kinds} if kinds else {}))
    return ScriptedServer(faults=faults)


async def assert_scores_are_real(result, clean_server) -> None:
    """Re-measure every score the result claims on a fault-free server (the scripted model is deterministic): a
    failed call counted as a 0 (or anything else) would differ from the real score."""
    by_candidate = defaultdict(dict)
    for record, index, score in measured_scores(result):
        by_candidate[record.id][index] = (record, score)
    task, _ = endpoints(clean_server)
    for claims in by_candidate.values():
        record = next(iter(claims.values()))[0]
        template = record.candidate.to_template(WEAK)
        report = await evaluate_detailed(template, sorted(claims), DATA, task, intent_score)
        real = {r.sample_index: r.score for r in report.rollouts}
        assert {i: s for i, (_, s) in claims.items()} == real, record.id


def assert_counts_consistent(result, server) -> None:
    """Every HTTP request the provider saw is one counted attempt: a success (calls), a retried failure
    (retries) or a final failure (failures)."""
    attempts = sum(u["calls"] + u["retries"] + u["failures"] for u in result.usage.values())
    assert attempts == server.stats().requests_total, (result.usage, server.stats())


@pytest.mark.parametrize("method", METHODS)
async def test_a_run_on_a_flaky_provider_completes_with_retries_counted(method, server):
    with flaky() as bad:
        cfg = gepa_config() if method == "gepa" else mipro_config()
        result = await run(method, bad, cfg, endpoint_overrides={"max_retries": 1})
        stats = bad.stats()
    assert result.stop_reason in ("generations", "num_trials", "perfect_score")
    assert sum(stats.faults_injected.values()) >= 10, stats.faults_injected
    task = result.usage["task"]
    assert task["retries"] > 0
    assert_counts_consistent(result, bad)
    # Final failures (a transient error that outlived its retries) are unmeasured: the rollout budget counts them
    # (the provider was called) but no score does.
    measured = {(r.candidate.key, i) for r, i, _ in measured_scores(result)}
    assert len(measured) <= result.rollouts_used
    assert result.best_template.score is not None
    await assert_scores_are_real(result, server)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["context_length", "400"])
async def test_permanent_errors_score_the_prompt_zero_without_retrying(method, kind, tmp_path):
    # Faults aimed at the task model: whatever order requests arrive in, they land on rollouts.
    with flaky(rate=0.15, kinds=(kind,), seed=2, models=("scripted-task",)) as bad:
        storage = {"checkpoint_dir": str(tmp_path)}
        cfg = (gepa_config(generations=2, **storage) if method == "gepa"
               else mipro_config(num_trials=2, **storage))
        result = await run(method, bad, cfg)
        injected = bad.stats().faults_injected.get(kind, 0)
    assert injected > 0
    assert all(u["retries"] == 0 for u in result.usage.values()), result.usage  # permanent: never retried
    assert sum(u["failures"] for u in result.usage.values()) == injected
    # The rollouts that hit the error are measured zeros with the error recorded in the checkpoint.
    rollouts = saved_rollouts(tmp_path)
    failed = [r for r in rollouts if r["error"]]
    assert failed and all(r["error"]["kind"] == "prompt" and r["score"] == 0.0 for r in failed)
    assert all(r["error"]["detail"] for r in failed)


@pytest.mark.parametrize("kind", ["context_length", "400"])
async def test_evaluate_records_a_permanent_error_as_a_measured_zero(server, kind):
    task, _ = endpoints(server, timeout=10.0)  # requests are counted: a slow answer on a loaded machine is no retry
    server.fail_next(1, kind)
    report = await evaluate_detailed(WEAK, [0, 1, 2], DATA, task, intent_score, max_concurrent=1)
    first = report.rollouts[0]
    assert first.score == 0.0 and first.error is not None and first.error.kind == "prompt"
    assert first.error.detail
    assert task_requests(server) == 3  # one request each: the permanent error was not retried
    assert report.failures == {"prompt": 1}


@pytest.mark.parametrize("kind", ["429", "500", "timeout", "malformed", "empty"])
async def test_each_transient_kind_is_retried_and_then_measured(server, kind):
    # Requests are counted: only the timeout fault needs the short timeout, elsewhere a slow answer is no retry.
    task, _ = endpoints(server, **({} if kind == "timeout" else {"timeout": 10.0}))
    server.reset_stats()
    server.fail_next(2, kind)
    report = await evaluate_detailed(WEAK, [0], DATA, task, intent_score, max_concurrent=1)
    assert report.rollouts[0].error is None and report.rollouts[0].score is not None
    assert task_requests(server) == 3


async def test_a_transient_error_that_outlives_its_retries_is_unmeasured(server):
    task, _ = endpoints(server, max_retries=0)
    server.fail_next(1, "500")
    report = await evaluate_detailed(WEAK, [0, 1], DATA, task, intent_score)
    failed = [r for r in report.rollouts if r.error is not None]
    ok = [r for r in report.rollouts if r.error is None]
    assert len(failed) == 1 and failed[0].score is None and failed[0].error.kind == "llm" and failed[0].error.detail
    assert report.mean == ok[0].score  # the mean is over measured samples only
    assert report.failures == {"llm": 1}

    server.fail_next(2, "500")
    report = await evaluate_detailed(WEAK, [2, 3], DATA, task, intent_score)
    assert report.mean is None and report.template.score is None  # nothing measured is not a score of 0


@pytest.mark.parametrize("teleprompter", ["gepa", "mipro"])
def test_the_dspy_teleprompters_on_a_flaky_provider(teleprompter, server):
    """The DSPy front door on the same flaky provider: compile completes, and every per-sample score it
    recorded is the real one (re-measured on a fault-free server), so no failed call was scored."""
    dspy = pytest.importorskip("dspy")
    from rollouts_dspy.dspy_integration.data import rows_to_examples
    from rollouts_dspy.dspy_integration.gepa import RolloutsGEPA
    from rollouts_dspy.dspy_integration.mipro import RolloutsMIPRO
    from rollouts_dspy.dspy_integration.program_task import apply_candidate

    examples = rows_to_examples(DATA, ["query"])
    train, val = examples[:12], examples[12:20]

    def metric(example, pred, trace=None):
        return float(example.intent == pred.intent)

    student = dspy.Predict("query -> intent")
    with flaky() as bad:
        lm = dspy.LM("openai/scripted-task", api_base=bad.base_url, api_key="scripted", cache=False, num_retries=3,
                     timeout=0.5)
        make = (lambda: RolloutsGEPA(metric, reflection_lm=lm, max_metric_calls=80)) if teleprompter == "gepa" \
            else (lambda: RolloutsMIPRO(metric, prompt_model=lm, task_model=lm, auto=None, num_candidates=2,
                                        config={"num_trials": 3, "minibatch_size": 6}))
        with dspy.context(lm=lm):
            program = make().compile(student, trainset=train, valset=val)
        assert bad.stats().faults_injected
    assert program is not student  # a copy; the student is never modified
    clean = dspy.LM("openai/scripted-task", api_base=server.base_url, api_key="scripted", cache=False)
    data = [*train, *val]
    for record in program.search_outcome.records:
        candidate_program = apply_candidate(student, record.candidate)
        claimed = {**record.train_scores, **record.val_scores}
        with dspy.context(lm=clean):
            real = {i: metric(data[i], candidate_program(**data[i].inputs())) for i in claimed}
        assert claimed == real, record.id
