"""What one LLM call costs this process: CPU per call and peak memory, against the scripted server at zero latency.

    python -m benchmarks.llm_overhead [--calls 2000] [--concurrency 16] [--modes http,litellm,session]

The server runs in its own process (`benchmarks.server.ServerProcess`), so its CPU is not counted; each mode runs
in a fresh process of its own, so its imports and peak RSS are its alone. Modes:

- `bare`            nothing: Python and the stdlib (the interpreter's own floor)
- `http`            the transport floor: an httpx POST of the same JSON body and `json.loads` of the answer
- `litellm`         `litellm.acompletion` with the arguments our layer passes, nothing around it
- `session`         `LLMSession.complete`: our layer (retries, limiter, accounting) over litellm, unpriced model
- `session-priced`  the same with `Endpoint.pricing` set (dollars counted per call)
- `session-table`   the same for a model litellm's price table knows (`gpt-4o-mini`, still the scripted server)

Per mode it prints the CPU seconds of the imports, CPU ms per call (process time over the calls, after one warm-up
call) and the peak RSS of the process. `measure(...)` and `cli_startup(...)` return the rows as dicts for the
benchmark harness.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

__all__ = ["MODES", "cli_startup", "measure", "run_mode"]

MODES = ("bare", "http", "litellm", "session", "session-priced", "session-table")
SYSTEM = ("Classify the customer's banking query into one intent.\nIntents: card_arrival, request_refund, "
          "pin_blocked, exchange_rate, top_up_failed, lost_or_stolen_card.\nAnswer with the intent name only.")
QUERY = "Query: my card has not arrived yet, what should I do?"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _caller(mode: str, base_url: str) -> Any:
    """(imports done) an async function making one call in `mode`."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUERY}]
    if mode == "http":
        import httpx

        client = httpx.AsyncClient(base_url=base_url, timeout=30.0)
        body = {"model": "scripted-task", "messages": messages, "temperature": 0.0}

        async def call_http() -> None:
            response = await client.post("/chat/completions", json=body)
            json.loads(response.content)["choices"][0]["message"]["content"]

        return call_http
    from rollouts_dspy.providers import litellm_module

    litellm = litellm_module()  # imported here in every litellm mode, so "import CPU" compares like with like
    if mode == "litellm":

        async def call_litellm() -> None:
            await litellm.acompletion(model="openai/scripted-task", messages=messages, api_base=base_url,
                                      api_key="scripted", temperature=0.0, timeout=30.0, num_retries=0)

        return call_litellm
    from rollouts_dspy.dtypes import Endpoint, Message
    from rollouts_dspy.llm import LLMSession

    extra: dict[str, Any] = {"pricing": (0.15, 0.6)} if mode == "session-priced" else {}
    model = "gpt-4o-mini" if mode == "session-table" else "scripted-task"
    endpoint = Endpoint(provider="openai", model=model, api_base=base_url, api_key="scripted", timeout=30.0, **extra)
    session = LLMSession(max_concurrent=1_000_000)  # the benchmark's own limit below decides the concurrency
    typed = [Message("system", SYSTEM), Message("user", QUERY)]

    async def call_session() -> None:
        await session.complete(endpoint, typed)

    return call_session


async def _drive(call: Any, calls: int, concurrency: int) -> tuple[float, float]:
    await call()  # warm-up: first-call setup (client creation, lazy imports) is not the per-call cost
    limit = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with limit:
            await call()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    return time.process_time() - cpu0, time.perf_counter() - wall0


def run_mode(mode: str, base_url: str, calls: int, concurrency: int) -> dict[str, Any]:
    """Measure `mode` in this process (call it in a fresh one: imports and peak RSS are process-wide)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, but got {mode!r}")
    cpu0 = time.process_time()
    call = _caller(mode, base_url) if mode != "bare" else None
    import_cpu = time.process_time() - cpu0
    rss_after_import = _peak_rss_mb()
    cpu, wall = asyncio.run(_drive(call, calls, concurrency)) if call is not None else (0.0, 0.0)
    return {"mode": mode, "calls": calls if call else 0, "concurrency": concurrency, "import_cpu_s": import_cpu,
            "cpu_ms_per_call": 1000.0 * cpu / calls if call else None, "wall_s": wall,
            "rss_after_import_mb": rss_after_import, "peak_rss_mb": _peak_rss_mb()}


def measure(modes: tuple[str, ...] = MODES, *, calls: int = 2000, concurrency: int = 16) -> list[dict[str, Any]]:
    """Each mode in a fresh process against one scripted server in another."""
    from .server import ServerProcess

    rows = []
    with ServerProcess() as server:
        for mode in modes:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.llm_overhead", "--worker", mode, "--base-url", server.base_url,
                 "--calls", str(calls), "--concurrency", str(concurrency)],
                capture_output=True, text=True, check=True, env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def cli_startup(result_json: str | None = None, repeats: int = 3) -> list[dict[str, Any]]:
    """Wall time (best of `repeats`) of `rollouts-dspy --help` and, given a result file, `rollouts-dspy show`."""
    commands = {"--help": ["--help"]}
    if result_json is not None:
        commands["show"] = ["show", result_json, "--plain"]
    rows = []
    for name, args in commands.items():
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "rollouts_dspy.cli", *args], capture_output=True, check=True)
            best = min(best, time.perf_counter() - t0)
        rows.append({"command": f"rollouts-dspy {name}", "wall_s": best})
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    print(f"{'mode':<16}{'import CPU s':>12}{'CPU ms/call':>12}{'RSS after import MB':>21}{'peak RSS MB':>13}")
    for r in rows:
        per_call = "-" if r["cpu_ms_per_call"] is None else f"{r['cpu_ms_per_call']:.2f}"
        print(f"{r['mode']:<16}{r['import_cpu_s']:>12.2f}{per_call:>12}{r['rss_after_import_mb']:>21.0f}"
              f"{r['peak_rss_mb']:>13.0f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, of " + ", ".join(MODES))
    parser.add_argument("--show", default=None, help="a result.json to time `rollouts-dspy show` on")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(run_mode(args.worker, args.base_url, args.calls, args.concurrency)))
        return
    _print(measure(tuple(m for m in args.modes.split(",") if m), calls=args.calls, concurrency=args.concurrency))
    for row in cli_startup(args.show):
        print(f"{row['command']:<28} {row['wall_s']:.2f} s wall")


if __name__ == "__main__":
    main()
