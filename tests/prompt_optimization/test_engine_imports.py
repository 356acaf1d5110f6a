"""The engines sit on the runtime, not on a front door: importing them loads no LLM layer, litellm or DSPy."""

from __future__ import annotations

import subprocess
import sys

ENGINE_MODULES = [
    "rollouts_dspy.runtime",
    "rollouts_dspy.prompt_optimization.gepa",
    "rollouts_dspy.prompt_optimization.gepa.runner",
    "rollouts_dspy.prompt_optimization.gepa.engine",
]


def test_importing_the_gepa_engine_loads_no_llm_library():
    code = ("import sys\n"
            + "".join(f"import {m}\n" for m in ENGINE_MODULES)
            + "bad = sorted(m for m in sys.modules if m == 'rollouts_dspy.llm' or m.split('.')[0] in "
              "('litellm', 'dspy', 'openai', 'optuna'))\n"
              "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", out.stdout
