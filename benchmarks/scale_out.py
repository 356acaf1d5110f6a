"""Scale-out: rollouts per second against worker processes, and what Ray and PostgreSQL add per rollout.

    python -m benchmarks.scale_out                      # prints the tables, writes benchmarks/results/scale_out.md
    python -m benchmarks.scale_out --cpu-ms 50 --rollouts 24 --workers 1 2 4 --repeats 3   # the defaults
    python -m benchmarks.scale_out --skip-ray --mipro-workers 1 2 4 --latency 0.4 --mipro-trials 30  # MIPRO only

The world: the calculator agent (generated arithmetic problems, 3-7 tool calls per rollout) whose every tool call
burns `--cpu-ms` of CPU in the process that runs the rollout -- a stand-in for an environment that runs code or a
browser. The scripted LLM server runs in its own process at zero latency. Each configuration evaluates one prompt
on `--rollouts` samples through the run's Evaluator (admission, cache, concurrency limit), from a fresh run, so
nothing is cached; the fastest of `--repeats` runs is reported.

- `local`: the default executor. Rollouts run on the driver's event loop, so CPU spent in tools serializes them:
  one process, whatever `max_concurrent`.
- `ray, N workers`: a local Ray cluster (started here, on loopback), `max_concurrent = N`, one CPU per rollout.

Overheads: the same rollouts with no CPU cost, one at a time, local against Ray (the difference is Ray's cost per
rollout: shipping the candidate, a task, the result back); a no-op Ray task's round trip; on a PostgreSQL server
started here (rollouts_dspy.testing.postgres), one budget admission in its own transaction (what reserving a
rollout across workers costs) and one Optuna ask+tell per trial against in-memory, SQLite and PostgreSQL storage.

MIPRO across workers (benchmarks/mipro_workers.py): 1, 2, 4 `rollouts-dspy worker` processes share one MIPRO
search through that PostgreSQL server, against a scripted server answering every call after `--latency` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

# Ray binds to loopback (read when Ray is imported): the benchmark's traffic stays on this machine.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rollouts_dspy.environments.calculator import CalculatorEnvironment  # noqa: E402

from .server import ServerProcess  # noqa: E402

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results" / "scale_out.md"
INSTRUCTION = ("Solve the arithmetic problem. Use the calculator tools for every arithmetic step, one operation "
               "at a time, then call complete_task with the final result.")


def burn(cpu_ms: float) -> None:
    """Spend `cpu_ms` of this thread's CPU time (not wall time: the same work on a busy machine)."""
    end = time.thread_time() + cpu_ms / 1000.0
    while time.thread_time() < end:
        pass


class BurningCalculator(CalculatorEnvironment):
    """The calculator, with `cpu_ms` of CPU work in every tool call."""

    def __init__(self, cpu_ms: float) -> None:
        super().__init__()
        self.cpu_ms = cpu_ms

    async def exec_tool(self, call):  # noqa: ANN001, ANN201
        burn(self.cpu_ms)
        return await super().exec_tool(call)


def make_environment(cpu_ms: float, row: dict) -> BurningCalculator:
    return BurningCalculator(cpu_ms)


# -- one measurement --------------------------------------------------------------------------------------------
async def rollouts_per_second(base_url: str, executor: Any, *, max_concurrent: int, n: int, cpu_ms: float
                              ) -> tuple[float, int]:
    """Seconds to evaluate one prompt on `n` fresh samples, and how many tool calls they made."""
    from rollouts_dspy.dtypes import Endpoint
    from rollouts_dspy.llm import LLMSession
    from rollouts_dspy.prompt_optimization.template_task import TemplateTask
    from rollouts_dspy.prompt_optimization.types import Candidate, PromptTemplate
    from rollouts_dspy.runtime import Budget, Runtime
    from rollouts_dspy.scorers import numeric_tolerance
    from rollouts_dspy.testing import generate_arithmetic_problems

    template = PromptTemplate(system=INSTRUCTION, user_template="{problem}")
    endpoint = Endpoint(provider="openai", model="scripted-task", api_base=base_url, api_key="scripted")
    task = TemplateTask(template, generate_arithmetic_problems(n, seed=0), endpoint, numeric_tolerance(),
                        LLMSession(max_concurrent=max(8, max_concurrent)),
                        environment_factory=functools.partial(make_environment, cpu_ms))
    task = executor.task(task)
    runtime = Runtime(method="gepa", budget=Budget(), max_concurrent=max_concurrent)
    started = time.perf_counter()
    results = await runtime.evaluator(task).evaluate(Candidate.from_template(template), range(n))
    seconds = time.perf_counter() - started
    if len(results) != n or any(r.error is not None for r in results.values()):
        raise RuntimeError(f"{n - len(results)} rollouts missing, errors: "
                           f"{[r.error for r in results.values() if r.error][:3]}")
    return seconds, sum(r.output.count("[tool call]") for r in results.values())


async def fastest(repeats: int, base_url: str, configs: list[tuple[Any, int, int, float]]) -> list[tuple[float, int]]:
    """Each (executor, max_concurrent, rollouts, cpu_ms) run `repeats` times, the configurations interleaved (so
    a change in the machine's load hits all of them alike); the fastest run of each."""
    best: list[tuple[float, int]] = [(float("inf"), 0)] * len(configs)
    for _ in range(repeats):
        for k, (executor, concurrent, n, cpu_ms) in enumerate(configs):
            run = await rollouts_per_second(base_url, executor, max_concurrent=concurrent, n=n, cpu_ms=cpu_ms)
            best[k] = min(best[k], run)
    return best


# -- the tables -------------------------------------------------------------------------------------------------
async def throughput_rows(base_url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    from rollouts_dspy.executors import LocalExecutor, RayExecutor

    ray = RayExecutor(num_cpus=max(args.workers))
    # Warm-up, outside the measurement: the first LLM calls of a process set up its LLM stack (seconds), in
    # this process and in every Ray worker process.
    await rollouts_per_second(base_url, LocalExecutor(), max_concurrent=4, n=8, cpu_ms=0)
    await rollouts_per_second(base_url, ray, max_concurrent=max(args.workers), n=4 * max(args.workers), cpu_ms=0)
    configs = [(LocalExecutor(), max(args.workers), args.rollouts, args.cpu_ms)]
    configs += [(ray, workers, args.rollouts, args.cpu_ms) for workers in args.workers]
    names = ["local (one process)"] + [f"ray, {w} worker{'s' if w > 1 else ''}" for w in args.workers]
    processes = [1, *args.workers]
    runs = await fastest(args.repeats, base_url, configs)
    return [{"executor": name, "workers": workers, "seconds": seconds, "tools": tools,
             "per_second": args.rollouts / seconds}
            for name, workers, (seconds, tools) in zip(names, processes, runs, strict=True)]


async def overhead_rows(base_url: str, args: argparse.Namespace) -> list[tuple[str, float, str]]:
    from rollouts_dspy.executors import LocalExecutor, RayExecutor

    n = args.overhead_rollouts
    (local, _), (ray, _) = await fastest(args.repeats, base_url, [(LocalExecutor(), 1, n, 0.0),
                                                                  (RayExecutor(), 1, n, 0.0)])
    return [("agent rollout (no CPU cost), local, one at a time", 1000 * local / n, f"{n} rollouts"),
            ("the same on Ray (1 worker)", 1000 * ray / n, f"{n} rollouts"),
            ("Ray's cost per rollout (difference)", 1000 * (ray - local) / n, ""),
            ("a no-op Ray task, round trip", ray_round_trip_ms(200), "200 tasks, one at a time")]


def ray_round_trip_ms(n: int) -> float:
    import ray

    noop = ray.remote(lambda: None)
    ray.get(noop.remote())
    started = time.perf_counter()
    for _ in range(n):
        ray.get(noop.remote())
    return 1000 * (time.perf_counter() - started) / n


def postgres_rows(storage: str, tmp: Path) -> list[tuple[str, float, str]]:
    rows = [("PostgreSQL: one budget admission (its own transaction)", admission_ms(storage, 300),
             "300, one at a time")]
    for name, url in (("in-memory", None), ("SQLite file", f"sqlite:///{tmp / 'optuna.db'}"), ("PostgreSQL", storage)):
        rows.append((f"Optuna ask + tell per trial, {name} storage", optuna_trial_ms(url, 40), "40 trials"))
    return rows


def admission_ms(url: str, n: int) -> float:
    """Reserve one rollout of a shared budget per transaction, as workers sharing a budget would."""
    import psycopg

    with psycopg.connect(url) as conn:
        with conn.transaction():
            conn.execute("CREATE TABLE IF NOT EXISTS budget (name text PRIMARY KEY, used int NOT NULL, "
                         "cap int NOT NULL)")
            conn.execute("INSERT INTO budget VALUES ('run', 0, %s) ON CONFLICT (name) DO UPDATE SET used = 0", (n,))
        started = time.perf_counter()
        for _ in range(n):
            with conn.transaction():
                row = conn.execute("UPDATE budget SET used = used + 1 WHERE name = 'run' AND used < cap "
                                   "RETURNING used").fetchone()
            if row is None:
                raise RuntimeError("the budget refused an admission it had room for")
        seconds = time.perf_counter() - started
    return 1000 * seconds / n


def optuna_trial_ms(url: str | None, n: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=url, sampler=optuna.samplers.RandomSampler(seed=0))
    started = time.perf_counter()
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, trial.suggest_float("x", 0.0, 1.0))
    return 1000 * (time.perf_counter() - started) / n


# -- output -----------------------------------------------------------------------------------------------------
def markdown(args: argparse.Namespace, rows: list[dict[str, Any]], overheads: list[tuple[str, float, str]],
             mipro: list[dict[str, Any]], load: tuple[float, float]) -> str:
    lines = [
        "# Scale-out (`python -m benchmarks.scale_out`)",
        "",
        f"Machine: {os.cpu_count()} cores ({platform.machine()}, Python {platform.python_version()}), shared: load "
        f"average {load[0]:.1f} when the run started, {load[1]:.1f} when it ended (other processes competed for "
        "the same cores, so the numbers are noisy).",
    ]
    if rows:
        lines += ["", *ray_markdown(args, rows)]
    if overheads:
        lines += ["", "## Overheads per rollout", "", "| overhead | ms | measured on |", "| --- | ---: | --- |"]
        lines += [f"| {what} | {ms:.2f} | {on} |" for what, ms, on in overheads]
    if mipro:
        from .mipro_workers import mipro_markdown

        lines += ["", *mipro_markdown(args, mipro)]
    return "\n".join(lines) + "\n"


def ray_markdown(args: argparse.Namespace, rows: list[dict[str, Any]]) -> list[str]:
    base = rows[1]["per_second"] if len(rows) > 1 else rows[0]["per_second"]
    lines = [
        "## Scale-out: rollouts on Ray workers",
        "",
        f"Throughput cannot grow past the cores: with {os.cpu_count()} cores, 4 workers share them. Calculator agent, "
        f"{args.cpu_ms:g} ms of CPU per tool call, {args.rollouts} rollouts per run, fastest of {args.repeats}; "
        "scripted server in its own process.",
        "",
        "| executor | worker processes | rollouts/s | wall s | tool calls | vs 1 Ray worker |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['executor']} | {r['workers']} | {r['per_second']:.1f} | {r['seconds']:.3f} | "
                     f"{r['tools']} | {r['per_second'] / base:.2f}x |")
    return [*lines, "", "A rollout alternates CPU work in its tools with waits on the LLM server, so a core left "
            "idle by a waiting worker can serve another: more workers than cores can still add throughput, up to what "
            "the cores can burn. `local` runs every rollout on the driver's event loop, where the tools' CPU work "
            "blocks the other rollouts: one process's worth, whatever `max_concurrent` says."]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=24)
    parser.add_argument("--cpu-ms", type=float, default=50.0, help="CPU burned per tool call")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="Ray worker processes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--overhead-rollouts", type=int, default=40)
    parser.add_argument("--skip-ray", action="store_true", help="skip the Ray throughput table and Ray overheads")
    parser.add_argument("--no-postgres", action="store_true",
                        help="skip what needs PostgreSQL: its overhead rows and the MIPRO workers")
    parser.add_argument("--mipro-workers", type=int, nargs="+", default=[1, 2, 4],
                        help="`rollouts-dspy worker` processes sharing one MIPRO study, one row each")
    parser.add_argument("--latency", type=float, default=0.4,
                        help="seconds the scripted server waits before answering each call of the MIPRO workers")
    parser.add_argument("--mipro-trials", type=int, default=30, help="num_trials of the MIPRO workers' search")
    parser.add_argument("--skip-mipro", action="store_true", help="skip the MIPRO workers")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the markdown section")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import contextlib
    import tempfile

    from rollouts_dspy.testing.postgres import TempPostgres

    args = parse_args(argv)
    load_start = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    overheads: list[tuple[str, float, str]] = []
    mipro: list[dict[str, Any]] = []
    if not args.skip_ray:
        with ServerProcess() as server:
            import ray.cloudpickle

            # Workers get this module's environment by value: it need not be importable where they run.
            ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
            rows = asyncio.run(throughput_rows(server.base_url, args))
            overheads = asyncio.run(overhead_rows(server.base_url, args))
    with tempfile.TemporaryDirectory() as tmp, \
            (contextlib.nullcontext() if args.no_postgres else TempPostgres()) as pg:
        if pg is not None:
            overheads += postgres_rows(pg.url, Path(tmp))
        if pg is not None and not args.skip_mipro:
            from .mipro_workers import mipro_worker_rows

            with ServerProcess(latency=args.latency) as server:
                mipro = mipro_worker_rows(pg.url, server, Path(tmp), args)
    text = markdown(args, rows, overheads, mipro, (load_start, os.getloadavg()[0]))
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
