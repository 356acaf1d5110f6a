"""use_wandb / use_mlflow log every step's scores and usage and the final result to the real libraries (wandb
offline, MLflow's file store, both in a temporary folder); the API key is handed over in memory only."""

from __future__ import annotations

import dspy
import pytest

from rollouts_dspy.dspy_integration import RolloutsGEPA, rows_to_examples
from rollouts_dspy.testing import generate_intent_queries

EXAMPLES = rows_to_examples(generate_intent_queries(16, seed=2), ["query"])


def compile_tracked(task_lm, reflect_lm, **tracking):
    with dspy.context(lm=task_lm):
        return RolloutsGEPA(reflection_lm=reflect_lm, max_metric_calls=40, **tracking).compile(
            dspy.Predict("query -> intent"), trainset=EXAMPLES[:8], valset=EXAMPLES[8:])


def test_mlflow_gets_every_step_and_the_result(task_lm, reflect_lm, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    optimized = compile_tracked(task_lm, reflect_lm, use_mlflow=True)
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    history = client.get_metric_history(run.info.run_id, "best_score")
    assert [m.step for m in history] == [s.generation for s in optimized.search_outcome.history]
    assert [m.value for m in history] == [s.best_score for s in optimized.search_outcome.history]
    final = client.get_metric_history(run.info.run_id, "final_rollouts_used")
    assert [m.value for m in final] == [optimized.search_outcome.rollouts_used]
    assert run.data.tags["rollouts_dspy.stop_reason"] == optimized.search_outcome.stop_reason
    assert run.info.status == "FINISHED"


def test_wandb_run_is_written_with_the_steps(task_lm, reflect_lm, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    key = "local-" + "0" * 40  # offline: never sent anywhere, and never written to disk
    compile_tracked(task_lm, reflect_lm, use_wandb=True, wandb_api_key=key,
                    wandb_init_kwargs={"mode": "offline", "dir": str(tmp_path), "project": "rollouts-test"})
    wandb.teardown()  # offline runs are written by wandb's service process; this waits until it is done
    (log,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    data = log.read_bytes()
    for metric in (b"best_score", b"best_score_so_far", b"rollouts_used", b"final_best_score"):
        assert metric in data
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert key.encode() not in written
