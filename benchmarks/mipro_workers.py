"""Scale-out, MIPRO across workers: rollouts per second of 1, 2, 4 `rollouts-dspy worker` processes sharing one
PostgreSQL study (docs/cluster.md, MIPRO across workers), and whether they made the 1-worker row's search.

A section of `python -m benchmarks.scale_out` (its options `--mipro-workers`, `--latency`, `--mipro-trials`,
`--skip-mipro`). Each row starts its workers together, as real processes of the command a user runs, on a fresh
study (same config file every row) in one PostgreSQL server, against the scripted server in its own process that
answers every call after `--latency` seconds, as a provider would: the workers are latency-bound, not CPU-bound.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

__all__ = ["MIPRO_SETTINGS", "mipro_markdown", "mipro_worker_rows"]

MIPRO_SETTINGS = {"minibatch_size": 8, "trials_per_batch": 6, "max_concurrent": 8, "max_rollouts": 5000}
"""The `[mipro]` fields every row shares (besides `num_trials` = --mipro-trials and the study config's others)."""
WORKER_TIMEOUT = 3600.0  # a worker still running after an hour is stuck: the benchmark stops it and says so


def search_signature(result: Any) -> tuple:
    """What makes two results the same search: the best candidate, every candidate's per-row scores, each trial's
    score (as the tests compare them)."""
    return (result.best_candidate_id, result.best_template.system, result.best_template.few_shot_examples,
            [(r.id, dict(r.train_scores), dict(r.val_scores)) for r in result.candidates],
            [h.mean_score for h in result.history])


def run_workers(storage: str, study: str, config: Path, n: int) -> float:
    """Start `n` workers on `study` together and wait for all; the wall seconds from the first start to the last
    exit. Raises with a worker's error output when one fails."""
    from rollouts_dspy.testing.studies import start_worker

    started = time.perf_counter()
    procs = [start_worker(storage, study, config, f"w{i}") for i in range(n)]
    try:
        outputs = [p.communicate(timeout=WORKER_TIMEOUT) for p in procs]
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"a worker of study {study!r} ran past {WORKER_TIMEOUT:g} s") from None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    seconds = time.perf_counter() - started
    failed = [(p.returncode, err) for p, (_, err) in zip(procs, outputs, strict=True) if p.returncode != 0]
    if failed:
        raise RuntimeError(f"a worker of study {study!r} exited with {failed[0][0]}: {failed[0][1][-2000:]}")
    return seconds


def rollout_span_seconds(tables: Any) -> float:
    """Seconds from the first rollout stored to the last (the database's clock): the workers' start-up left out."""
    from rollouts_dspy.studies.schema import rollouts

    with tables.engine.connect() as conn:
        first, last = conn.execute(sa.select(sa.func.min(rollouts.c.created_at), sa.func.max(rollouts.c.created_at))
                                   .where(rollouts.c.study == tables.study)).one()
    return (last - first).total_seconds() if first is not None else 0.0


def mipro_worker_rows(storage: str, server: Any, folder: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per worker count in `args.mipro_workers`, each on a fresh study; `server` is the scripted server
    (benchmarks.server.ServerProcess) whose task calls are counted per row."""
    from rollouts_dspy.studies import load_study_result
    from rollouts_dspy.testing.studies import StudyTables, write_study_config

    config = write_study_config(folder, server.base_url, num_trials=args.mipro_trials, **MIPRO_SETTINGS)
    rows: list[dict[str, Any]] = []
    for n in args.mipro_workers:
        study = f"scale-out-{len(rows)}-{n}-workers"
        server.reset()
        seconds = run_workers(storage, study, config, n)
        task_calls = server.stats()["requests_by_model"].get("scripted-task", 0)
        tables = StudyTables(storage, study)
        try:
            row = {"workers": n, "rollouts": tables.stored_rollouts(), "task_calls": task_calls,
                   "proposer_calls": tables.answered_proposer_calls(), "seconds": seconds,
                   "span": rollout_span_seconds(tables)}
        finally:
            tables.close()
        result = load_study_result(storage, study)
        rows.append({**row, "best": result.best_candidate_id, "best_score": result.best_template.score,
                     "stop_reason": result.stop_reason, "signature": search_signature(result)})
    return rows


def mipro_markdown(args: argparse.Namespace, rows: list[dict[str, Any]]) -> list[str]:
    """The section's lines: what was run, the table, what bounds it."""
    slots, tpb, batch = (MIPRO_SETTINGS[k] for k in ("max_concurrent", "trials_per_batch", "minibatch_size"))
    first = rows[0]
    lines = [
        "## Scale-out: MIPRO workers sharing one PostgreSQL study",
        "",
        f"`rollouts-dspy worker` processes started together, as a user starts them, run one MIPRO search (intent "
        f"classification, {args.mipro_trials} trials of {batch} rows, `trials_per_batch = {tpb}`, "
        f"`max_concurrent = {slots}` per worker) against the scripted server in its own process, which answers every "
        f"call after {args.latency:g} s. Each row is a fresh study (the same config file) in one PostgreSQL server "
        "started here. rollouts/s = task rollouts stored in the study / wall seconds from the first worker's start to "
        "the last one's exit (Python start-up, the candidate pool's proposer calls and the final validation "
        "included); the `first to last rollout` column leaves the start-up out. `task calls` is what the scripted "
        "server answered: equal to the rollouts stored when no call was made twice.",
        "",
        f"| worker processes | task rollouts | task calls | proposer calls | wall s | rollouts/s | rollouts/s, first "
        f"to last rollout | ceiling ({slots} slots per worker / latency) | best candidate (val score) | the "
        f"{first['workers']}-worker row's search |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        ceiling = f"{r['workers'] * slots / args.latency:.1f}" if args.latency > 0 else "-"
        span_rate = f"{r['rollouts'] / r['span']:.1f}" if r["span"] > 0 else "-"
        score = f"{r['best_score']:.3f}" if r["best_score"] is not None else "-"
        same = "yes" if r["signature"] == first["signature"] else "**NO**: another result"
        lines.append(f"| {r['workers']} | {r['rollouts']} | {r['task_calls']} | {r['proposer_calls']} | "
                     f"{r['seconds']:.1f} | {r['rollouts'] / r['seconds']:.1f} | {span_rate} | {ceiling} | "
                     f"`{r['best']}` ({score}) | {same} |")
    if args.latency > 0:
        waits = (f"a worker's {slots} slots each wait {args.latency:g} s per call, so N workers run at most "
                 f"N x {slots} / {args.latency:g} rollouts per second (the ceiling)")
    else:
        waits = "the scripted server answers at once, so the workers are bound by the cores, not by waiting"
    lines += ["", f"What bounds it: {waits}; the search itself has about `trials_per_batch` x `minibatch_size` = "
              f"{tpb * batch} trial rollouts in flight (plus the full evaluations in the background), so past that "
              "many slots more workers wait on one another; the candidate pool's proposer calls come before any trial "
              "whatever the number of workers; and each worker spends a few ms of CPU per rollout in its LLM client, "
              "on the machine's cores shared by all of them. Stop reason of every row: "
              f"{', '.join(sorted({r['stop_reason'] for r in rows}))}."]
    return lines
