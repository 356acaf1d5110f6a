"""The PostgreSQL server the distributed tests start is one that several processes can share an Optuna study on
(the storage MIPRO's workers use): two processes ask and tell trials of one study at the same time, and every
trial lands once."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.distributed

WORKER = """
import sys
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
url, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
study = optuna.load_study(study_name="smoke", storage=optuna.storages.RDBStorage(url),
                          sampler=optuna.samplers.RandomSampler(seed=int(worker)))
for _ in range(n):
    trial = study.ask()
    x = trial.suggest_float("x", -10.0, 10.0)
    trial.set_user_attr("worker", worker)
    study.tell(trial, (x - 2.0) ** 2)
"""


def test_two_processes_share_one_optuna_study_on_the_server(postgres_url, tmp_path):
    optuna = pytest.importorskip("optuna")
    storage = optuna.storages.RDBStorage(postgres_url)
    study = optuna.create_study(study_name="smoke", storage=storage, direction="minimize")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [subprocess.Popen([sys.executable, str(script), postgres_url, str(w), "15"], stderr=subprocess.PIPE,
                                text=True) for w in (1, 2)]
    errors = [w.communicate(timeout=120)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], errors
    trials = optuna.load_study(study_name="smoke", storage=storage).get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(30))  # every trial once, numbered by the database
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sorted(t.user_attrs["worker"] for t in trials) == ["1"] * 15 + ["2"] * 15
    best = min(trials, key=lambda t: t.value)
    assert study.best_trial.number == best.number and study.best_value == best.value
