"""One contender's runs in a fresh process: `python -m benchmarks.worker SPEC.json STORE.jsonl`.

A fresh process per contender and world (its seeds run one after another: importing litellm alone costs ~5 s of
this machine, too much to pay per run) makes peak memory (ru_maxrss: the peak over that contender's seeds) and
CPU time (process_time deltas around each run) belong to that contender alone; the scripted server runs in its
own process, so its CPU is not counted. Measured: wall time, CPU, peak RSS around the
optimizer call; the meter's rollouts and candidate log; the server's requests by model, tokens and dependent
rounds. After the measurement, every logged candidate, the final one, the weak start and any other candidate the
contender names (`also_score`) are scored on the held-out rows (the curve, the gain, `also_val`), outside the
budget.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DSPY_CACHEDIR", "/tmp/benchmarks-dspy-cache")

from .contenders import RunContext, get  # noqa: E402
from .evaluator import HeldOutEvaluator  # noqa: E402
from .metering import METER  # noqa: E402
from .server import reset_server, server_stats  # noqa: E402
from .store import append  # noqa: E402
from .worlds import make_world  # noqa: E402


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def curve(log: list[dict[str, Any]], scores: dict[str, float], checkpoints: list[int]) -> list[dict[str, Any]]:
    """Best held-out score among the candidates first run at or before each checkpoint (the best prompt the
    search had produced by then)."""
    out = []
    for point in checkpoints:
        seen = [scores[c["key"]] for c in log if c["rollouts"] <= point and c["key"] in scores]
        out.append({"rollouts": point, "val": max(seen) if seen else None})
    return out


def _calls(stats: dict[str, Any]) -> tuple[int, int]:
    by_model = stats.get("requests_by_model", {})
    task = int(by_model.get("scripted-task", 0))
    return task, sum(int(v) for k, v in by_model.items() if k != "scripted-task")


def run(spec: dict[str, Any]) -> dict[str, Any]:
    world = make_world(spec["world"], spec["seed"])
    contender = get(spec["contender"])
    ctx = RunContext(world=world, budget=spec["budget"], seed=spec["seed"], latency=spec["latency"],
                     concurrency=spec["concurrency"], base_url=spec["base_url"])
    METER.reset()
    METER.started = lambda: _calls(server_stats(ctx.base_url))[0] > 0
    if not world.uses_tools:  # one task call per rollout: count rollouts where they are paid, at the server
        METER.position = lambda: _calls(server_stats(ctx.base_url))[0]
    reset_server(ctx.base_url)
    rss_before = _peak_rss_mb()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = contender.run(ctx)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    peak_rss = _peak_rss_mb()
    stats = server_stats(ctx.base_url)
    log = METER.log.to_list()
    task_calls, reflect_calls = _calls(stats)
    rollouts = METER.metric_calls if world.uses_tools else task_calls
    evaluator = HeldOutEvaluator(world, spec["eval_url"], concurrency=8)
    eval0 = time.perf_counter()
    scores = {c["key"]: evaluator.score(c["spec"]) for c in log}
    final = evaluator.score(result.final_spec)
    start = evaluator.score(contender.start_spec(world))
    also = {name: evaluator.score(spec) for name, spec in result.also_score.items()}
    discoveries = [[c["rollouts"], scores[c["key"]]] for c in log if c["key"] in scores]
    return {
        "start_val": start,
        "final_val": final,
        "gain": final - start,
        "also_val": also,
        "curve": curve(log, scores, spec["checkpoints"]),
        "discoveries": discoveries,
        "rollouts": rollouts,
        "metric_calls": METER.metric_calls,
        "score_fn_probes": METER.probes,
        "task_calls": task_calls,
        "reflect_calls": reflect_calls,
        "tokens": int(stats.get("prompt_tokens", 0)) + int(stats.get("completion_tokens", 0)),
        "max_in_flight": stats.get("max_in_flight"),
        "rounds": (stats.get("critical_path") or {}).get("rounds"),
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_ms_per_rollout": 1000.0 * cpu / rollouts if rollouts else None,
        "cpu_ms_per_task_call": 1000.0 * cpu / task_calls if task_calls else None,
        "peak_rss_mb": peak_rss,
        "rss_at_start_mb": rss_before,
        "candidates_logged": len(log),
        "heldout_eval_s": time.perf_counter() - eval0,
        "extra": result.extra,
    }


def _warm_up(eval_url: str, *, peers: bool) -> None:
    """Pay the one-time import and first-call costs (litellm, optuna, and with `peers` dspy and gepa) before the
    clock starts, so CPU per rollout is the optimizer's steady-state cost. The scale grid measures the rollouts
    API alone, so it does not import DSPy or gepa (a rollouts user's process does not hold them in memory). The
    warm-up call goes to the evaluation server."""
    import litellm

    modules = ("dspy", "gepa") if peers else ()
    for module in (*modules, "optuna", "rollouts_dspy.prompt_optimization.gepa",
                   "rollouts_dspy.prompt_optimization.mipro"):
        try:
            __import__(module)
        except ImportError:
            pass
    litellm.completion(model="openai/scripted-task", api_base=eval_url, api_key="scripted",
                       messages=[{"role": "user", "content": "Query: warm up"}])


def _quiet() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    import litellm

    litellm.suppress_debug_info = True  # else every cost lookup of an unknown model prints the provider list
    for name in ("dspy", "gepa", "LiteLLM", "litellm", "optuna", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
    except ImportError:
        pass


_ID_FIELDS = ("suite", "contender", "world", "budget", "seed", "concurrency", "latency", "kind", "ours", "commit",
              "code_hash")


def _one(spec: dict[str, Any]) -> dict[str, Any]:
    ident = {k: spec.get(k) for k in _ID_FIELDS}
    started = time.perf_counter()
    try:
        if spec.get("mode") == "scale":
            from .scale import run_scale

            return {"mode": "scale", "commit": spec.get("commit"), "code_hash": spec.get("code_hash"),
                    **run_scale(spec)}
        return {**ident, **run(spec)}
    except Exception as exc:  # noqa: BLE001 - a crashed contender is a row with its error, not a crashed harness
        return {**ident, "mode": spec.get("mode"), "engine": spec.get("engine"), "samples": spec.get("samples"),
                "population": spec.get("population"), "cap": spec.get("cap"), "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-4000:], "wall_s": time.perf_counter() - started}


def main(argv: list[str]) -> int:
    """SPEC.json holds a list of run specs, run in order; each result is appended to OUT (a JSON-lines file: the
    results store for benchmark runs) as soon as it is finished."""
    specs = json.loads(Path(argv[0]).read_text())
    out = Path(argv[1])
    _quiet()
    _warm_up(specs[0].get("eval_url") or specs[0]["base_url"],
             peers=any(spec.get("mode") != "scale" for spec in specs))
    for spec in specs:
        append(out, _one(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
