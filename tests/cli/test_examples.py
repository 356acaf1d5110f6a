"""The spec's two examples run offline in a small configuration; the shipped example data never drifts from its
generator; the example configs load."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from rollouts_dspy.config_file import load_config

from .helpers import EXAMPLES, cli_env


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["make_intents.py", "make_arithmetic.py"])
def test_shipped_data_equals_its_generator(name):
    script = _load(EXAMPLES / "data" / name)
    assert script.PATH.read_text(encoding="utf-8") == script.render(), f"rerun examples/data/{name}"


@pytest.mark.parametrize("name", ["gepa_quickstart.toml", "mipro_quickstart.toml", "calculator_mipro.toml"])
def test_example_configs_load_and_split(name):
    config = load_config(EXAMPLES / name)
    rows = config.rows()
    split = config.split(len(rows))
    assert split.train and split.val and split.test
    assert config.uses_scripted_server
    method = "gepa" if "gepa" in name else "mipro"
    method_config = config.method_config(method, split.train, split.val, None)
    assert method_config.train_seeds == split.train


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / "prompt_optimization" / script), *args], env=cli_env(),
                          capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_calculator_mipro_example_runs_offline(tmp_path):
    proc = _run("calculator_mipro.py", "--trials", "2", "--candidates", "2", "--train", "6", "--val", "4",
                "--test", "4", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "held-out test accuracy (4 problems): initial" in proc.stdout
    assert (tmp_path / "best.json").exists() and (tmp_path / "result.json").exists()


@pytest.mark.slow
def test_banking77_gepa_example_runs_offline(banking77_dir, tmp_path):
    proc = _run("banking77_gepa.py", "--data", str(banking77_dir), "--generations", "2", "--population", "3",
                "--train", "12", "--val", "6", "--test", "6", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "best validation score:" in proc.stdout and "held-out test accuracy (6 rows)" in proc.stdout
    assert (tmp_path / "result.json").exists()
