"""The `rollouts-dspy` command line: optimize a prompt from a TOML run config, evaluate a saved template, show a
finished run.

    rollouts-dspy optimize --method gepa --config examples/gepa_quickstart.toml --out runs/quickstart
    rollouts-dspy evaluate --template runs/quickstart/best.json --config examples/gepa_quickstart.toml
    rollouts-dspy show runs/quickstart/result.json
    rollouts-dspy worker --storage postgresql://HOST/DB --study NAME --config examples/mipro_quickstart.toml
    rollouts-dspy show postgresql://HOST/DB --study NAME

Progress goes to stderr (a live display on a terminal, plain lines otherwise, nothing with --quiet); results go
to stdout. Exit codes: 0 done, 1 failed run, 2 bad config or input file, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cli_studies import add_worker
from .errors import CheckpointError, ConfigError, DatasetError, ResultFileError, ScoreFnError, TemplateError

__all__ = ["build_parser", "main"]

_USER_ERRORS = (ConfigError, DatasetError, TemplateError, ScoreFnError, ResultFileError, CheckpointError)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollouts-dspy",
        description="GEPA and MIPRO prompt optimization from a TOML run config.",
        epilog="Quickstart (offline, no API key): rollouts-dspy optimize --method gepa "
               "--config examples/gepa_quickstart.toml --out runs/quickstart",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"rollouts-dspy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    opt = sub.add_parser("optimize", help="optimize a prompt template (GEPA or MIPRO)",
                         description="Optimize the config's template; writes best.json, result.json and run.log "
                                     "into --out. Ctrl-C stops cleanly; --resume continues from the checkpoint.")
    opt.add_argument("--method", required=True, choices=("gepa", "mipro"), help="the optimizer")
    opt.add_argument("--config", required=True, type=Path, help="the TOML run config")
    opt.add_argument("--out", type=Path, default=None, help="output directory (default: runs/<config name>-<method>)")
    opt.add_argument("--resume", action="store_true",
                     help="continue the run whose checkpoint is in --out (after Ctrl-C or to extend it)")
    opt.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="where rollouts run: here, or as Ray tasks on RAY_ADDRESS's cluster (else a local one)")
    _add_display_flags(opt)
    opt.set_defaults(func=_cmd_optimize)

    ev = sub.add_parser("evaluate", help="score a saved template on a split of the config's dataset",
                        description="Score a template (best.json, or a result.json's best) on a split.")
    ev.add_argument("--config", required=True, type=Path, help="the TOML run config (dataset, scorer, endpoint)")
    ev.add_argument("--template", type=Path, default=None,
                    help="a saved template or result JSON (default: the config's own [template])")
    ev.add_argument("--split", choices=("train", "val", "test"), default=None,
                    help="which rows to score (default: test if the config has one, else val, else train)")
    ev.add_argument("--max-concurrent", type=int, default=10, help="LLM calls in flight at once (default 10)")
    ev.add_argument("--out", type=Path, default=None, help="also write every rollout to this JSON file")
    ev.add_argument("--show-failures", type=int, default=3, metavar="N",
                    help="print up to N wrongly answered samples (default 3)")
    ev.add_argument("--quiet", "-q", action="store_true", help="print only the score")
    ev.set_defaults(func=_cmd_evaluate)

    add_worker(sub, _add_display_flags)

    show = sub.add_parser("show", help="a readable report of a finished run",
                          description="Best prompt, score history, rollouts, tokens, cost and a diff of the best "
                                      "system prompt against the initial one. Given a database URL, the shared "
                                      "studies there (and with --study, that study's result or progress).")
    show.add_argument("result", help="a result.json written by `rollouts-dspy optimize`, or a shared study's "
                                     "database URL (postgresql://...)")
    show.add_argument("--study", default=None, metavar="NAME", help="with a database URL: the study to show")
    show.add_argument("--top", type=int, default=5, help="how many candidates to list (default 5)")
    show.add_argument("--plain", action="store_true", help="plain text even on a terminal")
    show.set_defaults(func=_cmd_show)
    return parser


def _add_display_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    group.add_argument("--progress", choices=("auto", "rich", "lines"), default="auto",
                       help="progress display: auto (live on a terminal, lines otherwise), rich or lines")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        # A process started in the background by a shell ignores SIGINT; the CLI always wants Ctrl-C (and
        # `kill -INT`) to stop a run cleanly, so it restores Python's KeyboardInterrupt handler.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return int(args.func(args) or EXIT_OK)
    except _USER_ERRORS as exc:
        print(f"rollouts-dspy: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        from .runtime.errors import ProviderUnavailableError

        if not isinstance(exc, ProviderUnavailableError):
            raise
        print(f"rollouts-dspy: error: {exc}", file=sys.stderr)  # e.g. `evaluate` while the provider is down
        return EXIT_FAILED
    except BrokenPipeError:  # e.g. `rollouts-dspy show result.json | head`
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return EXIT_OK


# ---------------------------------------------------------------------------------------------------------------
# Shared plumbing


def _check_endpoints(config: Any, *, optimizer: bool, method: str = "", max_cost_usd: float | None = None) -> None:
    """Before anything starts: each model the command calls ([endpoint], and [optimizer_endpoint] when
    `optimizer`) has an API key to send and, under a dollar cap, a price. Errors name the table and key of the
    config file to fix (the Python front doors give the same advice in Python terms)."""
    from .llm import check_api_keys, is_priced

    # Without an [optimizer_endpoint] table it is the [endpoint], which is checked (and named) first.
    tables = (("endpoint", config.endpoint), ("optimizer_endpoint", config.optimizer_endpoint))[: 1 + optimizer]
    for name, spec in tables:
        endpoint = spec.preview()
        try:
            check_api_keys(endpoint)
        except ConfigError as exc:
            raise ConfigError(f"{config.file}: [{name}] {exc}") from None
        if max_cost_usd is not None and not is_priced(endpoint):
            raise ConfigError(
                f"{config.file}: [{method}] max_cost_usd = {max_cost_usd!r} cannot be enforced: the price of "
                f"{endpoint.litellm_model!r} is not in litellm's cost table; add `pricing = [input, output]` "
                f"(USD per million tokens) to [{name}], or use max_rollouts")


def _endpoint_record(spec: Any, endpoint: Any) -> dict[str, Any]:
    return {**endpoint.to_dict(), "api_base": "scripted"} if spec.scripted else endpoint.to_dict()


# ---------------------------------------------------------------------------------------------------------------
# optimize


def _cmd_optimize(args: argparse.Namespace) -> int:
    from .config_file import load_config
    from .io import save_result, save_template
    from .runtime.errors import ProviderUnavailableError

    # Cancelling in-flight LLM calls on Ctrl-C leaves coroutines that were never awaited; that is expected.
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
    config = load_config(args.config)
    rows = config.rows()
    split = config.split(len(rows))
    out: Path = args.out or Path("runs") / f"{args.config.stem}-{args.method}"
    state = out / "checkpoint"
    _check_out_dir(out, state, args)
    method_config = config.method_config(args.method, split.train, split.val, state)
    _check_endpoints(config, optimizer=True, method=args.method, max_cost_usd=method_config.max_cost_usd)
    scoring = (config.score_fn(), config.environment_factory())  # fail on a bad scorer before writing anything
    out.mkdir(parents=True, exist_ok=True)
    try:
        outcome = _run(args, config, rows, method_config, scoring, out)
    except ProviderUnavailableError as exc:
        return _provider_down(args, out, state, exc)
    if outcome is None:
        return _interrupted(args, out, state, config)
    result, endpoint, optimizer = outcome
    result = dataclasses.replace(result, config={
        **dict(result.config),
        "run": {
            "config_file": str(args.config),
            "dataset": str(config.dataset.path),
            "split": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
            "scorer": config.scorer_type,
            "endpoint": _endpoint_record(config.endpoint, endpoint),
            "optimizer_endpoint": _endpoint_record(config.optimizer_endpoint, optimizer),
        },
    })
    save_template(result.best_template, out / "best.json")
    save_result(result, out / "result.json")
    _print_outcome(result, out, args)
    return EXIT_OK


def _run(args: argparse.Namespace, config: Any, rows: list[dict[str, Any]], method_config: Any,
         scoring: tuple[Any, Any], out: Path | None) -> tuple[Any, Any, Any] | None:
    """Run the optimizer with the progress display and the run log (in `out`; a worker keeps none); None when
    interrupted by Ctrl-C."""
    from .progress import fan_out, progress_reporter
    from .prompt_optimization.events import LinePrinter
    from .prompt_optimization.options import RunOptions
    from .scripted import scripted_server

    run = _run_function(args.method)
    score_fn, env_factory = scoring
    with contextlib.ExitStack() as stack:
        base_url = stack.enter_context(scripted_server(config, rows, out, args.resume))
        log = None if out is None else stack.enter_context((out / "run.log").open("a", encoding="utf-8"))
        display = stack.enter_context(progress_reporter("quiet" if args.quiet else args.progress))
        endpoint = config.endpoint.build(base_url)
        optimizer = config.optimizer_endpoint.build(base_url)
        if log is not None:
            print(f"# {_command(args, out, resume=args.resume)}", file=log, flush=True)
        try:
            options = RunOptions(reporter=fan_out(display, None if log is None else LinePrinter(log)), progress=False,
                                 executor=config.executor(args.executor))
            result = asyncio.run(run(config.template, method_config, rows, endpoint, optimizer, score_fn,
                                     env_factory, options=options))
        except KeyboardInterrupt:
            if log is not None:
                print("interrupted (Ctrl-C)", file=log, flush=True)
            return None
    return result, endpoint, optimizer


def _check_out_dir(out: Path, state: Path, args: argparse.Namespace) -> None:
    has_state = state.exists() and any(state.iterdir())
    if has_state and not args.resume:
        raise ConfigError(f"{out} already holds a run's checkpoint; pass --resume to continue it, or choose "
                          "another --out (or delete the folder) to start over")
    if args.resume and not has_state and not args.quiet:
        print(f"note: nothing to resume in {state}; starting a new run", file=sys.stderr)


def _run_function(method: str) -> Any:
    if method == "gepa":
        from .prompt_optimization.gepa import run_gepa

        return run_gepa
    from .prompt_optimization.mipro import run_mipro

    return run_mipro


def _command(args: argparse.Namespace, out: Path, *, resume: bool) -> str:
    return shlex.join(["rollouts-dspy", "optimize", "--method", args.method, "--config", str(args.config),
                       "--out", str(out), *(["--resume"] if resume else []),
                       *(["--executor", args.executor] if args.executor != "local" else [])])


def _score_lines(result: Any) -> list[str]:
    """The initial and the best prompt's scores, as a finished command prints them."""
    from .report import score_summary

    records = {r.id: r for r in result.candidates}
    initial = next((r for r in result.candidates if r.origin == "initial"), None)
    chosen = records.get(result.best_candidate_id)
    return [f"initial prompt: {score_summary(initial) if initial else '-'}",
            f"best prompt:    {score_summary(chosen) if chosen else result.best_template.score}"]


def _print_outcome(result: Any, out: Path, args: argparse.Namespace) -> None:
    best = result.best_template
    print(f"done: {result.stop_reason}, {result.rollouts_used} rollouts")
    print("\n".join(_score_lines(result)))
    print(f"best template: {out / 'best.json'}")
    print(f"full result:   {out / 'result.json'}   (see: rollouts-dspy show {shlex.quote(str(out / 'result.json'))})")
    print(f"log:           {out / 'run.log'}")
    if not args.quiet:
        print("\nbest system prompt:\n" + best.system.rstrip("\n"))
        if best.few_shot_examples:
            print(f"(+ {len(best.few_shot_examples)} few-shot examples)")


def _interrupted(args: argparse.Namespace, out: Path, state: Path, config: Any) -> int:
    """Ctrl-C: the engines checkpoint after every generation/trial; save and print the best found so far."""
    from .io import save_template

    print("\ninterrupted: stopping.", file=sys.stderr)
    best = _best_from_checkpoint(args.method, state, config)
    if best is not None:
        save_template(best, out / "best.json")
        score = "n/a" if best.score is None else f"{best.score:.3f}"
        print(f"best so far (training score {score}) saved to {out / 'best.json'}:\n{best.system}")
    else:
        print("no candidate was fully evaluated yet: nothing to save", file=sys.stderr)
    if state.exists() and any(state.iterdir()):
        print(f"checkpoint: {state}\nresume with: {_command(args, out, resume=True)}", file=sys.stderr)
    return EXIT_INTERRUPTED


def _provider_down(args: argparse.Namespace, out: Path, state: Path, exc: Any) -> int:
    """The provider stopped answering: the engine wrote its checkpoint; say so and how to resume (no traceback).
    The message names the CLI's resume command, not the Python API's checkpoint directory."""
    exc = exc.with_resume_hint("resume it with --resume once the provider answers")
    print(f"rollouts-dspy: error: {exc}", file=sys.stderr)
    with contextlib.suppress(OSError), (out / "run.log").open("a", encoding="utf-8") as log:
        print(f"stopped: {exc}", file=log)
    if state.exists() and any(state.iterdir()):
        print(f"checkpoint: {state}\nresume with: {_command(args, out, resume=True)}", file=sys.stderr)
    return EXIT_FAILED


def _best_from_checkpoint(method: str, state: Path, config: Any) -> Any:
    """The best candidate recorded in the checkpoint, as a template; None when there is nothing readable."""
    from .partial import best_so_far

    try:
        return best_so_far(method, state, config.template)
    except (CheckpointError, OSError, ValueError, KeyError, TypeError):
        return None


# ---------------------------------------------------------------------------------------------------------------
# evaluate


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .config_file import load_config
    from .io import load_template
    from .prompt_optimization.evaluation import evaluate_detailed
    from .scripted import scripted_server

    config = load_config(args.config)
    template = load_template(args.template) if args.template else config.template
    rows = config.rows()
    split = config.split(len(rows))
    name = args.split or ("test" if split.test else "val" if split.val else "train")
    seeds = split.part(name)
    if not seeds:
        raise ConfigError(f"{args.config}: [dataset] {name}: the split has no {name} rows to evaluate on")
    if args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, but got {args.max_concurrent}")
    score_fn = config.score_fn()
    env_factory = config.environment_factory()
    _check_endpoints(config, optimizer=False)
    with scripted_server(config, rows) as base_url:
        endpoint = config.endpoint.build(base_url)
        report = asyncio.run(evaluate_detailed(template, list(seeds), rows, endpoint, score_fn, env_factory,
                                               args.max_concurrent))
    if args.out is not None:
        _write_evaluation(args.out, report, name, template)
    _print_evaluation(report, name, args)
    return EXIT_OK if report.mean is not None else EXIT_FAILED


def _print_evaluation(report: Any, split_name: str, args: argparse.Namespace) -> None:
    mean = "n/a" if report.mean is None else f"{report.mean:.3f}"
    if args.quiet:
        print(mean)
        return
    failed = f", {report.num_failed} failed ({dict(report.failures)})" if report.num_failed else ""
    cost = "" if report.usage.cost_usd is None else f", ${report.usage.cost_usd:.4f}"
    print(f"score {mean} on {len(report.rollouts)} {split_name} rows{failed} | {report.usage.calls} calls, "
          f"{report.usage.total_tokens:,} tokens{cost}")
    wrong = [r for r in report.rollouts if r.score is not None and r.score < 1.0][: max(args.show_failures, 0)]
    for r in wrong:
        inputs = "; ".join(f"{k}={v!r}" for k, v in r.inputs.items())
        print(f"  row {r.sample_index}: {inputs}\n    score {r.score:.2f}: {r.feedback}")


def _write_evaluation(path: Path, report: Any, split_name: str, template: Any) -> None:
    from .io import template_to_dict
    from .prompt_optimization.checkpoint import write_json_atomic

    write_json_atomic(path, {
        "schema": "rollouts-dspy/evaluation", "schema_version": 1, "split": split_name, "mean": report.mean,
        "failures": dict(report.failures), "template": template_to_dict(template),
        "rollouts": [r.to_dict() for r in report.rollouts],
    })


# ---------------------------------------------------------------------------------------------------------------
# show


def _cmd_show(args: argparse.Namespace) -> int:
    from .io import load_result
    from .report import build_report, render_report

    if "://" in args.result:
        from .cli_studies import study_result

        result = study_result(args)
        if result is None:
            return EXIT_OK
    elif args.study is not None:
        raise ConfigError("--study goes with a database URL (postgresql://...), not a result file")
    else:
        result = load_result(args.result)
    sections = build_report(result, top=max(args.top, 1))
    render_report(sections, sys.stdout, rich=sys.stdout.isatty() and not args.plain)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
