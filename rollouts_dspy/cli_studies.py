"""The command line of shared studies: `rollouts-dspy worker` (one worker of a shared MIPRO study) and what
`rollouts-dspy show` prints for a database URL (docs/cluster.md, MIPRO across workers).

    rollouts-dspy worker --storage postgresql://HOST/DB --study NAME --config examples/mipro_quickstart.toml
    rollouts-dspy show postgresql://HOST/DB                  # every study there and how far it is
    rollouts-dspy show postgresql://HOST/DB --study NAME     # its report once finished, its progress before
"""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_worker", "cmd_worker", "study_result"]


def add_worker(sub: Any, add_display_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    from .studies.options import DEFAULT_LEASE_SECONDS

    worker = sub.add_parser(
        "worker", help="run one worker of a shared MIPRO study (PostgreSQL)",
        description="Join the MIPRO study --study in the PostgreSQL database --storage (the first worker creates "
                    "it) and work on it until it is finished. Start any number of workers, on any machines, with the "
                    "same config: together they run one search, whose result equals a single run's. Nothing is "
                    "written to disk; `rollouts-dspy show URL --study NAME` reads the result.")
    worker.add_argument("--storage", required=True, metavar="URL",
                        help="the study's database, e.g. postgresql://USER@HOST:5432/DB")
    worker.add_argument("--study", required=True, metavar="NAME", help="the study's name (the same on every worker)")
    worker.add_argument("--config", required=True, type=Path, help="the TOML run config (the same on every worker)")
    worker.add_argument("--name", default=None, help="this worker's name in the study (default: HOST-PID)")
    worker.add_argument("--lease-seconds", type=float, default=DEFAULT_LEASE_SECONDS, metavar="S",
                        help=f"a killed worker's unfinished work passes to the others S seconds after its last "
                             f"heartbeat (default {DEFAULT_LEASE_SECONDS:g})")
    add_display_flags(worker)
    worker.set_defaults(func=cmd_worker, method="mipro", resume=False, executor="local")


def cmd_worker(args: argparse.Namespace) -> int:
    """`optimize --method mipro` as one worker of a shared study, without an output folder (the database keeps
    everything). Exit codes as `optimize`'s."""
    from .cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, _check_endpoints, _run
    from .config_file import load_config
    from .runtime.errors import ProviderUnavailableError
    from .studies.options import SharedStudy

    warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
    config = load_config(args.config)
    rows = config.rows()
    split = config.split(len(rows))
    study = SharedStudy(storage=args.storage, name=args.study, worker=args.name, lease_seconds=args.lease_seconds)
    method_config = config.method_config("mipro", split.train, split.val, None, overrides={"study": study})
    _check_endpoints(config, optimizer=True, method="mipro", max_cost_usd=method_config.max_cost_usd)
    scoring = (config.score_fn(), config.environment_factory())
    try:
        outcome = _run(args, config, rows, method_config, scoring, None)
    except ProviderUnavailableError as exc:
        print(f"rollouts-dspy: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if outcome is None:
        print("\ninterrupted: this worker left the study and its unfinished work passes to the other workers; "
              "run the same command to rejoin", file=sys.stderr)
        return EXIT_INTERRUPTED
    _print_outcome(outcome[0], study, quiet=args.quiet)
    return EXIT_OK


def _print_outcome(result: Any, study: Any, *, quiet: bool) -> None:
    from .cli import _score_lines
    from .studies.options import mask_url

    print(f"study {study.name} done: {result.stop_reason}, {result.rollouts_used} rollouts (all workers)")
    print("\n".join(_score_lines(result)))
    print(f"report:         rollouts-dspy show {shlex.quote(mask_url(study.storage))} --study "
          f"{shlex.quote(study.name)}")
    if not quiet:
        print("\nbest system prompt:\n" + result.best_template.system.rstrip("\n"))


def study_result(args: argparse.Namespace) -> Any:
    """The result of the shared study --study in the database `args.result`. Without --study, or while the study
    runs, the status is printed instead and None returned."""
    from .studies.reading import list_studies, load_study_result, study_status

    if args.study is None:
        found = list_studies(args.result)
        for status in found:
            print(_status_line(status))
        if not found:
            print("no shared studies yet")
        return None
    status = study_status(args.result, args.study)
    if not status.finished:
        print(_status_line(status))
        return None
    return load_study_result(args.result, args.study)


def _status_line(status: Any) -> str:
    budget = "" if status.max_rollouts is None else f" of {status.max_rollouts}"
    best = "-"
    if status.best_trial is not None:
        number, combo, value = status.best_trial
        best = f"{value:.3f} ({combo}, trial {number})"
    state = "finished" if status.finished else f"running, {status.workers_alive} workers alive"
    return (f"{status.name} ({status.method}): {state}; {status.trials_told} trials told, best trial {best}; "
            f"{status.rollouts_used}{budget} rollouts, created {status.created_at:%Y-%m-%d %H:%M}")
