"""Scale: wall time and peak memory of one GEPA generation and one MIPRO trial batch as the dataset grows.

One run per (engine, samples, population) in a fresh process, on the generated intent queries
(`generate_intent_queries(n, seed=0)`) against a zero-latency scripted server. GEPA: `generations=2` (the root's
evaluation on every training row, then one generation of `population` children with minibatch gating). MIPRO: one
trial batch of `population` trials (`num_trials = trials_per_batch = population`), bootstrapping and proposals
included. Every run is capped at the preset's rollout cap so the grid fits the machine; `stop_reason` says when the
cap, not the generation's end, stopped a run.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

from .metering import METER
from .worlds import judge_intent

__all__ = ["run_scale"]

_VAL_ROWS = 20


def _score_fn():
    from rollouts_dspy.dtypes import Metric, Score
    from rollouts_dspy.scorers import answer_text

    def score_fn(trajectory, sample) -> Score:  # noqa: ANN001
        METER.count()
        score, feedback = judge_intent(answer_text(trajectory), str(sample.ground_truth))
        return Score(metrics=(Metric("correct", score),), feedback=feedback)

    return score_fn


def run_scale(spec: dict[str, Any]) -> dict[str, Any]:
    from rollouts_dspy.dtypes import Endpoint
    from rollouts_dspy.prompt_optimization.types import PromptTemplate
    from rollouts_dspy.testing import generate_intent_queries

    n, population, cap = spec["samples"], spec["population"], spec["cap"]
    rows = generate_intent_queries(n + _VAL_ROWS, seed=0)
    train, val = tuple(range(n)), tuple(range(n, n + _VAL_ROWS))
    template = PromptTemplate(system="Classify the query.", user_template="Query: {query}")
    common = dict(provider="openai", api_base=spec["base_url"], api_key="scripted", timeout=60.0, max_retries=2,
                  retry_backoff=0.05)
    task, reflect = Endpoint(model="scripted-task", **common), Endpoint(model="scripted-reflect", **common)
    METER.reset()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if spec["engine"] == "gepa":
        from rollouts_dspy import GEPAConfig, RunOptions, run_gepa

        config = GEPAConfig(population_size=population, elite_size=2, generations=2,
                            train_seeds=train, val_seeds=val, max_rollouts=cap, max_concurrent=32, seed=0)
        result = asyncio.run(run_gepa(template, config, rows, task, reflect, _score_fn(),
                                      options=RunOptions(progress=False)))
    else:
        from rollouts_dspy import MIPROConfig, RunOptions, run_mipro

        config = MIPROConfig(num_candidates=6, num_trials=population, trials_per_batch=population,
                             minibatch_size=35, train_seeds=train, val_seeds=val, max_rollouts=cap,
                             max_concurrent=32, seed=0)
        result = asyncio.run(run_mipro(template, config, rows, task, reflect, _score_fn(),
                                      options=RunOptions(progress=False)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rollouts = result.rollouts_used
    return {
        "engine": spec["engine"],
        "samples": n,
        "population": population,
        "cap": cap,
        "wall_s": wall,
        "cpu_s": cpu,
        "rollouts": rollouts,
        "cpu_ms_per_rollout": 1000.0 * cpu / rollouts if rollouts else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "stop_reason": result.stop_reason,
        "generations": len(result.history),
    }
