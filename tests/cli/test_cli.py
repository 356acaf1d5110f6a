"""The real `rollouts-dspy` entry point in a subprocess: optimize (both methods), resume, Ctrl-C, evaluate, show,
help and bad configs. Every run is offline: the CLI starts the scripted server itself."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rollouts_dspy.io import load_result, load_template

from .helpers import cli_env, run_cli, write_tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gepa_run(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("gepa")
    config = write_tiny_config(root / "cfg")
    out = root / "out"
    proc = run_cli("optimize", "--method", "gepa", "--config", str(config), "--out", str(out), cwd=root)
    return config, out, proc


def test_optimize_gepa_writes_best_result_and_log(gepa_run):
    config, out, proc = gepa_run
    assert proc.returncode == 0, proc.stderr
    assert {"best.json", "result.json", "run.log"} <= {p.name for p in out.iterdir()}
    result = load_result(out / "result.json")
    assert result.method == "gepa" and len(result.history) == 2
    assert load_template(out / "best.json") == result.best_template
    assert result.initial_template is not None and result.initial_template.system.startswith("Classify")
    assert result.config["run"]["endpoint"]["api_base"] == "scripted"
    # stdout: the outcome; stderr (not a terminal): one plain progress line per generation
    assert "initial prompt: " in proc.stdout and "best system prompt:" in proc.stdout
    assert "[gepa] generation 0:" in proc.stderr and "[gepa] generation 1:" in proc.stderr
    log = (out / "run.log").read_text()
    assert "[gepa] generation 1:" in log and "[gepa] done" in log
    assert "api_key" not in (out / "result.json").read_text()


def test_show_prints_history_usage_and_diff(gepa_run):
    _, out, _ = gepa_run
    proc = run_cli("show", str(out / "result.json"), cwd=out)
    assert proc.returncode == 0, proc.stderr
    for heading in ("== Run ==", "== Score history (2 generations) ==", "== LLM usage", "candidates (* = best)",
                    "== Best prompt ==", "== Diff: initial -> best system prompt =="):
        assert heading in proc.stdout
    result = load_result(out / "result.json")
    assert result.best_template.system != result.initial_template.system  # this run improved the prompt
    assert "--- initial system prompt" in proc.stdout and "+++ best system prompt" in proc.stdout
    assert "\x1b[" not in proc.stdout  # plain text when stdout is not a terminal


def test_evaluate_a_saved_template_and_write_rollouts(gepa_run):
    config, out, _ = gepa_run
    report = out / "eval.json"
    proc = run_cli("evaluate", "--template", str(out / "best.json"), "--config", str(config), "--split", "val",
                   "--out", str(report), cwd=out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("score ") and " val rows" in proc.stdout
    data = json.loads(report.read_text())
    assert data["split"] == "val" and len(data["rollouts"]) == 11  # 0.3 of 36 rows
    assert data["template"]["system"] == load_template(out / "best.json").system


def test_optimize_mipro_quietly(tmp_path):
    config = write_tiny_config(tmp_path / "cfg", rows=24, trials=3)
    out = tmp_path / "out"
    proc = run_cli("optimize", "--method", "mipro", "--config", str(config), "--out", str(out), "--quiet",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    result = load_result(out / "result.json")
    assert result.method == "mipro" and len(result.history) == 3
    assert (out / "checkpoint" / "journal.jsonl").exists()  # the run's journal: --resume continues it


def test_ctrl_c_saves_the_best_so_far_and_resume_finishes(tmp_path):
    config = write_tiny_config(tmp_path / "cfg", rows=30, generations=30)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "rollouts_dspy.cli", "optimize", "--method", "gepa", "--config", str(config),
            "--out", str(out), "--progress", "lines"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 90
        seen = []
        while time.monotonic() < deadline:  # wait until one generation is checkpointed
            line = proc.stderr.readline()
            seen.append(line)
            if "generation 1:" in line or not line:
                break
        assert any("generation 1:" in s for s in seen), "".join(seen)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "resume with: rollouts-dspy optimize --method gepa" in stderr
    assert "best so far (training score" in stdout
    assert load_template(out / "best.json").score is not None
    again = run_cli("optimize", "--method", "gepa", "--config", str(config), "--out", str(out), "-q", cwd=tmp_path)
    assert again.returncode == 2 and "already holds a run's checkpoint; pass --resume" in again.stderr
    # Resume with fewer generations (the checkpoint allows changing them): it continues from the saved ones.
    config.write_text(config.read_text().replace("generations = 30", "generations = 3"))
    resumed = run_cli("optimize", "--method", "gepa", "--config", str(config), "--out", str(out), "--resume",
                      "--progress", "lines", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "generation 0:" not in resumed.stderr  # generation 0 came from the checkpoint
    assert len(load_result(out / "result.json").history) >= 3


@pytest.mark.parametrize("command", [(), ("optimize",), ("evaluate",), ("show",)])
def test_help_everywhere(tmp_path, command):
    proc = run_cli(*command, "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "usage: rollouts-dspy" in proc.stdout


def test_bad_configs_name_file_key_and_expectation(tmp_path, tiny_config):
    bad = tiny_config.read_text().replace("train = 0.4", "train = true")
    tiny_config.write_text(bad)
    proc = run_cli("optimize", "--method", "gepa", "--config", str(tiny_config), "--out", str(tmp_path / "o"),
                   cwd=tmp_path)
    assert proc.returncode == 2
    assert f"{tiny_config}: [dataset] train: expected a fraction (0.6), a list of row indices" in proc.stderr
    assert not (tmp_path / "o").exists()  # nothing written for a bad config

    tiny_config.write_text(bad.replace("train = true", "train = 0.4").replace("elite_size = 1", "elites = 1"))
    proc = run_cli("optimize", "--method", "gepa", "--config", str(tiny_config), cwd=tmp_path)
    assert proc.returncode == 2 and "[gepa] elites: unknown key; GEPAConfig takes" in proc.stderr

    tiny_config.write_text(tiny_config.read_text().replace("elites = 1", "elite_size = 5"))
    proc = run_cli("optimize", "--method", "gepa", "--config", str(tiny_config), cwd=tmp_path)
    assert proc.returncode == 2 and "[gepa] GEPAConfig: elite_size < population_size must hold" in proc.stderr

    proc = run_cli("optimize", "--method", "gepa", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert proc.returncode == 2 and "config file not found" in proc.stderr


def test_show_rejects_corrupted_and_newer_files(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": "rollouts-dspy/result", "schema_version": 1, "best_templ')
    proc = run_cli("show", str(broken), cwd=tmp_path)
    assert proc.returncode == 2 and f"{broken}: corrupted, not valid JSON" in proc.stderr
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"schema": "rollouts-dspy/result", "schema_version": 2}))
    proc = run_cli("show", str(newer), cwd=tmp_path)
    assert proc.returncode == 2 and "newer rollouts-dspy" in proc.stderr
