"""Aggregation over seeds, the tables, and BENCHMARKS.md. Pure functions of the stored runs, so the report can be
rebuilt from a results file alone: `python -m benchmarks.run --preset full --report-only --markdown`.

Only REPORT seeds (0-5) are aggregated for a reporting preset; the tuning preset aggregates its own seeds and is
never written to BENCHMARKS.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .front_report import front_table
from .goals import goal_tables, latency_table
from .presets import REPORT_SEEDS, Preset

__all__ = ["build", "environment", "markdown", "print_tables", "write_markdown"]

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
            "platform": platform.platform(), "versions": versions}


def mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


CELL = ("suite", "world", "budget", "contender")


def _row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    first = runs[0]
    row: dict[str, Any] = {k: first.get(k) for k in (*CELL, "kind", "ours", "concurrency", "latency")}
    row.update(seeds=sorted(r["seed"] for r in ok), errors=[f"seed {r['seed']}: {r['error']}" for r in runs
                                                             if "error" in r],
               commits=sorted({str(r.get("commit")) for r in runs}),
               codes=sorted({str(r.get("code_hash")) for r in runs}), runs=ok)
    if not ok:
        return row
    calls = [r["task_calls"] + r["reflect_calls"] for r in ok]
    ideal = [c * r["latency"] / r["concurrency"] for c, r in zip(calls, ok, strict=True)]
    gains = [100 * r["gain"] for r in ok]
    finals = [r["final_val"] for r in ok]
    row.update(
        start_mean=mean([r["start_val"] for r in ok]), final_mean=mean(finals), final_sd=_sd(finals),
        gain_mean=mean(gains), gain_sd=_sd(gains), rollouts=mean([r["rollouts"] for r in ok]),
        rollouts_max=max(r["rollouts"] for r in ok), task_calls=mean([r["task_calls"] for r in ok]),
        task_calls_max=max(r["task_calls"] for r in ok), reflect_calls=mean([r["reflect_calls"] for r in ok]),
        wall_s=mean([r["wall_s"] for r in ok]), rounds=mean([r.get("rounds") for r in ok]),
        efficiency=mean([i / r["wall_s"] for i, r in zip(ideal, ok, strict=True) if r["wall_s"] > 0]),
        cpu_ms_per_task_call=mean([r.get("cpu_ms_per_task_call") for r in ok]),
        cpu_ms_per_rollout=mean([r.get("cpu_ms_per_rollout") for r in ok]),
        peak_rss_mb=max(r["peak_rss_mb"] for r in ok),
        over_budget=sum(1 for r in ok if r["rollouts"] > r["budget"]),
        curve=[{"rollouts": c["rollouts"], "val": mean([r["curve"][i]["val"] for r in ok])}
               for i, c in enumerate(ok[0]["curve"])],
    )
    return row


def build(preset: Preset, records: list[dict[str, Any]], skipped: list[dict[str, Any]],
          seconds: float | None) -> dict[str, Any]:
    """The report data: the preset's runs (report seeds only, unless tuning), rows per cell, goal tables."""
    suites = {s.name: s for s in preset.suites}
    seeds_ok = (lambda s: True) if preset.tuning else (lambda s: s in REPORT_SEEDS)
    runs = [r for r in records if r.get("mode") is None and r.get("suite") in suites and seeds_ok(r.get("seed"))
            and r.get("world") in suites[r["suite"]].worlds and r.get("budget") in suites[r["suite"]].budgets]
    scale = [r for r in records if r.get("mode") == "scale"]
    overhead = next((r for r in records if r.get("mode") == "overhead"), None)
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(tuple(r.get(k) for k in CELL), []).append(r)
    rows = [_row(sorted(g, key=lambda r: r["seed"])) for g in groups.values()]
    rows.sort(key=lambda r: (r["suite"], r["world"], r["budget"], not r.get("ours"), r["contender"]))
    data = {"preset": preset.name, "tuning": preset.tuning, "environment": environment(), "seconds": seconds,
            "suites": {n: vars(s) for n, s in suites.items()}, "runs": runs, "rows": rows, "skipped": skipped,
            "scale": scale, "overhead": overhead, "commits": sorted({str(r.get("commit")) for r in runs})}
    data["goals"] = goal_tables(data)
    data["latency"] = latency_table(data)
    return data


# -- rendering -----------------------------------------------------------------------------------------------------
def fmt(x: float | None, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


_RESULT_HEAD = ("suite", "world", "budget", "contender", "seeds run", "start", "held-out final (mean ± sd)",
                "gain pts (mean ± sd)", "task calls (mean / max)", "reflect calls", "wall s", "rounds",
                "efficiency", "CPU ms / task call", "peak MB", "code")


def _result_cells(row: dict[str, Any]) -> list[str]:
    name = row["contender"] + (" (ours)" if row.get("ours") else "")
    head = [row["suite"], row["world"], str(row["budget"]), name]
    if row.get("final_mean") is None:
        why = "; ".join(row.get("errors") or []) or row.get("reason", "")
        return [*head, "0", f"n/a: {why[:300]}", *[""] * (len(_RESULT_HEAD) - 6)]
    over = f" ({row['over_budget']} over budget)" if row["over_budget"] else ""
    return [*head, ",".join(map(str, row["seeds"])), fmt(row["start_mean"]),
            f"{row['final_mean']:.3f} ± {row['final_sd']:.3f}", f"{row['gain_mean']:+.1f} ± {row['gain_sd']:.1f}",
            f"{row['task_calls']:.0f} / {row['task_calls_max']:.0f}{over}", f"{row['reflect_calls']:.0f}",
            f"{row['wall_s']:.1f}", fmt(row["rounds"], ".0f"), fmt(row["efficiency"], ".2f"),
            fmt(row["cpu_ms_per_task_call"], ".2f"), f"{row['peak_rss_mb']:.0f}",
            " ".join(row["codes"]) + (" (MIXED)" if len(row["codes"]) > 1 else "")]


def _skipped_cells(s: dict[str, Any]) -> list[str]:
    return [s.get("suite", ""), s["world"], str(s.get("budget", "")), s["contender"], "0", f"n/a: {s['reason']}",
            *[""] * (len(_RESULT_HEAD) - 6)]


def _breakdown_table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["world", "budget", "contender", "initial eval", "minibatches", "full evals", "validation", "other",
            "children (fully evaluated)", "reflections", "stop", "settings the defaults chose"]
    body = []
    for row in data["rows"]:
        parts = [r.get("extra", {}).get("breakdown") for r in row.get("runs", [])]
        parts = [p for p in parts if p]
        if row["kind"] != "gepa" or not parts or row["suite"] != "quality":
            continue
        if any("unknown" in p for p in parts):
            body.append([row["world"], str(row["budget"]), row["contender"],
                         f"n/a: {next(p['unknown'] for p in parts if 'unknown' in p)}", *[""] * (len(head) - 4)])
            continue

        def avg(key: str, parts: list[dict[str, Any]] = parts) -> str:
            return fmt(mean([p.get(key) for p in parts]), ".0f")

        extra = row["runs"][0].get("extra", {})
        stops = sorted({str(r.get("extra", {}).get("stop_reason")) for r in row["runs"]} - {"None"})
        settings = ", ".join(f"{k}={v}" for k, v in (extra.get("settings") or {}).items() if v is not None)
        ours = "children" in parts[0]
        # the peers report full evaluations of the valset (the trainset here) counting the seed candidate's
        children = f"{avg('children')} ({avg('full_children')})" if ours else (
            f"{avg('candidates')} - 1 seed ({avg('full_evaluations')} - 1)")
        initial = avg("initial") if ours else "in full evals"
        body.append([row["world"], str(row["budget"]), row["contender"], initial, avg("minibatch"),
                     avg("full"), avg("validation"), avg("other"), children, fmt(row["reflect_calls"], ".0f"),
                     "/".join(stops), settings])
    return head, body


def _mipro_table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["world", "budget", "contender", "task calls (mean)", "proposer calls", "trials run", "stop",
            "settings the defaults chose"]
    body = []
    for row in data["rows"]:
        if row["kind"] != "mipro" or not row.get("runs") or row["suite"] != "quality":
            continue
        extras = [r.get("extra", {}) for r in row["runs"]]
        stops = sorted({str(e.get("stop_reason")) for e in extras} - {"None"})
        settings = ", ".join(f"{k}={v}" for k, v in (extras[0].get("settings") or {}).items() if v is not None)
        body.append([row["world"], str(row["budget"]), row["contender"], fmt(row["task_calls"], ".0f"),
                     fmt(row["reflect_calls"], ".0f"), fmt(mean([e.get("generations_run") for e in extras]), ".0f"),
                     "/".join(stops), settings])
    return head, body


def _curve_table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rows = [r for r in data["rows"] if r.get("curve") and r["suite"] == "quality"]
    head = ["world", "budget", "contender", "@10%", "@25%", "@50%", "@75%", "@100%"]
    body = [[r["world"], str(r["budget"]), r["contender"], *[fmt(c["val"]) for c in r["curve"]]] for r in rows]
    return head, body


def _scale_table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["engine", "samples", "population", "rollouts (cap)", "wall s", "CPU ms/rollout", "peak MB", "stopped by"]
    body = []
    for s in sorted(data.get("scale", []), key=lambda s: (str(s.get("engine")), s.get("samples") or 0,
                                                          s.get("population") or 0)):
        if "error" in s:
            body.append([str(s.get("engine")), str(s.get("samples")), str(s.get("population")), "error",
                         s["error"][:60], "", "", ""])
            continue
        body.append([s["engine"], str(s["samples"]), str(s["population"]), f"{s['rollouts']} ({s['cap']})",
                     f"{s['wall_s']:.1f}", fmt(s["cpu_ms_per_rollout"], ".2f"), f"{s['peak_rss_mb']:.0f}",
                     s["stop_reason"]])
    return head, body


def _validation_table() -> tuple[list[str], list[list[str]]]:
    from . import contenders as registry

    return ["contender", "validation, given only the training rows"], [
        [name, registry.get(name).validation] for name in registry.all_names()]


def _audit_table() -> tuple[list[str], list[list[str]]]:
    import json

    from .audit import RESULT, audit_table

    if not RESULT.exists():
        return [], []
    return audit_table(json.loads(RESULT.read_text()))


def tables(data: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    results = [_result_cells(r) for r in data["rows"]] + [_skipped_cells(s) for s in data["skipped"]]
    out = [(title, head, body) for title, head, body in data["goals"]]
    out += [("Wall time against latency per call (dependent rounds; 0.5 s and 2 s projected from rounds)",
             *data["latency"]),
            ("Results (mean over seeds)", list(_RESULT_HEAD), results),
            ("Where the GEPA budget goes (rollouts, mean over seeds; quality suite)", *_breakdown_table(data)),
            ("MIPRO runs: what the budget bought (quality suite)", *_mipro_table(data)),
            ("Held-out score of the best prompt run so far, by fraction of the budget spent (mean over seeds)",
             *_curve_table(data)),
            ("Multi-objective front (run_gepa with objectives=('prompt_length',), objectives suite): per seed",
             *front_table(data)),
            ("How each contender validates", *_validation_table()),
            ("Scripted-world audit: the same evidence through each optimizer's own request "
             "(`python -m benchmarks.audit`)", *_audit_table()),
            ("Scale (latency 0)", *_scale_table(data))]
    return [t for t in out if t[2]]


def print_tables(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=220)
    for title, head, body in tables(data):
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


def _settings_line(data: dict[str, Any]) -> str:
    from .worlds import WORLDS

    parts = []
    for name, s in data["suites"].items():
        worlds = "; ".join(f"`{w}` ({WORLDS[w].describe()})" for w in s["worlds"])
        parts.append(f"- **{name}**: {worlds}; budgets {list(s['budgets'])} task calls; seeds {list(s['seeds'])}; "
                     f"{s['concurrency']} in flight; {s['latency']} s simulated latency per call.")
    return "\n".join(parts)


def markdown(data: dict[str, Any], notes: str = "") -> str:
    env = data["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    total = "" if data["seconds"] is None else f" This invocation ran {data['seconds'] / 60:.0f} min."
    parts = [
        "# Benchmarks", "",
        "Generated by the harness in `benchmarks/` from its results file (do not edit the tables by hand). "
        "Reproduce with:", "",
        f"    python -m benchmarks.run --preset {data['preset']}", "",
        f"Machine: {env['nproc']} cores, {env['memory_gb']} GB, {env['platform']}, Python {env['python']}. "
        f"Versions: {versions}. Code measured: commit(s) {', '.join(data['commits']) or 'n/a'} (the `code` column "
        f"is a hash of the measured code; a stored run is reused only for the same hash).{total}", "",
        "Suites (every contender of a cell gets the same rows, budget, concurrency and latency):", "",
        _settings_line(data), "",
        f"Seeds: the tables report seeds {list(REPORT_SEEDS)} only. Settings may be tuned on seeds 100-105 "
        "(`--preset tuning`, stored apart and never reported here); a seed draws the world's training and held-out "
        "rows as well as the optimizer's randomness. Gains are held-out points over the contender's own weak start "
        "(the same instruction in its own prompt format), per seed, then averaged.", "",
    ]
    for title, head, body in tables(data):
        parts += [f"## {title}", "", _md_table(head, body), ""]
    if notes:
        parts += [notes.strip(), ""]
    return "\n".join(parts)


def _scale_out_section() -> str:
    """The scale-out tables (`python -m benchmarks.scale_out`, its own command: it starts Ray clusters, PostgreSQL
    and worker processes), one heading level down so they sit under this file's title."""
    path = Path(__file__).resolve().parent / "results" / "scale_out.md"
    if not path.exists():
        return ""
    lines = path.read_text().splitlines()
    return "\n".join("#" + line if line.startswith("#") else line for line in lines)


def write_markdown(data: dict[str, Any], path: Path) -> None:
    here = Path(__file__).resolve().parent
    notes_file = here / "NOTES.md"
    notes = notes_file.read_text() if notes_file.exists() else ""
    scale_out = _scale_out_section()
    path.write_text(markdown(data, "\n\n".join(part for part in (scale_out.strip(), notes.strip()) if part)))
