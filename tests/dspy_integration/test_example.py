"""examples/dspy_drop_in.py runs offline against the bundled scripted server (the tutorial's dspy.GEPA argument
list with only the class name changed) and saves a program DSPy loads back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dspy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dspy_drop_in.py"


def test_the_drop_in_example_runs_offline(tmp_path):
    saved = tmp_path / "program.json"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    done = subprocess.run([sys.executable, str(EXAMPLE), "--save", str(saved)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "candidates:" in done.stdout and "optimized test accuracy" in done.stdout
    lines = {line.split(":")[0]: line for line in done.stdout.splitlines() if "test accuracy:" in line}
    before = float(lines["unoptimized test accuracy"].split(":")[1].strip(" %"))
    after = float(lines["optimized test accuracy"].split(":")[1].strip(" %"))
    assert after > before  # the search learned something (33.3% -> 53.3% offline today)
    program = dspy.ChainOfThought("query -> intent")
    program.load(str(saved))
    assert json.loads(saved.read_text())  # a DSPy program state file
    assert "RolloutsGEPA(\n        metric=metric_with_feedback," in EXAMPLE.read_text()
