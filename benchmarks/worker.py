"""One contender's runs in a fresh process: `python -m benchmarks.worker SPEC.json OUT.json`.

A fresh process per contender and world (its seeds run one after another: importing litellm alone costs ~5 s of
this machine, too much to pay per run) makes peak memory (ru_maxrss: the peak over that contender's seeds) and
CPU time (process_time deltas around each run) belong to that contender alone; the scripted server runs in its
own process, so its CPU is not counted. Measured: wall time, CPU, peak RSS around the
optimizer call; the meter's rollouts and candidate log; the server's requests by model and tokens. After the
measurement, every logged candidate and the final one are scored on the held-out rows (the curve), outside the
budget, on the zero-latency evaluation server.
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


def run(spec: dict[str, Any]) -> dict[str, Any]:
    world = make_world(spec["world"], **spec["world_args"])
    contender = get(spec["contender"])
    ctx = RunContext(world=world, budget=spec["budget"], seed=spec["seed"], latency=spec["latency"],
                     concurrency=spec["concurrency"], base_url=spec["base_url"])
    METER.reset()
    if not world.uses_tools:  # one task call per rollout: count rollouts where they are paid, at the server
        METER.position = lambda: int(server_stats(ctx.base_url)["requests_by_model"].get("scripted-task", 0))
    reset_server(ctx.base_url)
    rss_before = _peak_rss_mb()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = contender.run(ctx)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    peak_rss = _peak_rss_mb()
    stats = server_stats(ctx.base_url)
    log = METER.log.to_list()
    by_model = stats.get("requests_by_model", {})
    task_calls = int(by_model.get("scripted-task", 0))
    reflect_calls = sum(int(v) for k, v in by_model.items() if k != "scripted-task")
    rollouts = METER.metric_calls if world.uses_tools else task_calls
    evaluator = HeldOutEvaluator(world, spec["eval_url"], concurrency=8,
                                 cache_file=Path(spec["cache_file"]) if spec.get("cache_file") else None)
    eval0 = time.perf_counter()
    scores = {c["key"]: evaluator.score(c["spec"]) for c in log} if spec.get("curve", True) else {}
    final = evaluator.score(result.final_spec)
    discoveries = [[c["rollouts"], scores[c["key"]]] for c in log if c["key"] in scores]
    evaluator.save()
    return {
        "contender": contender.name,
        "world": world.name,
        "seed": ctx.seed,
        "budget": ctx.budget,
        "final_val": final,
        "curve": curve(log, scores, spec["checkpoints"]),
        "discoveries": discoveries,
        "rollouts": rollouts,
        "metric_calls": METER.metric_calls,
        "task_calls": task_calls,
        "reflect_calls": reflect_calls,
        "tokens": int(stats.get("prompt_tokens", 0)) + int(stats.get("completion_tokens", 0)),
        "max_in_flight": stats.get("max_in_flight"),
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_ms_per_rollout": 1000.0 * cpu / rollouts if rollouts else None,
        "peak_rss_mb": peak_rss,
        "rss_at_start_mb": rss_before,
        "candidates_logged": len(log),
        "heldout_eval_s": time.perf_counter() - eval0,
        "extra": result.extra,
    }


def _warm_up(eval_url: str) -> None:
    """Pay the one-time import and first-call costs (litellm, dspy, gepa, optuna) before the clock starts, so CPU
    per rollout is the optimizer's steady-state cost. The warm-up call goes to the evaluation server."""
    import litellm

    for module in ("dspy", "gepa", "optuna", "rollouts_dspy.prompt_optimization.gepa",
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


def _one(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        if spec.get("mode") == "scale":
            from .scale import run_scale

            return run_scale(spec)
        return run(spec)
    except Exception as exc:  # noqa: BLE001 - a crashed contender is a row with its error, not a crashed harness
        return {"contender": spec.get("contender"), "world": spec.get("world"), "seed": spec.get("seed"),
                "engine": spec.get("engine"), "samples": spec.get("samples"), "population": spec.get("population"),
                "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}


def main(argv: list[str]) -> int:
    """SPEC.json holds a list of run specs, run in order; OUT.json gets the list of results."""
    specs = json.loads(Path(argv[0]).read_text())
    _quiet()
    _warm_up(specs[0].get("eval_url") or specs[0]["base_url"])
    out = [_one(spec) for spec in specs]
    Path(argv[1]).write_text(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
