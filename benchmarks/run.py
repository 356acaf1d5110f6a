"""The one command: `python -m benchmarks.run --preset full` (or `--preset smoke`).

Starts the measured scripted server (the preset's latency) and a zero-latency evaluation server in their own
processes, runs every contender x world (its seeds in one fresh worker process), then the scale grid, prints
the table, writes `benchmarks/results/<preset>.json` and, for `full` (or with --markdown), BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import contenders as registry
from .presets import PRESETS, Preset
from .report import environment, print_tables, summarize, write_markdown
from .server import ServerProcess
from .worlds import banking77_available, make_world

__all__ = ["main", "run_preset"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def _worker(specs: list[dict[str, Any]], log: Path) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        spec_file, out_file = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_file.write_text(json.dumps(specs))
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(ROOT)}
        with open(log, "a", encoding="utf-8") as out:
            subprocess.run([sys.executable, "-m", "benchmarks.worker", str(spec_file), str(out_file)], cwd=ROOT,
                           env=env, stdout=out, stderr=out, check=False)
        if not out_file.exists():
            return [{**{k: s.get(k) for k in ("contender", "world", "seed", "engine", "samples", "population")},
                     "error": f"worker died (see {log})"} for s in specs]
        return json.loads(out_file.read_text())


def _contenders_for(preset: Preset, world: str) -> list[str]:
    names = preset.world_contenders.get(world) or preset.contenders or tuple(registry.all_names())
    return list(names)


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def _plan(preset: Preset, servers: dict[str, tuple[ServerProcess, ServerProcess]], cache_file: Path,
          quiet: bool) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Worker batches (one per contender and world; a single batch for one-process presets) and the n/a rows."""
    batches: list[list[dict[str, Any]]] = []
    skipped: list[dict[str, Any]] = []
    for world_name, setup in preset.worlds.items():
        if world_name not in servers:
            skipped.append({"world": world_name, "contender": "*", "reason": "Banking77 data not found"})
            continue
        world = make_world(world_name, **setup.world_args())
        measured, evaluation = servers[world_name]
        checkpoints = sorted({max(1, round(f * setup.budget)) for f in preset.checkpoint_fractions})
        for name in _contenders_for(preset, world_name):
            contender = registry.get(name)
            reason = contender.available() or contender.unsupported(world)
            if reason:
                skipped.append({"world": world_name, "contender": name, "kind": contender.kind,
                                "ours": contender.ours, "reason": reason})
                _say(quiet, f"[{world_name}] {name}: n/a ({reason[:90]})")
                continue
            batches.append([{"contender": name, "world": world_name, "world_args": setup.world_args(),
                             "budget": setup.budget, "seed": seed, "latency": preset.latency,
                             "concurrency": preset.concurrency, "base_url": measured.base_url,
                             "eval_url": evaluation.base_url, "checkpoints": checkpoints,
                             "cache_file": str(cache_file), "kind": contender.kind, "ours": contender.ours}
                            for seed in preset.seeds])
    if preset.one_process and batches:
        batches = [[spec for batch in batches for spec in batch]]
    return batches, skipped


def run_worlds(preset: Preset, log: Path, quiet: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    runs: list[dict[str, Any]] = []
    servers: dict[str, tuple[ServerProcess, ServerProcess]] = {}
    try:
        for world_name in preset.worlds:
            if world_name == "banking77" and not banking77_available():
                continue
            labels = make_world(world_name, n_train=0, n_dev=0, n_val=0).labels_file
            servers[world_name] = (ServerProcess(latency=preset.latency, labels_file=labels).start(),
                                   ServerProcess(latency=0.0, labels_file=labels).start())
        batches, skipped = _plan(preset, servers, RESULTS / f".heldout-cache-{preset.name}.json", quiet)
        for batch in batches:
            started = time.perf_counter()
            results = _worker(batch, log)
            for spec, r in zip(batch, results, strict=False):
                r.update(kind=spec["kind"], ours=spec["ours"], latency=preset.latency,
                         concurrency=preset.concurrency)
            runs.extend(results)
            finals = [f"{r['final_val']:.3f}" if "final_val" in r else "ERR" for r in results]
            names = sorted({f"[{s['world']}] {s['contender']}" for s in batch})
            _say(quiet, f"{', '.join(names)}: final {finals} ({time.perf_counter() - started:.0f}s)")
    finally:
        for pair in servers.values():
            for server in pair:
                server.stop()
    return runs, skipped


def run_scale_grid(preset: Preset, log: Path, quiet: bool) -> list[dict[str, Any]]:
    """Sizes at the middle population, populations at the middle size: one worker per (engine, samples)."""
    if not preset.scale_sizes:
        return []
    mid_pop = preset.scale_populations[len(preset.scale_populations) // 2]
    mid_size = preset.scale_sizes[len(preset.scale_sizes) // 2]
    grid: dict[tuple[str, int], list[int]] = {}
    for engine in ("gepa", "mipro"):
        for n in preset.scale_sizes:
            grid.setdefault((engine, n), []).append(mid_pop)
        for p in preset.scale_populations:
            if p != mid_pop:
                grid.setdefault((engine, mid_size), []).append(p)
    out: list[dict[str, Any]] = []
    with ServerProcess(latency=0.0) as server:
        for (engine, n), pops in grid.items():
            specs = [{"mode": "scale", "engine": engine, "samples": n, "population": p, "cap": preset.scale_rollout_cap,
                      "base_url": server.base_url} for p in sorted(pops)]
            started = time.perf_counter()
            out.extend(_worker(specs, log))
            _say(quiet, f"[scale] {engine} n={n} populations={sorted(pops)} ({time.perf_counter() - started:.0f}s)")
    return out


def run_preset(preset: Preset, *, quiet: bool = False, scale: bool = True) -> dict[str, Any]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / f"{preset.name}.log"
    log.write_text("")
    started = time.perf_counter()
    runs, skipped = run_worlds(preset, log, quiet)
    scale_rows = run_scale_grid(preset, log, quiet) if scale else []
    data = {
        "preset": preset.name,
        "settings": {"seeds": list(preset.seeds), "latency": preset.latency, "concurrency": preset.concurrency,
                     "worlds": {k: vars(v) for k, v in preset.worlds.items()},
                     "scale_rollout_cap": preset.scale_rollout_cap},
        "environment": environment(),
        "command": f"python -m benchmarks.run --preset {preset.name}",
        "runs": runs,
        "skipped": skipped,
        "scale": scale_rows,
        "total_seconds": None,
    }
    data.update(summarize(data))
    data["total_seconds"] = time.perf_counter() - started
    (RESULTS / f"{preset.name}.json").write_text(json.dumps(data, indent=1, default=str))
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark rollouts_dspy against dspy.GEPA, dspy.MIPROv2, gepa.")
    parser.add_argument("--preset", default="full", choices=sorted(PRESETS))
    parser.add_argument("--no-scale", action="store_true", help="skip the scale grid")
    parser.add_argument("--markdown", action="store_true", help="write BENCHMARKS.md (default for --preset full)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    data = run_preset(preset, quiet=args.quiet, scale=not args.no_scale)
    print_tables(data)
    if args.markdown or preset.name == "full":
        write_markdown(data, ROOT / "BENCHMARKS.md")
    errors = [r for r in data["runs"] + data["scale"] if "error" in r]
    return 1 if errors and preset.name == "smoke" else 0


if __name__ == "__main__":
    sys.exit(main())
