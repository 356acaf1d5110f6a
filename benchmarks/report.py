"""Aggregation over seeds, the targets of issue 6 judged from the measurements, the printed table and
BENCHMARKS.md. Pure functions of the results JSON (so BENCHMARKS.md can be regenerated from it:
`python -m benchmarks.report benchmarks/results/full.json`)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["environment", "markdown", "print_tables", "summarize", "write_markdown"]

_PACKAGES = ("rollouts-dspy", "dspy", "gepa", "optuna", "litellm")


def environment() -> dict[str, Any]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "memory_gb": mem_gb, "python": sys.version.split()[0],
            "platform": platform.platform(), "cpu": platform.processor() or platform.machine(), "versions": versions}


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _to_reach(discoveries: list[list[float]], threshold: float) -> int | None:
    """Rollouts spent when the search first ran a candidate scoring >= threshold on the held-out rows."""
    hits = [r for r, score in sorted(discoveries) if score >= threshold - 1e-12]
    return int(hits[0]) if hits else None


def _group(runs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["world"], r["contender"]), []).append(r)
    return groups


def _row(world: str, name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    row: dict[str, Any] = {"world": world, "contender": name, "kind": runs[0].get("kind"),
                           "ours": runs[0].get("ours"), "seeds": len(ok), "errors": [r["error"] for r in runs
                                                                                    if "error" in r]}
    if not ok:
        return row
    finals = [r["final_val"] for r in ok]
    calls = [r["task_calls"] + r["reflect_calls"] for r in ok]
    latency, concurrency = ok[0]["latency"], ok[0]["concurrency"]
    ideal = [c * latency / concurrency for c in calls]
    walls = [r["wall_s"] for r in ok]
    checkpoints = [c["rollouts"] for c in ok[0]["curve"]]
    curve = []
    for i, point in enumerate(checkpoints):
        vals = [r["curve"][i]["val"] for r in ok if r["curve"][i]["val"] is not None]
        curve.append({"rollouts": point, "val": _mean(vals)})
    row.update(
        final_mean=_mean(finals), final_std=statistics.stdev(finals) if len(finals) > 1 else 0.0,
        final_min=min(finals), final_max=max(finals), rollouts=_mean([r["rollouts"] for r in ok]),
        budget=ok[0]["budget"], task_calls=_mean([r["task_calls"] for r in ok]),
        reflect_calls=_mean([r["reflect_calls"] for r in ok]), tokens=_mean([r["tokens"] for r in ok]),
        wall_s=_mean(walls), ideal_s=_mean(ideal),
        efficiency=_mean([i / w for i, w in zip(ideal, walls, strict=False) if w > 0]),
        cpu_ms_per_rollout=_mean([r["cpu_ms_per_rollout"] for r in ok]),
        peak_rss_mb=max(r["peak_rss_mb"] for r in ok), max_in_flight=max(r.get("max_in_flight") or 0 for r in ok),
        curve=curve, latency=latency, concurrency=concurrency,
    )
    return row


def _target(name: str, met: bool | None, measured: str, note: str = "") -> dict[str, Any]:
    return {"target": name, "met": met, "measured": measured, "note": note}


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def _targets(rows: dict[tuple[str, str], dict[str, Any]], runs: list[dict[str, Any]],
             scale: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    world = "banking77"

    def get(name: str) -> dict[str, Any] | None:
        row = rows.get((world, name))
        return row if row and row.get("final_mean") is not None else None

    for ours, peers in (("run_gepa", ("dspy.GEPA", "gepa.optimize")), ("RolloutsGEPA", ("dspy.GEPA", "gepa.optimize")),
                        ("run_mipro", ("dspy.MIPROv2",)), ("RolloutsMIPRO", ("dspy.MIPROv2",))):
        for peer in peers:
            a, b = get(ours), get(peer)
            met = None if a is None or b is None else a["final_mean"] >= b["final_mean"] - 1e-12
            out.append(_target(f"{ours} final val >= {peer} (mean of seeds, {world})", met,
                               f"{_fmt(a and a['final_mean'])} vs {_fmt(b and b['final_mean'])}"))
    peer = get("dspy.GEPA")
    for ours in ("run_gepa", "RolloutsGEPA"):
        a = get(ours)
        if a is None or peer is None:
            out.append(_target(f"{ours} reaches dspy.GEPA's final val with <= 1/2 its rollouts", None, "n/a"))
            continue
        reach = [_to_reach(r.get("discoveries", []), peer["final_mean"]) for r in runs
                 if r.get("contender") == ours and r.get("world") == world and "error" not in r]
        reached = [x for x in reach if x is not None]
        mean_reach = _mean(reached) if len(reached) == len(reach) else None
        met = mean_reach is not None and mean_reach <= peer["rollouts"] / 2
        out.append(_target(f"{ours} reaches dspy.GEPA's final val with <= 1/2 its rollouts", met,
                           f"reached {peer['final_mean']:.3f} at {reach} rollouts; dspy.GEPA used "
                           f"{peer['rollouts']:.0f}"))
        met = a["wall_s"] <= peer["wall_s"] / 2
        out.append(_target(f"{ours} wall time <= 1/2 of dspy.GEPA's (same budget, latency, concurrency)", met,
                           f"{a['wall_s']:.1f}s vs {peer['wall_s']:.1f}s"))
    for row in rows.values():
        if row.get("ours") and row.get("efficiency") is not None:
            out.append(_target(f"{row['contender']} efficiency >= 0.8 at concurrency {row['concurrency']} "
                               f"({row['world']})", row["efficiency"] >= 0.8, f"{row['efficiency']:.2f}"))
            out.append(_target(f"{row['contender']} CPU <= 5 ms per rollout, litellm included ({row['world']})",
                               row["cpu_ms_per_rollout"] <= 5.0, f"{row['cpu_ms_per_rollout']:.2f} ms"))
    biggest = [s for s in scale if "error" not in s and s.get("samples") == max(
        (x.get("samples") or 0 for x in scale), default=None)]
    for s in biggest:
        out.append(_target(f"peak memory < 500 MB, {s['engine']} at {s['samples']} samples, population "
                           f"{s['population']}", s["peak_rss_mb"] < 500, f"{s['peak_rss_mb']:.0f} MB"))
    return out


def summarize(data: dict[str, Any]) -> dict[str, Any]:
    groups = _group(data["runs"])
    rows = {key: _row(*key, runs) for key, runs in groups.items()}
    return {"summary": list(rows.values()), "targets": _targets(rows, data["runs"], data.get("scale", []))}


# -- rendering -----------------------------------------------------------------------------------------------------
_HEAD = ("world", "contender", "final val (mean ± sd, seeds)", "rollouts / budget", "task calls", "reflect calls",
         "tokens", "wall s", "ideal s", "efficiency", "CPU ms/rollout", "peak MB")


def _summary_cells(row: dict[str, Any]) -> tuple[str, ...]:
    name = row["contender"] + (" (ours)" if row.get("ours") else "")
    if row.get("final_mean") is None:
        why = "; ".join(row.get("errors") or []) or row.get("reason", "")
        return (row["world"], name, f"n/a: {why}", *[""] * (len(_HEAD) - 3))
    return (row["world"], name, f"{row['final_mean']:.3f} ± {row['final_std']:.3f} ({row['seeds']})",
            f"{row['rollouts']:.0f} / {row['budget']}", f"{row['task_calls']:.0f}", f"{row['reflect_calls']:.0f}",
            f"{row['tokens']:.0f}", f"{row['wall_s']:.1f}", f"{row['ideal_s']:.1f}", f"{row['efficiency']:.2f}",
            f"{row['cpu_ms_per_rollout']:.2f}", f"{row['peak_rss_mb']:.0f}")


def _all_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = list(data["summary"])
    for s in data.get("skipped", []):
        rows.append({"world": s["world"], "contender": s["contender"], "ours": s.get("ours"), "reason": s["reason"]})
    return sorted(rows, key=lambda r: (r["world"], not r.get("ours"), r["contender"]))


def _curve_table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rows = [r for r in _all_rows(data) if r.get("curve")]
    points = sorted({c["rollouts"] for r in rows for c in r["curve"]})
    head = ["world", "contender", *[f"@{p}" for p in points]]
    body = []
    for r in rows:
        by = {c["rollouts"]: c["val"] for c in r["curve"]}
        body.append([r["world"], r["contender"], *[_fmt(by[p]) if p in by else "" for p in points]])
    return head, body


def _scale_table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["engine", "samples", "population", "rollouts (cap)", "wall s", "CPU ms/rollout", "peak MB", "stopped by"]
    body = []
    for s in data.get("scale", []):
        if "error" in s:
            body.append([str(s.get("engine")), str(s.get("samples")), str(s.get("population")), "error",
                         s["error"][:60], "", "", ""])
            continue
        body.append([s["engine"], str(s["samples"]), str(s["population"]), f"{s['rollouts']} ({s['cap']})",
                     f"{s['wall_s']:.1f}", _fmt(s["cpu_ms_per_rollout"], ".2f"), f"{s['peak_rss_mb']:.0f}",
                     s["stop_reason"]])
    return head, body


def print_tables(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    tables = [("Results", list(_HEAD), [list(_summary_cells(r)) for r in _all_rows(data)]),
              ("Held-out validation score vs rollouts used (best prompt found so far, mean of seeds)",
               *_curve_table(data)),
              ("Scale (latency 0)", *_scale_table(data)),
              ("Targets", ["target", "met", "measured"],
               [[t["target"], {True: "yes", False: "NO", None: "n/a"}[t["met"]], t["measured"]]
                for t in data["targets"]])]
    for title, head, body in tables:
        if not body:
            continue
        table = Table(title=title)
        for column in head:
            table.add_column(column)
        for row in body:
            table.add_row(*row)
        console.print(table)


def _md_table(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)


def _intents(setup: dict[str, Any]) -> str:
    return f" (queries of the {setup['n_intents']} most frequent intents)" if setup.get("n_intents") else ""


def markdown(data: dict[str, Any], notes: str = "") -> str:
    env = data["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    settings = data["settings"]
    worlds = "; ".join(f"{k}{_intents(v)}: {v['n_train']} train / {v['n_dev']} dev / {v['n_val']} held-out rows, "
                       f"budget {v['budget']} rollouts" for k, v in settings["worlds"].items())
    parts = [
        "# Benchmarks",
        "",
        "Generated by the harness in `benchmarks/` (do not edit the tables by hand). Reproduce with:",
        "",
        f"    {data['command']}",
        "",
        f"Machine: {env['nproc']} cores, {env['memory_gb']} GB, {env['platform']}, Python {env['python']}. "
        f"Versions: {versions}. Total run time: {data['total_seconds']:.0f} s.",
        "",
        f"Settings: seeds {settings['seeds']}, simulated latency {settings['latency']} s per call, concurrency "
        f"{settings['concurrency']} for every contender; {worlds}.",
        "",
        "## Results",
        "",
        _md_table(list(_HEAD), [list(_summary_cells(r)) for r in _all_rows(data)]),
        "",
        "## Held-out validation score against rollouts used",
        "",
        "Best held-out score among the candidates a contender had run by that many rollouts (mean over seeds).",
        "",
        _md_table(*_curve_table(data)),
        "",
        "## Scale",
        "",
        _md_table(*_scale_table(data)),
        "",
        "## Targets",
        "",
        _md_table(["target", "met", "measured"],
                  [[t["target"], {True: "yes", False: "**no**", None: "n/a"}[t["met"]], t["measured"]]
                   for t in data["targets"]]),
        "",
    ]
    if notes:
        parts += [notes.strip(), ""]
    return "\n".join(parts)


def write_markdown(data: dict[str, Any], path: Path) -> None:
    notes_file = Path(__file__).resolve().parent / "NOTES.md"
    notes = notes_file.read_text() if notes_file.exists() else ""
    path.write_text(markdown(data, notes))


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "full.json")
    loaded = json.loads(source.read_text())
    print_tables(loaded)
    write_markdown(loaded, Path(__file__).resolve().parents[1] / "BENCHMARKS.md")
