"""Issue 14's multi-objective row: the front's shortest prompt within 1 pt of the best, against the best. Pure
functions of the report data (the `objectives` suite's runs of `run_gepa+length`, see `contenders/front.py`).

The issue sets no threshold, so the row is a measurement ("reported"), never met / not met. Lengths are the
prompt's characters (the instructions the search writes), as the engine measures them for its front; held-out
scores are the harness's own, on the 200 held-out rows, outside the budget.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

__all__ = ["FRONT_CONTENDER", "FRONT_SUITE", "front_cell", "front_runs", "front_table"]

FRONT_SUITE = "objectives"
FRONT_CONTENDER = "run_gepa+length"


def front_runs(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per seed with a measured front: both candidates' prompt length, compared score and held-out score."""
    out = []
    for run in runs:
        front, held_out = (run.get("extra") or {}).get("front") or {}, run.get("also_val") or {}
        if "unknown" in front or not front or not {"best", "shortest_within"} <= set(held_out):
            continue
        best, pick = front["best"], front["shortest_within"]
        out.append({"seed": run["seed"], "compared": front["compared"], "front_size": front["front_size"],
                    "compared_rows": front.get("compared_rows"), "front": front.get("front") or [],
                    "best_id": best["id"], "best_length": best["prompt_length"], "best_score": best["score"],
                    "best_val": held_out["best"], "pick_id": pick["id"], "pick_length": pick["prompt_length"],
                    "pick_score": pick["score"], "pick_val": held_out["shortest_within"],
                    "chosen_id": front["chosen_id"], "final_val": run["final_val"]})
    return out


def front_cell(runs: Sequence[dict[str, Any]]) -> str | None:
    """The goal row's measurement, a mean over the seeds with a front; None when no seed has one."""
    measured = front_runs(runs)
    if not measured:
        return None

    def mean(key: str) -> float:
        return statistics.fmean(m[key] for m in measured)

    missing = len(runs) - len(measured)
    note = f"; {missing} seed(s) without a front" if missing else ""
    return (f"front's shortest prompt within 1 pt of the best: {mean('pick_length'):,.0f} chars vs "
            f"{mean('best_length'):,.0f} chars (held-out {mean('pick_val'):.3f} vs {mean('best_val'):.3f}), "
            f"mean of {len(measured)} seeds{note}")


def _row(data: dict[str, Any]) -> dict[str, Any] | None:
    suite = data["suites"].get(FRONT_SUITE)
    if suite is None:
        return None
    return next((r for r in data["rows"] if r["suite"] == FRONT_SUITE and r["contender"] == FRONT_CONTENDER
                 and r.get("runs")), None)


def front_goal(data: dict[str, Any], columns: Sequence[str]) -> list[str]:
    """The goal row, its measurement in run_gepa's column of `columns` (the goal table's contenders)."""
    suite, row = data["suites"].get(FRONT_SUITE), _row(data)
    where = "—" if suite is None else f"{suite['worlds'][0]}, {suite['budgets'][0]}"
    cell = None if row is None else front_cell(row["runs"])
    if cell is None:
        cell = ("not in this preset" if suite is None else
                f"not measured yet (`python -m benchmarks.run --preset quality --suites {FRONT_SUITE}`)")
    cells = [""] * len(columns)
    cells[list(columns).index("run_gepa")] = cell
    return ["multi-objective (run_gepa with objectives=('prompt_length',)): the front's shortest prompt within "
            "1 pt of the best, against the best (issue 14)", where, *cells,
            "reported" if row is not None and front_runs(row["runs"]) else "n/a"]


def front_table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per seed: the front, its best-score candidate and the pick, the result's own best_template, and plain
    run_gepa's held-out score on the same seed (quality suite, same world and budget) when it is stored."""
    row = _row(data)
    if row is None:
        return [], []
    plain = {r["seed"]: r["final_val"] for q in data["rows"] if q["suite"] == "quality"
             and (q["contender"], q["world"], q["budget"]) == ("run_gepa", row["world"], row["budget"])
             for r in q.get("runs", [])}
    head = ["seed", "candidates compared (on front), rows", "the front: compared score @ chars",
            "best score: id, chars, compared, held-out", "shortest within 1 pt: id, chars, compared, held-out",
            "result's best_template: id, held-out", "run_gepa (score only) held-out"]
    body = [[str(m["seed"]), f"{m['compared']} ({m['front_size']}), {m['compared_rows']} rows",
             "; ".join(f"{p['score']:.3f} @ {p['prompt_length']:,.0f}" for p in m["front"]),
             f"{m['best_id']}, {m['best_length']:,.0f}, {m['best_score']:.3f}, {m['best_val']:.3f}",
             f"{m['pick_id']}, {m['pick_length']:,.0f}, {m['pick_score']:.3f}, {m['pick_val']:.3f}",
             f"{m['chosen_id']}, {m['final_val']:.3f}",
             f"{plain[m['seed']]:.3f}" if m["seed"] in plain else "n/a"] for m in front_runs(row["runs"])]
    return head, body
