"""Helpers for driving the real `rollouts-dspy` entry point in a subprocess, on tiny offline configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env.pop("OPENAI_API_KEY", None)  # the offline configs must not need a key
    return env


def run_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m rollouts_dspy.cli ARGS` (the module behind the `rollouts-dspy` console script)."""
    return subprocess.run([sys.executable, "-m", "rollouts_dspy.cli", *args], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


TINY_GEPA = """
[gepa]
population_size = 3
generations = {generations}
elite_size = 1
minibatch_size = 6
reflection_minibatch_size = 4
val_candidates = 2
seed = 0
"""

TINY_MIPRO = """
[mipro]
num_candidates = 3
num_trials = {trials}
max_bootstrapped_demos = 2
max_labeled_demos = 2
num_demo_sets = 3
minibatch_size = 8
seed = 0
"""


def write_tiny_config(folder: Path, *, rows: int = 36, generations: int = 2, trials: int = 4) -> Path:
    """A small copy of the quickstart: the first `rows` shipped intent rows, a weak prompt, tiny GEPA/MIPRO."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = (EXAMPLES / "data" / "intents.jsonl").read_text().splitlines()[:rows]
    (folder / "intents.jsonl").write_text("\n".join(lines) + "\n")
    quickstart = (EXAMPLES / "gepa_quickstart.toml").read_text()
    head = quickstart[: quickstart.index("[gepa]")].replace("data/intents.jsonl", "intents.jsonl")
    text = head + TINY_GEPA.format(generations=generations) + TINY_MIPRO.format(trials=trials)
    path = folder / "run.toml"
    path.write_text(text)
    return path
