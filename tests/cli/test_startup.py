"""Commands that call no model import no LLM library: `--help` and `show` stay fast (litellm's import alone costs
seconds and ~170 MB). Checked on what a fresh process imported, not on time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rollouts_dspy.io import save_result
from rollouts_dspy.prompt_optimization.types import GenerationStats, OptimizationResult, PromptTemplate

from .helpers import cli_env

HEAVY = ("litellm", "dspy", "optuna", "openai", "rollouts_dspy.llm")

# Runs the real entry point, then prints which heavy modules the process imported.
PROBE = """
import json, sys
from rollouts_dspy.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
print("\\nMODULES " + json.dumps({"code": code, "heavy": heavy}))
"""


def imported(*args: str, cwd) -> dict:
    code = f"HEAVY = {HEAVY!r}\n" + PROBE
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=cli_env(), capture_output=True,
                          text=True, timeout=60)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("MODULES ")]
    assert lines, proc.stderr
    return json.loads(lines[-1].removeprefix("MODULES "))


@pytest.mark.parametrize("args", [("--help",), ("optimize", "--help"), ("evaluate", "--help"), ("show", "--help")])
def test_help_imports_no_llm_library(tmp_path, args):
    seen = imported(*args, cwd=tmp_path)
    assert seen == {"code": 0, "heavy": []}


def test_show_imports_no_llm_library(tmp_path):
    template = PromptTemplate(system="Classify.", user_template="Query: {query}", id="initial")
    result = OptimizationResult(best_template=template, final_population=(template,),
                                history=(GenerationStats(0, 0.5, 0.5, 1, 10, 100, None, 1.0),), method="gepa",
                                initial_template=template, rollouts_used=10)
    save_result(result, tmp_path / "result.json")
    seen = imported("show", str(tmp_path / "result.json"), cwd=tmp_path)
    assert seen == {"code": 0, "heavy": []}
