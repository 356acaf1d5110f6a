"""The goal rows of issue 14 (search quality) and issue 12 (wall clock), judged from the aggregated rows.

Each goal row shows ours and the peers side by side and says met / NOT met / n/a (n/a: a measurement the goal needs
is missing, e.g. fewer than six seeds stored, a world not run, or a measurement not available yet); a row the issue
gives no threshold (the multi-objective front, `front_report.py`) says "reported". Pure functions of the report
data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .front_report import front_goal

__all__ = ["goal_tables", "latency_table"]

GEPA_OURS = ("RolloutsGEPA", "run_gepa")
MIPRO_OURS = ("RolloutsMIPRO", "run_mipro")
ALL = ("RolloutsGEPA", "run_gepa", "dspy.GEPA", "gepa.optimize", "RolloutsMIPRO", "run_mipro", "dspy.MIPROv2")
SEEDS_NEEDED = 6
LATENCIES = (0.05, 0.5, 2.0)
BASELINE = Path(__file__).resolve().parent / "baseline.json"
HEAD14 = ["goal", "world, budget", *ALL, "met"]


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**NOT met**", None: "n/a"}[met]


class Rows:
    """Lookup of aggregated rows by (suite, world, budget, contender)."""

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.by = {(r["suite"], r["world"], r["budget"], r["contender"]): r for r in rows}

    def get(self, suite: str, world: str, budget: int, name: str) -> dict[str, Any] | None:
        row = self.by.get((suite, world, budget, name))
        return row if row and row.get("final_mean") is not None else None

    def cells(self, suite: str, world: str, budget: int, show: Callable[[dict[str, Any]], str]) -> list[str]:
        return [show(r) if (r := self.get(suite, world, budget, n)) else "" for n in ALL]


def _gain(row: dict[str, Any]) -> str:
    over = f", {row['over_budget']} over budget" if row["over_budget"] else ""
    return f"{row['gain_mean']:+.1f} ({len(row['seeds'])} seeds, {row['task_calls']:.0f} calls{over})"


def _gain_goal(rows: Rows, goal: str, world: str, budget: int, names: Sequence[str], floor: float) -> list[str]:
    found = [rows.get("quality", world, budget, n) for n in names]
    if any(r is None or len(r["seeds"]) < SEEDS_NEEDED for r in found):
        met = None
    else:
        met = all(r["gain_mean"] >= floor and r["over_budget"] == 0 for r in found)  # type: ignore[index]
    return [goal, f"{world}, {budget}", *rows.cells("quality", world, budget, _gain), _verdict(met)]


def _mipro_goal(rows: Rows, world: str, budget: int) -> list[str]:
    peer = rows.get("quality", world, budget, "dspy.MIPROv2")
    found = [rows.get("quality", world, budget, n) for n in MIPRO_OURS]
    met = None
    if peer is not None and all(r is not None and len(r["seeds"]) >= SEEDS_NEEDED for r in found):
        met = all(r["gain_mean"] >= peer["gain_mean"] + 3.0 for r in found)  # type: ignore[index]
    goal = "MIPRO (both front doors) >= dspy.MIPROv2's gain + 3 pts at the same task calls"
    if peer is not None:
        goal += f" (MIPROv2 used {peer['task_calls']:.0f} calls)"
    return [goal, f"{world}, {budget}", *rows.cells("quality", world, budget, _gain), _verdict(met)]


def reach(discoveries: Sequence[Sequence[float]], threshold: float) -> int | None:
    """Rollouts spent when a search first ran a candidate scoring >= threshold on the held-out rows."""
    hits = [r for r, score in sorted(discoveries) if score >= threshold - 1e-12]
    return int(hits[0]) if hits else None


Judge = Callable[[dict[str, Any], dict[str, Any]], tuple[str, bool | None]]


def _against_peer(lookup: Callable[[str], dict[str, Any] | None], peer: dict[str, Any] | None,
                  judge: Judge) -> tuple[list[str], str]:
    """Each of our GEPA front doors judged against the peer's row: (cells, verdict); n/a when a row is missing
    or a judgement is (None)."""
    cells = [""] * len(ALL)
    verdicts: list[bool | None] = []
    for name in GEPA_OURS:
        ours = lookup(name)
        if ours is None or peer is None:
            verdicts.append(None)
            continue
        cells[ALL.index(name)], verdict = judge(ours, peer)
        verdicts.append(verdict)
    return cells, _verdict(None if None in verdicts else all(verdicts))


def _reached(ours: dict[str, Any], peer: dict[str, Any]) -> tuple[str, bool | None]:
    """Per seed (same rows for both): the rollouts at which ours first ran a prompt as good on held-out as the
    peer's final one, as a fraction of the rollouts the peer used; met when every seed is <= 50%."""
    theirs = {r["seed"]: r for r in peer["runs"]}
    fractions = []
    for run in ours["runs"]:
        other = theirs.get(run["seed"])
        if other is not None:
            hit = reach(run["discoveries"], other["final_val"])
            fractions.append(None if hit is None else hit / max(other["rollouts"], 1))
    shown = "seeds: " + " ".join("never" if f is None else f"{100 * f:.0f}%" for f in fractions)
    if len(fractions) < SEEDS_NEEDED:
        return shown, None
    return shown, all(f is not None and f <= 0.5 for f in fractions)


def _reach_goal(rows: Rows, world: str, budget: int) -> list[str]:
    peer = rows.get("quality", world, budget, "dspy.GEPA")
    cells, verdict = _against_peer(lambda n: rows.get("quality", world, budget, n), peer, _reached)
    if peer is not None:
        cells[ALL.index("dspy.GEPA")] = f"final {peer['final_mean']:.3f}, {peer['rollouts']:.0f} rollouts"
    return ["our GEPA reaches dspy.GEPA's final held-out score with <= 50% of its rollouts (first prompt run "
            "that scores as well, per seed)", f"{world}, {budget}", *cells, verdict]


def _half_budget_goal(rows: Rows, world: str, budgets: Sequence[int]) -> list[str] | None:
    """The strict form: our final prompt at half the budget against dspy.GEPA's final at the full budget."""
    pairs = [(b, b * 2) for b in budgets if b * 2 in budgets]
    if not pairs:
        return None
    half, full = pairs[-1]
    peer = rows.get("quality", world, full, "dspy.GEPA")

    def judge(ours: dict[str, Any], peer: dict[str, Any]) -> tuple[str, bool | None]:
        enough = len(ours["seeds"]) >= SEEDS_NEEDED
        return f"final {ours['final_mean']:.3f} at {half}", (ours["final_mean"] >= peer["final_mean"]) if enough \
            else None

    cells, verdict = _against_peer(lambda n: rows.get("quality", world, half, n), peer, judge)
    if peer is not None:
        cells[ALL.index("dspy.GEPA")] = f"final {peer['final_mean']:.3f} at {full} ({peer['rollouts']:.0f} used)"
    return ["our GEPA's final prompt with half the budget >= dspy.GEPA's final (strict form)",
            f"{world}, {half} vs {full}", *cells, verdict]


def _calculator_goal(data: dict[str, Any], rows: Rows) -> list[str]:
    cells = [""] * len(ALL)
    verdicts = []
    for (suite, _world, _budget, name), row in rows.by.items():
        if suite != "calculator" or row.get("final_mean") is None:
            continue
        cells[ALL.index(name)] = f"{row['final_mean']:.3f} ({len(row['seeds'])} seeds)"
        verdicts.append(row["final_mean"] >= 1.0 - 1e-9)
    met = None if not verdicts else all(verdicts)
    return ["no regression on the calculator tool-use world (held-out 1.000)", "calculator, 120", *cells,
            _verdict(met)]


def _quality_goals(data: dict[str, Any]) -> list[list[str]]:
    rows = Rows(data["rows"])
    quality = data["suites"].get("quality")
    if quality is None:
        return []
    budgets = tuple(quality["budgets"])
    out = [
        _gain_goal(rows, "GEPA (both front doors) >= +8 pts mean held-out, never over budget", "banking77-20",
                   3000, GEPA_OURS, 8.0),
        _gain_goal(rows, "GEPA (both front doors) >= +5 pts mean held-out, never over budget", "banking77-20",
                   1500, GEPA_OURS, 5.0),
        _gain_goal(rows, "GEPA (both front doors) >= +3 pts on all 77 intents", "banking77-77", 3000, GEPA_OURS,
                   3.0),
        *[_mipro_goal(rows, "banking77-20", b) for b in budgets],
        *[_reach_goal(rows, w, b) for w in quality["worlds"] for b in budgets],
    ]
    out += [g for w in quality["worlds"] if (g := _half_budget_goal(rows, w, budgets)) is not None]
    if "calculator" in data["suites"]:
        out.append(_calculator_goal(data, rows))
    out.append(front_goal(data, ALL))
    return out


def _baseline() -> dict[str, Any]:
    try:
        return json.loads(BASELINE.read_text())
    except (OSError, ValueError):
        return {}


def _wall_goal(rows: Rows, suite: dict[str, Any], world: str, budget: int, ours: Sequence[str],
               peer: str) -> list[str]:
    """Wall time <= 0.5x the peer's at the same cell, with held-out quality no worse than the baseline
    (our code when the issue was filed, `benchmarks/baseline.json`) in the same cell."""
    base = _baseline()
    name_of_suite = suite["name"]
    theirs = rows.get(name_of_suite, world, budget, peer)
    cells = [""] * len(ALL)
    verdicts: list[bool | None] = []
    for name in ours:
        row = rows.get(name_of_suite, world, budget, name)
        if row is None or theirs is None:
            verdicts.append(None)
            continue
        ratio = row["wall_s"] / theirs["wall_s"]
        reference = base.get("final", {}).get(f"{name_of_suite}|{world}|{budget}|{name}")
        quality = None if reference is None else row["final_mean"] >= reference - 1e-9
        note = "" if reference is None else f", held-out {row['final_mean']:.3f} vs baseline {reference:.3f}"
        # No schedule beats calls x latency / concurrency (every slot busy all the time): that floor, as a
        # fraction of the peer's wall time, is the best ratio this many calls allow.
        floor = row["efficiency"] * row["wall_s"] / theirs["wall_s"]
        cells[ALL.index(name)] = f"{row['wall_s']:.1f} s = {ratio:.2f}x (floor {floor:.2f}x){note}"
        verdicts.append(None if quality is None else (ratio <= 0.5 and quality))
    if theirs is not None:
        cells[ALL.index(peer)] = f"{theirs['wall_s']:.1f} s (efficiency {theirs['efficiency']:.2f})"
    met = None if None in verdicts else all(verdicts)
    what = "GEPA" if peer == "dspy.GEPA" else "MIPRO"
    return [f"{what} wall time <= 0.5x {peer}'s, held-out no worse than the baseline", f"{world}, {budget}, "
            f"{suite['concurrency']} in flight, {suite['latency']} s", *cells, _verdict(met)]


def _efficiency_goal(rows: Rows, world: str, budget: int) -> list[str]:
    cells = rows.cells("wallclock", world, budget, lambda r: fmt2(r["efficiency"]))
    found = [rows.get("wallclock", world, budget, n) for n in (*GEPA_OURS, *MIPRO_OURS)]
    met = None if any(r is None for r in found) else all(r["efficiency"] >= 0.6 for r in found)  # type: ignore
    return ["efficiency (calls x latency / concurrency / wall) >= 0.6 at 32 in flight", f"{world}, {budget}", *cells,
            _verdict(met)]


def fmt2(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _overhead_goals(data: dict[str, Any]) -> list[list[str]]:
    """CPU per task call: the whole rollouts-API run (the worker's CPU over its task calls, every quality cell) is
    the verdict, with the LLM layer's own share beside it; memory: the scale grid's 10,000-sample runs (a
    rollouts-API process), with the LLM layer's floor beside it; CLI start-up. The LLM-layer figures and the CLI
    times come from `benchmarks/llm_overhead.py` (via `benchmarks/overhead.py`) once it is in the tree."""
    overhead = data.get("overhead") or {}
    session = overhead.get("session") or {}
    pending = "not available yet (benchmarks/llm_overhead.py is not on main)"
    cpu = [r for r in data["rows"] if r["contender"] in ("run_gepa", "run_mipro") and r["suite"] == "quality"
           and r.get("cpu_ms_per_task_call") is not None]
    cells = [""] * len(ALL)
    for name in ("run_gepa", "run_mipro"):
        values = [r["cpu_ms_per_task_call"] for r in cpu if r["contender"] == name]
        if values:
            cells[ALL.index(name)] = f"{max(values):.2f} ms (worst cell), mean {sum(values) / len(values):.2f}"
    layer = pending if not session else f"LLM layer alone: {session['cpu_ms_per_call']:.2f} ms per call"
    cells[ALL.index("RolloutsGEPA")] = layer
    met = None if not cpu else all(r["cpu_ms_per_task_call"] <= 3.0 for r in cpu)
    big = [s for s in data.get("scale", []) if "error" not in s and s.get("samples") == 10_000]
    mem = [""] * len(ALL)
    for s in big:
        name = "run_gepa" if s["engine"] == "gepa" else "run_mipro"
        mem[ALL.index(name)] = f"{s['peak_rss_mb']:.0f} MB (population {s['population']})"
    mem[ALL.index("RolloutsGEPA")] = pending if not session else (
        f"LLM layer alone: {session['peak_rss_mb']:.0f} MB peak, {session['rss_after_import_mb']:.0f} MB after imports")
    mem_met = None if not big else all(s["peak_rss_mb"] < 150 for s in big)
    cli = overhead.get("cli") or []
    cli_cells = [pending] if not cli else ["; ".join(f"{c['command']}: {c['wall_s']:.2f} s" for c in cli)]
    cli_met = None if not cli else all(c["wall_s"] < 1.0 for c in cli)
    return [
        ["<= 3 ms CPU per task call on the rollouts API, litellm included (whole run: worker CPU / task calls)",
         "quality suite, every cell", *cells, _verdict(met)],
        ["< 150 MB peak RSS for a run of 10,000 samples (rollouts API, scale grid)", "10,000 samples", *mem,
         _verdict(mem_met)],
        ["`rollouts-dspy --help` / `show` < 1 s (no LLM library imported)", "best of 3", *cli_cells,
         *[""] * (len(ALL) - 1), _verdict(cli_met)],
    ]


def _wallclock_goals(data: dict[str, Any]) -> list[list[str]]:
    rows = Rows(data["rows"])
    out = []
    for suite in ("wallclock", "quality"):
        s = data["suites"].get(suite)
        if s is None:
            continue
        for world in s["worlds"]:
            for budget in s["budgets"]:
                out.append(_wall_goal(rows, s, world, budget, GEPA_OURS, "dspy.GEPA"))
                out.append(_wall_goal(rows, s, world, budget, MIPRO_OURS, "dspy.MIPROv2"))
    if "wallclock" in data["suites"]:
        s = data["suites"]["wallclock"]
        out += [_efficiency_goal(rows, w, b) for w in s["worlds"] for b in s["budgets"]]
    return out + _overhead_goals(data)


def goal_tables(data: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    return [("Goals of issue 14: search quality (held-out gain in points over the weak start, mean of seeds)",
             HEAD14, _quality_goals(data)),
            ("Goals of issue 12: wall clock, efficiency, CPU and memory", HEAD14, _wallclock_goals(data))]


def latency_table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per contender on the 20-intent world at its smallest budget: dependent rounds, the measured wall time,
    and wall time at 0.05 / 0.5 / 2 s per call = (measured wall - rounds x measured latency) + rounds x latency.
    The value at the latency actually run is the measurement itself (marked *)."""
    head = ["suite (in flight, latency run)", "world, budget", "contender", "calls", "dependent rounds",
            "CPU-bound part s", *[f"wall at {lat} s/call" for lat in LATENCIES], "x dspy.GEPA at 2 s"]
    body = []
    for suite in ("quality", "wallclock"):
        s = data["suites"].get(suite)
        if s is None or "banking77-20" not in s["worlds"]:
            continue
        budget = min(s["budgets"])
        rows = [r for r in data["rows"] if r["suite"] == suite and r["world"] == "banking77-20"
                and r["budget"] == budget and r.get("rounds")]
        walls = {r["contender"]: _project(r, 2.0) for r in rows}
        for r in rows:
            projected = [_project(r, lat) for lat in LATENCIES]
            shown = [f"{w:.1f}{'*' if abs(lat - r['latency']) < 1e-9 else ''}" for w, lat in zip(projected, LATENCIES,
                                                                                                strict=True)]
            peer = walls.get("dspy.GEPA")
            body.append([f"{suite} ({r['concurrency']}, {r['latency']} s)", f"banking77-20, {budget}", r["contender"],
                         f"{r['task_calls'] + r['reflect_calls']:.0f}", f"{r['rounds']:.0f}",
                         f"{max(0.0, r['wall_s'] - r['rounds'] * r['latency']):.1f}", *shown,
                         "n/a" if not peer else f"{walls[r['contender']] / peer:.2f}"])
    return head, body


def _project(row: dict[str, Any], latency: float) -> float:
    if abs(latency - row["latency"]) < 1e-9:
        return row["wall_s"]
    return max(0.0, row["wall_s"] - row["rounds"] * row["latency"]) + row["rounds"] * latency
