"""MIPRO across workers (docs/cluster.md, MIPRO across workers), against a real PostgreSQL server and the scripted LLM
server over real HTTP: several workers run one search whose result is a single run's, no call is made twice, the
budget holds for all of them together, and a worker SIGKILLed while it holds claims loses only its calls in
flight."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import optuna
import pytest

from rollouts_dspy.errors import ConfigError
from rollouts_dspy.prompt_optimization.mipro import MIPROConfig
from rollouts_dspy.runtime import Budget, BudgetExhausted, ProviderUnavailableError
from rollouts_dspy.studies import SharedStudy, load_study_result
from rollouts_dspy.studies.ledger import SharedLedger
from rollouts_dspy.studies.schema import jobs, rollouts, trials, workers
from rollouts_dspy.studies.store import StudyStore
from rollouts_dspy.testing import ScriptedServer
from rollouts_dspy.testing.studies import StudyTables, start_worker, write_study_config

from .study_setup import LEASE_SECONDS, single_run

pytestmark = pytest.mark.distributed


def _same_search(result, reference) -> None:
    """The same best candidate and the same per-sample scores of every candidate, trial by trial."""
    assert result.best_candidate_id == reference.best_candidate_id
    assert result.best_template.system == reference.best_template.system
    assert result.best_template.few_shot_examples == reference.best_template.few_shot_examples
    assert [(r.id, r.train_scores, r.val_scores) for r in result.candidates] == \
           [(r.id, r.train_scores, r.val_scores) for r in reference.candidates]
    assert [h.mean_score for h in result.history] == [h.mean_score for h in reference.history]


def _wait_for(condition, what: str, timeout: float = 60.0, workers=()) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        dead = [w for w in workers if w.poll() is not None]
        if dead:
            pytest.fail(f"a worker exited (code {dead[0].returncode}) before {what}: {dead[0].stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


async def test_three_workers_with_one_killed_mid_run_make_the_single_runs_search(postgres_url, tmp_path):
    with ScriptedServer() as ref_server, ScriptedServer() as fast, ScriptedServer(latency=0.5) as slow:
        config = write_study_config(tmp_path, fast.base_url)
        # the same models: only the address differs
        slow_config = write_study_config(tmp_path, slow.base_url, name="slow.toml")
        reference = await single_run(config, ref_server.base_url)
        reference_calls = ref_server.stats().requests_total

        tables = StudyTables(postgres_url, "killed")
        victim = start_worker(postgres_url, "killed", slow_config, "victim", lease_seconds=LEASE_SECONDS)
        survivors: list[subprocess.Popen[str]] = []
        try:
            # The victim, whose every call takes 0.5 s, joins first (alone it would need far longer than the
            # others take to start); it is killed once the others work with it, the pool is made and two trials
            # are told, while it holds claims on rollouts.
            _wait_for(lambda: tables.exists(workers) and tables.count(workers) == 1, "the victim to join",
                      workers=[victim])
            survivors = [start_worker(postgres_url, "killed", config, name, lease_seconds=LEASE_SECONDS)
                         for name in ("alpha", "beta")]
            _wait_for(lambda: tables.count(workers) == 3 and tables.count(jobs) == 1 and tables.count(trials) >= 2
                      and tables.claims_of("victim", "rollout") > 0, "the moment to kill the victim",
                      workers=[victim, *survivors])
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
            in_flight = tables.claims_of("victim", "rollout")  # admitted, never stored: lost with the victim
            outputs = [w.communicate(timeout=120) for w in survivors]
        finally:
            for w in [victim, *survivors]:
                if w.poll() is None:
                    w.kill()
                    w.communicate()
        assert [w.returncode for w in survivors] == [0, 0], [err[-3000:] for _, err in outputs]
        assert victim.returncode == -signal.SIGKILL and in_flight > 0

        # The search is the single run's: the stored result, what each survivor printed, Optuna's study.
        _same_search(load_study_result(postgres_url, "killed"), reference)
        assert outputs[0][0].splitlines()[:3] == outputs[1][0].splitlines()[:3]
        optuna_trials = optuna.load_study(study_name="killed", storage=postgres_url).trials
        assert sorted(t.user_attrs["mipro_trial"] for t in optuna_trials) == list(range(len(reference.history)))
        assert {t.user_attrs["mipro_trial"]: t.value for t in optuna_trials} == \
               {h.generation: h.mean_score for h in reference.history}

        # No call was made twice: every call of the single run was made once by the workers -- the survivors'
        # calls plus the ones the victim finished and stored -- and the only extra calls are the victim's in flight.
        victim_stored = tables.calls_finished_by("victim")
        assert fast.stats().requests_total + victim_stored == reference_calls
        assert 0 <= slow.stats().requests_total - victim_stored <= in_flight

        # The budget counted every admission once, the lost ones included, and held.
        assert tables.admitted() == tables.stored_rollouts() + in_flight <= 1500
        tables.close()


async def test_two_workers_share_a_budget_that_stops_the_search(postgres_url, tmp_path, server):
    config = write_study_config(tmp_path, server.base_url, max_rollouts=230, num_trials=30)
    reference = await single_run(config, server.base_url)
    assert reference.stop_reason == "budget"
    server.reset_stats()
    results = await asyncio.gather(*(single_run(config, server.base_url, study=SharedStudy(
        storage=postgres_url, name="budget", worker=name, lease_seconds=3.0)) for name in ("one", "two")))
    for result in results:
        _same_search(result, reference)
        assert result.rollouts_used == reference.rollouts_used <= 230
    assert server.stats().requests_by_model["scripted-task"] == reference.rollouts_used


async def test_a_worker_with_another_config_is_refused_and_a_late_one_replays_for_free(postgres_url, tmp_path,
                                                                                       server, capsys):
    from rollouts_dspy.cli import main
    from rollouts_dspy.errors import CheckpointError

    config = write_study_config(tmp_path, server.base_url, num_trials=4)
    study = SharedStudy(storage=postgres_url, name="late", lease_seconds=3.0)
    first = await single_run(config, server.base_url, study=study)
    other = write_study_config(tmp_path, server.base_url, name="other.toml", num_trials=4, seed=1)
    with pytest.raises(CheckpointError, match="seed differ"):
        await single_run(other, server.base_url, study=study)
    server.reset_stats()
    late = await single_run(config, server.base_url, study=study)
    assert server.stats().requests_total == 0  # everything was in the study
    _same_search(late, first)

    assert main(["show", postgres_url, "--study", "late", "--plain"]) == 0
    report = capsys.readouterr().out
    assert first.best_template.system.splitlines()[0] in report and first.best_candidate_id in report
    assert main(["show", postgres_url]) == 0
    assert "late (mipro): finished; 4 trials told" in capsys.readouterr().out


async def _joined(storage: str, name: str, budget: Budget, workers: int) -> list[SharedLedger]:
    stores = [await StudyStore.join(SharedStudy(storage=storage, name=name, worker=f"w{i}", lease_seconds=3.0),
                                    method="mipro", fingerprint={}, config={}, budget=budget) for i in range(workers)]
    return [SharedLedger(store, budget) for store in stores]


async def test_admission_is_one_transaction_for_every_worker(postgres_url):
    ledgers = await _joined(postgres_url, "admission", Budget(max_rollouts=30), workers=3)
    try:
        granted = await asyncio.gather(*(ledger.admit_rollouts(1) for ledger in ledgers for _ in range(20)))
        assert sum(n for n, _ in granted) == 30  # 60 requests from three workers at once, 30 rollouts
        ledgers[1].refresh()
        assert ledgers[1].rollouts_used == 30 and ledgers[1].exhausted
    finally:
        for ledger in ledgers:
            ledger.store.leave()


async def test_the_dollar_cap_holds_for_every_worker_and_one_probe_finds_the_price(postgres_url):
    ledgers = await _joined(postgres_url, "dollars", Budget(max_cost_usd=1.0), workers=3)
    unpriced: list[int] = []  # calls in flight while no call had a price yet, seen by each call at admission
    in_flight = [0]
    paid = []

    async def calls(ledger: SharedLedger) -> None:
        while True:
            try:
                committed = await ledger.admit_call("proposer")
            except BudgetExhausted:
                return
            in_flight[0] += 1
            if not paid:
                unpriced.append(in_flight[0])
            await asyncio.sleep(0.01)  # the call
            in_flight[0] -= 1
            ledger.settle("proposer", 0.1, committed=committed)
            paid.append(0.1)

    try:
        await asyncio.gather(*(calls(ledger) for ledger in ledgers for _ in range(4)))
        ledgers[0].refresh()
        assert unpriced == [1]  # the first call went alone; the twelve others waited for its price
        assert ledgers[0].cost_usd == pytest.approx(sum(paid)) and sum(paid) <= 1.0
        assert len(paid) >= 7  # each call is admitted at 1.25x the dearest price seen, 0.125 of the 1.0
    finally:
        for ledger in ledgers:
            ledger.store.leave()


async def test_a_study_stopped_by_an_outage_tries_what_failed_again_when_restarted(postgres_url, tmp_path, server):
    config = write_study_config(tmp_path, server.base_url, num_trials=4)
    reference = await single_run(config, server.base_url)
    study = SharedStudy(storage=postgres_url, name="outage", lease_seconds=3.0)
    tables = StudyTables(postgres_url, "outage")
    server.down = True
    try:
        with pytest.raises(ProviderUnavailableError, match="start the workers again"):
            await single_run(config, server.base_url, study=study)
    finally:
        server.down = False
    assert tables.count(rollouts, rollouts.c.state == "failed") >= 8  # every worker would be served these...
    result = await single_run(config, server.base_url, study=study)
    _same_search(result, reference)  # ...until every worker had stopped: then they are tried again
    assert tables.count(rollouts, rollouts.c.state == "failed") == 0
    tables.close()


def test_a_shared_study_is_named_by_a_postgresql_url_and_keeps_no_local_checkpoint():
    with pytest.raises(ConfigError, match="PostgreSQL URL"):
        SharedStudy(storage="sqlite:///study.db", name="a")
    with pytest.raises(ConfigError) as bad:
        SharedStudy(storage="postgres://me:secret@db/rollouts", name="a")
    assert "secret" not in str(bad.value) and "me:***@db" in str(bad.value)
    with pytest.raises(ConfigError, match="lease_seconds"):
        SharedStudy(storage="postgresql://db/rollouts", name="a", lease_seconds=0.5)
    with pytest.raises(ConfigError, match="name"):
        SharedStudy(storage="postgresql://db/rollouts", name="")
    study = SharedStudy(storage="postgresql://me:secret@db/rollouts", name="a")
    with pytest.raises(ConfigError, match="checkpoint_dir must be None in a shared study"):
        MIPROConfig(train_seeds=(0, 1), study=study, checkpoint_dir="ckpt")
    assert MIPROConfig(train_seeds=(0, 1), study=study).to_dict()["study"]["storage"] == \
           "postgresql://me:***@db/rollouts"
