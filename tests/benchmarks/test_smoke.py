"""The benchmark harness's smoke preset, so it never rots: every peer adapter and ours run end to end on the scripted
server (real HTTP, subprocess servers and a worker process), results land in the store, and the report is built
from the store."""

from __future__ import annotations

import pytest

from benchmarks.presets import PRESETS
from benchmarks.report import markdown
from benchmarks.run import run_preset
from benchmarks.store import load


@pytest.mark.slow
def test_smoke_preset_runs_every_adapter_and_reports_from_the_store(banking77_dir, tmp_path):
    store = tmp_path / "smoke.jsonl"
    data = run_preset(PRESETS["smoke"], quiet=True, scale=False, store=store)
    errors = [(r["contender"], r["world"], r["error"]) for r in data["runs"] if "error" in r]
    assert not errors, errors
    ran = {(r["world"], r["contender"]) for r in data["runs"]}
    assert {("banking77-10", "dspy.GEPA"), ("banking77-10", "run_gepa"), ("banking77-10", "dspy.MIPROv2"),
            ("banking77-10", "gepa.optimize"), ("banking77-10", "run_mipro"), ("calculator-mini", "run_gepa")} <= ran
    for run in data["runs"]:
        assert 0.0 <= run["start_val"] <= 1.0 and 0.0 <= run["final_val"] <= 1.0
        assert run["gain"] == pytest.approx(run["final_val"] - run["start_val"])
        assert run["task_calls"] > 0 and run["rollouts"] > 0 and run["rounds"] >= 1
        assert run["curve"] and run["cpu_s"] > 0 and run["peak_rss_mb"] > 0 and run["code_hash"]
    ours = next(r for r in data["runs"] if r["contender"] == "run_gepa" and r["world"] == "banking77-10")
    assert ours["rollouts"] <= ours["budget"]  # our hard budget holds in the harness's own count
    breakdown = ours["extra"]["breakdown"]
    assert "unknown" in breakdown or breakdown["initial"] > 0
    assert ours["extra"]["rollouts_used"] == ours["rollouts"]  # the engine's own count is the server's
    variant = next(r for r in data["runs"] if r["contender"] == "run_gepa+length")  # issue 14's front row
    front = variant["extra"]["front"]
    assert front["objectives"] == ["score", "prompt_length"] and front["front"]
    assert set(variant["also_val"]) == {"best", "shortest_within"}
    assert all(0.0 <= v <= 1.0 for v in variant["also_val"].values())
    assert front["shortest_within"]["prompt_length"] <= front["best"]["prompt_length"]
    assert len(load(store)) == len(data["runs"])
    text = markdown(data)
    assert "python -m benchmarks.run --preset smoke" in text and "| dspy.GEPA |" in text

    again = run_preset(PRESETS["smoke"], quiet=True, scale=False, store=store)  # resume: nothing left to run
    assert [r["wall_s"] for r in again["runs"]] == [r["wall_s"] for r in data["runs"]]


def test_scale_run_in_process(server):
    from benchmarks.scale import run_scale

    out = run_scale({"engine": "gepa", "samples": 30, "population": 3, "cap": 20, "base_url": server.base_url})
    assert out["rollouts"] <= 20 and out["peak_rss_mb"] > 0 and out["wall_s"] > 0
