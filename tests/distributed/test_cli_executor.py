"""`rollouts-dspy optimize --executor ray`: the CLI's rollouts run as Ray tasks on the cluster named by
RAY_ADDRESS, a custom scorer beside the config travels to the workers (they cannot import it), and the run makes
the local run's decisions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rollouts_dspy import load_result
from tests.cli.helpers import cli_env, write_tiny_config

pytestmark = pytest.mark.distributed

SCORER = '''
import os

from rollouts_dspy import Metric, Score


def score(trajectory, sample):
    with open(os.path.join(os.path.dirname(__file__), "scored-by.txt"), "a") as log:
        log.write(f"{os.getpid()}\\n")
    ok = trajectory.final_text.strip().lower() == str(sample.ground_truth).strip().lower()
    return Score((Metric("correct", float(ok)),), None if ok else f"expected: {sample.ground_truth}")
'''


def optimize(config: Path, out: Path, *extra: str, env: dict[str, str]) -> tuple[int, subprocess.CompletedProcess]:
    proc = subprocess.Popen([sys.executable, "-m", "rollouts_dspy.cli", "optimize", "--method", "gepa", "--config",
                             str(config), "--out", str(out), "--quiet", *extra], cwd=out.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=300)
    return proc.pid, subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def decisions(out: Path) -> tuple:
    result = load_result(out / "result.json")
    return result.best_template, [(c.id, c.train_scores, c.val_scores) for c in result.candidates]


def test_the_cli_runs_rollouts_on_the_ray_cluster_with_the_configs_own_scorer(ray_cluster, tmp_path):
    config = write_tiny_config(tmp_path / "cfg")
    (config.parent / "my_scoring.py").write_text(SCORER)
    text = config.read_text()
    config.write_text(text.replace(text[text.index('type = "exact_match"'):].split("\n")[0],
                                   'type = "my_scoring:score"'))
    log = config.parent / "scored-by.txt"

    _, local = optimize(config, tmp_path / "local", env=cli_env())
    assert local.returncode == 0, local.stderr
    log.unlink()

    pid, on_ray = optimize(config, tmp_path / "ray", "--executor", "ray",
                           env={**cli_env(), "RAY_ADDRESS": ray_cluster.address})
    assert on_ray.returncode == 0, on_ray.stderr
    assert decisions(tmp_path / "ray") == decisions(tmp_path / "local")
    scorers = log.read_text().split()
    # The CLI probes the scorer once before the first LLM call; every rollout was scored on a Ray worker.
    assert scorers.count(str(pid)) == 1 and len(scorers) > 20
    assert (tmp_path / "ray" / "run.log").read_text().splitlines()[0].endswith("--executor ray")
