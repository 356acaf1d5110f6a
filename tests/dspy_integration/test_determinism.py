"""Same seed, same LM answers, same result in any process: two processes with different PYTHONHASHSEED send the
same requests and end with the same programs (no set- or hash-order dependence, e.g. in DSPy's input keys)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("determinism_run.py")


def run(hash_seed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_processes_with_different_hash_seeds_agree():
    first, second = run("1"), run("2")
    for method in ("gepa", "mipro"):
        a, b = first[method], second[method]
        assert a["task_requests"] == b["task_requests"], method
        assert a["reflect_requests"] == b["reflect_requests"], method
        assert a["records"] == b["records"] and a["rollouts"] == b["rollouts"], method
        assert a["program"] == b["program"], method
        assert len(a["records"]) > 1  # something was searched, not only the start
