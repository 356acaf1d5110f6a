"""Issue 14's multi-objective row: which candidate the benchmark picks from a run's front (the shortest prompt
within 1 pt of the best), how the row and the per-seed table render it, and that the `objectives` suite is planned
and stored apart from the issue's grid. Pure functions; no optimizer runs here (the smoke preset runs the
contender end to end)."""

from __future__ import annotations

import pytest

from benchmarks import goals
from benchmarks.contenders.front import front_summary, shortest_within
from benchmarks.front_report import front_cell, front_table
from benchmarks.presets import PRESETS
from benchmarks.run import estimate_seconds, plan
from benchmarks.store import run_key
from rollouts_dspy.prompt_optimization.objectives import ObjectiveFront


def _front(points: dict[str, tuple[float, float]]) -> dict:
    """The engine's own front over (score, prompt_length) points, as the result's `front.to_dict()`."""
    return ObjectiveFront.of({cid: {"score": s, "prompt_length": n, "tokens": 0.0} for cid, (s, n) in points.items()},
                             ("prompt_length",)).to_dict()


# -- the pick ------------------------------------------------------------------------------------------------------
def test_the_pick_is_the_shortest_front_prompt_within_one_point_of_the_best_inclusive():
    front = _front({"c0": (0.20, 19), "c1": (0.43, 1430), "c2": (0.42, 612), "c3": (0.425, 900), "c4": (0.40, 300)})
    assert shortest_within(front) == "c2"  # exactly 1 pt below: in
    assert shortest_within(_front({"c1": (0.13, 1430), "c2": (0.12, 612)})) == "c2"  # 0.13 - 0.01 > 0.12 in floats
    assert shortest_within(front, tolerance=0.005) == "c3"
    assert shortest_within(front, tolerance=0.0) == "c1"
    assert shortest_within(front, tolerance=0.5) == "c0"


def test_a_shorter_prompt_more_than_one_point_below_is_not_picked():
    front = _front({"c1": (0.43, 1430), "c2": (0.4199, 612)})
    assert shortest_within(front) == "c1"


def test_equal_length_goes_to_the_higher_score_and_an_empty_front_to_none():
    # both 612 chars: c3 dominates c2, so c2 is not on the front; the pick must still be the better one
    front = _front({"c1": (0.43, 1430), "c2": (0.421, 612), "c3": (0.425, 612)})
    assert shortest_within(front) == "c3"
    hand_made = {"points": {"a": {"score": 0.42, "prompt_length": 612.0},
                            "b": {"score": 0.425, "prompt_length": 612.0}}, "front": ["a", "b"]}
    assert shortest_within(hand_made) == "b"
    assert shortest_within({"points": {}, "front": [], "best": {}}) is None


def test_the_summary_names_the_best_the_pick_and_the_results_own_choice():
    front = _front({"c0": (0.20, 19), "c1": (0.43, 1430), "c2": (0.42, 612)})
    summary = front_summary(front, "c1", compared_rows=60)
    assert summary["best"] == {"id": "c1", "score": 0.43, "prompt_length": 1430.0}
    assert summary["shortest_within"] == {"id": "c2", "score": 0.42, "prompt_length": 612.0}
    assert (summary["front_size"], summary["compared"], summary["compared_rows"], summary["chosen_id"]) == (3, 3, 60,
                                                                                                         "c1")
    assert "unknown" in front_summary({"points": {}, "front": [], "best": {}}, "c0", compared_rows=0)


# -- the row and the table -----------------------------------------------------------------------------------------
def _run(seed, best, pick, best_val, pick_val, final=None):
    front = _front({"b": best, "p": pick})
    return {"seed": seed, "final_val": best_val if final is None else final,
            "also_val": {"best": best_val, "shortest_within": pick_val},
            "extra": {"front": front_summary(front, "b", compared_rows=60)}}


def _data(runs, suites=("quality", "objectives"), plain=()):
    suite = {"name": "objectives", "worlds": ["banking77-20"], "budgets": [1500], "concurrency": 16, "latency": 0.05}
    quality = {**suite, "name": "quality", "budgets": [1500, 3000]}
    rows = [{"suite": "objectives", "world": "banking77-20", "budget": 1500, "contender": "run_gepa+length",
             "runs": runs, "final_mean": 0.4}] if runs else []
    if plain:
        rows.append({"suite": "quality", "world": "banking77-20", "budget": 1500, "contender": "run_gepa",
                     "runs": [{"seed": s, "final_val": v} for s, v in plain]})
    by_name = {"quality": quality, "objectives": suite}
    return {"rows": rows, "suites": {n: by_name[n] for n in suites}, "scale": []}


def test_the_row_reports_the_mean_of_seeds_in_run_gepas_column_and_says_reported():
    runs = [_run(0, (0.43, 1430), (0.42, 600), 0.43, 0.41), _run(1, (0.50, 1430), (0.50, 624), 0.43, 0.41)]
    row = goals._quality_goals(_data(runs))[-1]
    assert row[0].startswith("multi-objective") and row[1] == "banking77-20, 1500" and row[-1] == "reported"
    assert row[2 + goals.ALL.index("run_gepa")] == ("front's shortest prompt within 1 pt of the best: 612 chars vs "
                                                    "1,430 chars (held-out 0.410 vs 0.430), mean of 2 seeds")
    assert sum(bool(c) for c in row[2:-1]) == 1


def test_a_seed_without_a_front_is_counted_out_and_said():
    broken = {"seed": 2, "final_val": 0.3, "also_val": {}, "extra": {"front": {"unknown": "no front"}}}
    cell = front_cell([_run(0, (0.43, 1430), (0.42, 600), 0.43, 0.41), broken])
    assert cell.endswith("mean of 1 seeds; 1 seed(s) without a front") and "600 chars vs 1,430" in cell
    assert front_cell([broken]) is None


@pytest.mark.parametrize("data, shown", [
    (_data([], suites=("quality",)), "not in this preset"),
    (_data([]), "not measured yet"),
])
def test_the_row_is_na_until_measured(data, shown):
    row = goals._quality_goals(data)[-1]
    assert row[-1] == "n/a" and shown in row[2 + goals.ALL.index("run_gepa")]


def test_the_per_seed_table_shows_the_front_both_candidates_and_plain_run_gepa_on_the_same_seed():
    runs = [_run(0, (0.43, 1430), (0.42, 600), 0.43, 0.41), _run(1, (0.50, 1430), (0.50, 624), 0.43, 0.41)]
    head, body = front_table(_data(runs, plain=[(0, 0.395)]))
    assert len(head) == len(body[0]) and [r[0] for r in body] == ["0", "1"]
    assert body[0][1] == "2 (2), 60 rows" and body[0][2] == "0.430 @ 1,430; 0.420 @ 600"
    assert body[0][3] == "b, 1,430, 0.430, 0.430" and body[0][4] == "p, 600, 0.420, 0.410"
    assert body[0][-1] == "0.395" and body[1][-1] == "n/a"
    assert front_table(_data([])) == ([], [])


# -- planning and storing ------------------------------------------------------------------------------------------
def test_the_objectives_suite_runs_only_the_variant_and_the_grid_never_runs_it(banking77_dir):
    for preset in ("quality", "full"):
        specs, _ = plan(PRESETS[preset], {"seeds": {0}})
        variant = [s for s in specs if s["contender"] == "run_gepa+length"]
        assert [(s["suite"], s["world"], s["budget"], s["concurrency"], s["latency"]) for s in variant] == [
            ("objectives", "banking77-20", 1500, 16, 0.05)]
        assert {s["contender"] for s in specs if s["suite"] == "objectives"} == {"run_gepa+length"}
    plain = next(s for s in specs if s["contender"] == "run_gepa" and s["suite"] == "quality"
                 and (s["world"], s["budget"]) == ("banking77-20", 1500))
    assert run_key(variant[0]) != run_key(plain)  # stored and resumed apart from plain run_gepa
    smoke, _ = plan(PRESETS["smoke"], {})
    assert "run_gepa+length" in {s["contender"] for s in smoke}


def test_plan_estimates_the_variant_from_plain_run_gepa_until_it_has_its_own_runs():
    spec = {"suite": "objectives", "world": "banking77-20", "budget": 1500, "contender": "run_gepa+length",
            "concurrency": 16, "latency": 0.05}
    plain = {"suite": "quality", "world": "banking77-20", "budget": 1500, "contender": "run_gepa", "seed": 0,
             "concurrency": 16, "latency": 0.05, "wall_s": 10.0, "heldout_eval_s": 0.5}
    assert estimate_seconds(spec, {}) == (pytest.approx(33.0), False)  # the budget guess
    assert estimate_seconds(spec, {"a": plain}) == (pytest.approx(10.5), True)
    own = {**plain, "suite": "objectives", "contender": "run_gepa+length", "wall_s": 20.0, "heldout_eval_s": 1.0}
    assert estimate_seconds(spec, {"a": plain, "b": own}) == (pytest.approx(21.0), True)
