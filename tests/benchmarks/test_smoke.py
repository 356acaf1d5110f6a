"""The benchmark harness's smoke configuration, so it never rots: every peer adapter and ours run end to end on
the scripted server (real HTTP, subprocess servers and a worker process), and the report is built from the JSON."""

from __future__ import annotations

import json

import pytest

from benchmarks.presets import PRESETS
from benchmarks.report import markdown
from benchmarks.run import RESULTS, run_preset
from benchmarks.worlds import banking77_available


@pytest.mark.slow
def test_smoke_preset_runs_every_adapter_and_writes_the_report():
    if not banking77_available():
        pytest.skip("Banking77 not found at ../shared/data/banking77")
    data = run_preset(PRESETS["smoke"], quiet=True, scale=False)
    errors = [(r["contender"], r["world"], r["error"]) for r in data["runs"] if "error" in r]
    assert not errors, errors
    ran = {(r["world"], r["contender"]) for r in data["runs"]}
    assert ("banking77", "dspy.GEPA") in ran and ("banking77", "run_gepa") in ran
    assert ("calculator", "run_gepa") in ran
    for run in data["runs"]:
        assert 0.0 <= run["final_val"] <= 1.0
        assert run["task_calls"] > 0 and run["rollouts"] > 0
        assert run["curve"] and run["cpu_s"] > 0 and run["peak_rss_mb"] > 0
    assert json.loads((RESULTS / "smoke.json").read_text())["preset"] == "smoke"
    text = markdown(data)
    assert "python -m benchmarks.run --preset smoke" in text and "| dspy.GEPA |" in text


def test_scale_run_in_process(server):
    from benchmarks.scale import run_scale

    out = run_scale({"engine": "gepa", "samples": 30, "population": 3, "cap": 20, "base_url": server.base_url})
    assert out["rollouts"] <= 20 and out["peak_rss_mb"] > 0 and out["wall_s"] > 0
