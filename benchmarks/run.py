"""The one command: `python -m benchmarks.run --preset quality|wallclock|scale|full|tuning|smoke`.

Plans the preset's runs (suites x worlds x budgets x contenders x seeds; `--worlds`, `--contenders`, `--seeds`,
`--budgets`, `--suites` run a subset), skips the runs its results store already holds (resume; `--fresh` reruns
them), starts the metered scripted server (one per latency) and a zero-latency evaluation server in their own
processes, runs each contender x world x budget (its seeds in one fresh worker process, each finished run appended
to the store at once), then the scale grid; prints the tables and goal rows from everything in the store and, for
`full` (or with --markdown), writes BENCHMARKS.md. `--plan` prints what would run and an estimate, and stops.
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
from .presets import PRESETS, REPORT_SEEDS, TUNING_SEEDS, Preset, Suite
from .report import build, print_tables, write_markdown
from .server import ServerProcess
from .store import code_hash, code_version, load, merge, run_key
from .worlds import BANKING77_DIR, banking77_available, needs_banking77

__all__ = ["main", "plan", "run_preset"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def store_path(preset: Preset) -> Path:
    """The reporting presets share one store (a `quality` run fills the `full` report); smoke and tuning runs are
    kept apart."""
    return RESULTS / ("tuning.jsonl" if preset.tuning else "smoke.jsonl" if preset.name == "smoke" else "runs.jsonl")


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def _pick(values: tuple[Any, ...], wanted: set[Any] | None) -> tuple[Any, ...]:
    return values if wanted is None else tuple(v for v in values if v in wanted)


def plan(preset: Preset, filters: dict[str, set[Any] | None]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(run specs without server URLs, n/a rows) for the preset's suites after the subset filters."""
    specs: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    seeds_override = filters.get("seeds")
    for suite in preset.suites:
        if filters.get("suites") is not None and suite.name not in filters["suites"]:
            continue
        seeds = tuple(sorted(seeds_override)) if seeds_override is not None else suite.seeds
        names = suite.contenders or tuple(registry.grid_names())
        for world in _pick(suite.worlds, filters.get("worlds")):
            if needs_banking77(world) and not banking77_available():
                skipped.append({"suite": suite.name, "world": world, "contender": "*",
                                "reason": "Banking77 data not found (../shared/data/banking77)"})
                continue
            for budget in _pick(suite.budgets, filters.get("budgets")):
                for name in _pick(names, filters.get("contenders")):
                    specs.extend(_cell(suite, world, budget, name, seeds, skipped))
    return specs, skipped


def _cell(suite: Suite, world: str, budget: int, name: str, seeds: tuple[int, ...],
          skipped: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from .worlds import make_world

    contender = registry.get(name)
    reason = contender.available() or contender.unsupported(make_world(world, seeds[0]) if seeds else None)
    if reason:
        skipped.append({"suite": suite.name, "world": world, "budget": budget, "contender": name,
                        "kind": contender.kind, "ours": contender.ours, "reason": reason})
        return []
    checkpoints = sorted({max(1, round(f * budget)) for f in suite.checkpoint_fractions})
    return [{"suite": suite.name, "contender": name, "world": world, "budget": budget, "seed": seed,
             "latency": suite.latency, "concurrency": suite.concurrency, "checkpoints": checkpoints,
             "kind": contender.kind, "ours": contender.ours} for seed in seeds]


def _batches(todo: list[dict[str, Any]], one_process: bool) -> list[list[dict[str, Any]]]:
    if one_process:
        return [todo] if todo else []
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for spec in todo:
        groups.setdefault((spec["suite"], spec["world"], spec["budget"], spec["contender"]), []).append(spec)
    return list(groups.values())


def _worker(specs: list[dict[str, Any]], store: Path, log: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(specs))
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(ROOT)}
        with open(log, "a", encoding="utf-8") as out:
            subprocess.run([sys.executable, "-m", "benchmarks.worker", str(spec_file), str(store)], cwd=ROOT,
                           env=env, stdout=out, stderr=out, check=False)


WORKER_START_S = 15.0
"""A worker process's imports and warm-up on this machine (one per contender x world x budget)."""


def estimate_seconds(spec: dict[str, Any], stored: dict[str, dict[str, Any]]) -> tuple[float, bool]:
    """Seconds one run should take: the mean of stored runs of the same cell (any seed), else of the stored runs
    of the contender it is a variant of (`Contender.like`, same world, budget, concurrency and latency, any
    suite), else a guess from the budget (about 12 ms of this machine's CPU per task call, held-out scoring
    included, plus the latency of roughly one dependent round per 5 calls at 16 in flight). Returns (seconds,
    measured?)."""
    like = registry.get(spec["contender"]).like
    for name, suite in ((spec["contender"], spec["suite"]), *([(like, None)] if like else [])):
        same = [r for r in stored.values() if "error" not in r and r.get("contender") == name
                and suite in (None, r.get("suite"))
                and all(r.get(k) == spec[k] for k in ("world", "budget", "concurrency", "latency"))]
        if same:
            return sum(r["wall_s"] + r.get("heldout_eval_s", 0.0) for r in same) / len(same), True
    return spec["budget"] * (0.012 + spec["latency"] * 16 / spec["concurrency"] / 5), False


def _print_plan(todo: list[dict[str, Any]], done: int, stored: dict[str, dict[str, Any]]) -> None:
    total, guessed = 0.0, 0
    cells: dict[tuple[Any, ...], list[float]] = {}
    for spec in todo:
        seconds, measured = estimate_seconds(spec, stored)
        total += seconds
        guessed += not measured
        cells.setdefault((spec["suite"], spec["world"], spec["budget"], spec["contender"]), []).append(seconds)
    for (suite, world, budget, name), secs in cells.items():
        print(f"  {suite:10} {world:15} {budget:5} {name:15} {len(secs)} seeds  ~{sum(secs) / 60:.1f} min")
    total += WORKER_START_S * len(cells)
    print(f"{len(todo)} runs to do ({done} already stored), about {total / 3600:.1f} h on this machine"
          + (f" ({guessed} runs guessed, not yet measured)" if guessed else ""))


def run_worlds(preset: Preset, todo: list[dict[str, Any]], store: Path, log: Path, quiet: bool) -> None:
    if not todo:
        return
    servers: dict[float, ServerProcess] = {}
    labels = BANKING77_DIR / "categories.json" if banking77_available() else None
    commit, measured = code_version(ROOT), code_hash(ROOT)
    try:
        evaluation = ServerProcess(latency=0.0, labels_file=labels).start()
        for batch in _batches(todo, preset.one_process):
            for spec in batch:
                if spec["latency"] not in servers:
                    servers[spec["latency"]] = ServerProcess(latency=spec["latency"], labels_file=labels).start()
                spec.update(base_url=servers[spec["latency"]].base_url, eval_url=evaluation.base_url, commit=commit,
                            code_hash=measured)
            started = time.perf_counter()
            _worker(batch, store, log)
            results = load(store)
            finals = [results.get(run_key(s), {}) for s in batch]
            shown = [f"{r['final_val']:.3f}" if "final_val" in r else "ERR" for r in finals]
            names = sorted({f"[{s['suite']} {s['world']} {s['budget']}] {s['contender']}" for s in batch})
            _say(quiet, f"{', '.join(names)}: held-out {shown} ({time.perf_counter() - started:.0f}s)")
    finally:
        evaluation.stop()
        for server in servers.values():
            server.stop()


def run_scale_grid(preset: Preset, store: Path, log: Path, quiet: bool, fresh: bool) -> None:
    """Sizes at the middle population, populations at the middle size: one worker per (engine, samples)."""
    if not preset.scale_sizes:
        return
    mid_pop = preset.scale_populations[len(preset.scale_populations) // 2]
    mid_size = preset.scale_sizes[len(preset.scale_sizes) // 2]
    grid: dict[tuple[str, int], list[int]] = {}
    for engine in ("gepa", "mipro"):
        for n in preset.scale_sizes:
            grid.setdefault((engine, n), []).append(mid_pop)
        for p in preset.scale_populations:
            if p != mid_pop:
                grid.setdefault((engine, mid_size), []).append(p)
    stored = load(store)
    commit, measured = code_version(ROOT), code_hash(ROOT)
    with ServerProcess(latency=0.0) as server:
        for (engine, n), pops in grid.items():
            specs = [{"mode": "scale", "engine": engine, "samples": n, "population": p,
                      "cap": preset.scale_rollout_cap, "base_url": server.base_url, "commit": commit,
                      "code_hash": measured} for p in sorted(pops)]
            specs = _todo(specs, stored, fresh)
            if not specs:
                continue
            started = time.perf_counter()
            _worker(specs, store, log)
            _say(quiet, f"[scale] {engine} n={n} populations={sorted(pops)} ({time.perf_counter() - started:.0f}s)")


def run_overhead_stage(store: Path, quiet: bool, fresh: bool) -> None:
    """The LLM layer's per-call CPU, memory floor and CLI start-up (`benchmarks/overhead.py`), once per code."""
    from .overhead import available, run_overhead
    from .store import append

    if not available():
        _say(quiet, "[overhead] benchmarks/llm_overhead.py is not in the tree: its goal rows stay 'not available'")
        return
    stored = load(store).get("overhead")
    if stored and not fresh and stored.get("code_hash") == code_hash(ROOT):
        return
    record = run_overhead()
    if record is not None:
        append(store, {**record, "commit": code_version(ROOT), "code_hash": code_hash(ROOT)})


def _todo(specs: list[dict[str, Any]], stored: dict[str, dict[str, Any]], fresh: bool,
          any_code: bool = False) -> list[dict[str, Any]]:
    """The specs to run: those without a stored result of the current measured code (any code with `any_code`)."""
    current = code_hash(ROOT)

    def have(spec: dict[str, Any]) -> bool:
        record = stored.get(run_key(spec))
        return record is not None and "error" not in record and (any_code or record.get("code_hash") == current)

    return [s for s in specs if fresh or not have(s)]


def run_preset(preset: Preset, *, quiet: bool = False, scale: bool = True, fresh: bool = False,
               any_code: bool = False, filters: dict[str, set[Any] | None] | None = None,
               store: Path | None = None) -> dict[str, Any]:
    """Run what the store lacks, then build the report data from the whole store."""
    store = store or store_path(preset)
    log = store.with_suffix(".log")
    specs, skipped = plan(preset, filters or {})
    started = time.perf_counter()
    run_worlds(preset, _todo(specs, load(store), fresh, any_code), store, log, quiet)
    if scale:
        run_scale_grid(preset, store, log, quiet, fresh)
    if preset.overhead:
        run_overhead_stage(store, quiet, fresh)
    return build(preset, list(load(store).values()), skipped, time.perf_counter() - started)


def save_baseline(data: dict[str, Any]) -> None:
    from .goals import BASELINE

    final = {f"{r['suite']}|{r['world']}|{r['budget']}|{r['contender']}": r["final_mean"] for r in data["rows"]
             if r.get("final_mean") is not None}
    BASELINE.write_text(json.dumps({"commits": data["commits"], "final": final}, indent=1, sort_keys=True) + "\n")


def _ints(text: str | None) -> set[int] | None:
    if text is None:
        return None
    if text == "tuning":
        return set(TUNING_SEEDS)
    if text == "report":
        return set(REPORT_SEEDS)
    return {int(x) for x in text.split(",") if x.strip()}


def _names(text: str | None) -> set[str] | None:
    return None if text is None else {x.strip() for x in text.split(",") if x.strip()}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Benchmark rollouts_dspy against dspy.GEPA, dspy.MIPROv2, gepa.")
    parser.add_argument("--preset", default="full", choices=sorted(PRESETS))
    parser.add_argument("--suites", help="comma-separated suite names of the preset (quality, calculator, ...)")
    parser.add_argument("--worlds", help="comma-separated worlds, e.g. banking77-20")
    parser.add_argument("--contenders", help="comma-separated contenders, e.g. run_gepa,dspy.GEPA")
    parser.add_argument("--seeds", help="comma-separated seeds, or 'report' (0-5) / 'tuning' (100-105)")
    parser.add_argument("--budgets", help="comma-separated budgets, e.g. 1500")
    parser.add_argument("--store", help="results file (JSON lines; default benchmarks/results/<preset>.jsonl)")
    parser.add_argument("--merge", nargs="*", default=(), help="add the runs of these results files to the store")
    parser.add_argument("--fresh", action="store_true", help="rerun runs the store already holds")
    parser.add_argument("--any-code", action="store_true",
                        help="reuse stored runs measured on other code (default: rerun when the code changed)")
    parser.add_argument("--save-baseline", action="store_true",
                        help="write benchmarks/baseline.json (the held-out means the wall-clock goal compares "
                             "against) from the store")
    parser.add_argument("--plan", action="store_true", help="print the runs to do and an estimate; run nothing")
    parser.add_argument("--report-only", action="store_true", help="run nothing; report what the store holds")
    parser.add_argument("--no-scale", action="store_true", help="skip the scale grid")
    parser.add_argument("--markdown", action="store_true", help="write BENCHMARKS.md (default for --preset full)")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    preset = PRESETS[args.preset]
    filters = {"suites": _names(args.suites), "worlds": _names(args.worlds), "contenders": _names(args.contenders),
               "seeds": _ints(args.seeds), "budgets": _ints(args.budgets)}
    tuning = set(TUNING_SEEDS) & (filters["seeds"] or set())
    if tuning and not preset.tuning:
        print(f"seeds {sorted(tuning)} are tuning seeds: run them with --preset tuning (stored apart, never "
              "reported in BENCHMARKS.md)", file=sys.stderr)
        return 2
    store = Path(args.store) if args.store else store_path(preset)
    if args.merge:
        print(f"merged {merge(store, [Path(p) for p in args.merge])} runs into {store}", file=sys.stderr)
    if args.plan:
        specs, _ = plan(preset, filters)
        stored = load(store)
        todo = _todo(specs, stored, args.fresh, args.any_code)
        _print_plan(todo, len(specs) - len(todo), stored)
        return 0
    if args.report_only:
        data = build(preset, list(load(store).values()), plan(preset, filters)[1], None)
    else:
        data = run_preset(preset, quiet=args.quiet, scale=not args.no_scale, fresh=args.fresh,
                          any_code=args.any_code, filters=filters, store=store)
    print_tables(data)
    if args.save_baseline:
        save_baseline(data)
    if (args.markdown or preset.name == "full") and not preset.tuning:
        write_markdown(data, ROOT / "BENCHMARKS.md")
    errors = [r for r in data["runs"] if "error" in r]
    return 1 if errors and preset.name == "smoke" else 0


if __name__ == "__main__":
    sys.exit(main())
