"""The LLM layer's own cost per call, its memory floor and the CLI's start-up time, for the issue-12 goal rows.

The measurements are `benchmarks/llm_overhead.py`'s (`measure`, `cli_startup`: written with the LLM layer); this
module only runs them and stores one record (`mode: "overhead"`) in the results file. While that module is not
in the tree, nothing runs and the goal rows say "not available yet". `rollouts-dspy show` is timed on the result
of a small `run_gepa` run made here on the scripted server.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["available", "run_overhead"]

CALLS = 2000
CONCURRENCY = 16


def available() -> bool:
    try:
        from . import llm_overhead  # noqa: F401
    except ImportError:
        return False
    return True


def _small_result(directory: Path) -> Path:
    from rollouts_dspy import GEPAConfig, RunOptions, run_gepa
    from rollouts_dspy.dtypes import Endpoint, Metric, Score
    from rollouts_dspy.io import save_result
    from rollouts_dspy.prompt_optimization.types import PromptTemplate
    from rollouts_dspy.scorers import answer_text
    from rollouts_dspy.testing import ScriptedServer, generate_intent_queries

    def score_fn(trajectory, sample) -> Score:  # noqa: ANN001 - the rollouts ScoreFn shape
        ok = answer_text(trajectory).strip().lower() == str(sample.ground_truth).lower()
        return Score(metrics=(Metric("correct", float(ok)),), feedback="" if ok else f"expected: {sample.ground_truth}")

    rows = generate_intent_queries(40, seed=0)
    with ScriptedServer() as server:
        common = dict(provider="openai", api_base=server.base_url, api_key="scripted")
        result = asyncio.run(run_gepa(
            PromptTemplate(system="Classify the query.", user_template="Query: {query}"),
            GEPAConfig(train_seeds=tuple(range(30)), val_seeds=tuple(range(30, 40)), population_size=2,
                       elite_size=1, generations=2, max_rollouts=60, seed=0),
            rows, Endpoint(model="scripted-task", **common), Endpoint(model="scripted-reflect", **common),
            score_fn, options=RunOptions(progress=False)))
    return save_result(result, directory / "result.json")


def run_overhead() -> dict[str, Any] | None:
    """One record: the LLM layer's CPU per call and peak RSS (`session` mode) and the CLI start-up times."""
    if not available():
        return None
    from . import llm_overhead

    rows = llm_overhead.measure(("session",), calls=CALLS, concurrency=CONCURRENCY)
    with tempfile.TemporaryDirectory() as tmp:
        cli = llm_overhead.cli_startup(str(_small_result(Path(tmp))))
    return {"mode": "overhead", "session": rows[0], "cli": cli}
