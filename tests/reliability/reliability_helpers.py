"""Shared pieces of the reliability suite: a tiny intent world, small configs for both engines, fault-tolerant
endpoints, and the invariants every faulty run must keep."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from rollouts_dspy import RunOptions
from rollouts_dspy.dtypes import Endpoint, Metric, Score
from rollouts_dspy.prompt_optimization.gepa import GEPAConfig, run_gepa
from rollouts_dspy.prompt_optimization.mipro import MIPROConfig, run_mipro
from rollouts_dspy.prompt_optimization.types import OptimizationResult, PromptTemplate
from rollouts_dspy.testing import QUICKSTART_INTENTS, generate_intent_queries

REPO = Path(__file__).resolve().parents[2]
FAKE_KEY = "sk-LEAKCHECK-7f3a9c2e51d84b6e"
"""A recognisable fake API key: no file, log line, message or repr may ever contain it."""

DATA = generate_intent_queries(40, seed=11)
TRAIN = tuple(range(16))
VAL = tuple(range(16, 28))
WEAK = PromptTemplate(
    system="Classify the query.",
    user_template="Query: {query}\nIntents: " + ", ".join(QUICKSTART_INTENTS),
)


def intent_score(trajectory, sample) -> Score:
    got = trajectory.final_text.strip()
    ok = got == sample.ground_truth
    return Score((Metric("correct", 1.0 if ok else 0.0),), None if ok else f"expected: {sample.ground_truth}")


def endpoints(server, *, api_key: str = "sk-test-not-a-real-key", **overrides: Any) -> tuple[Endpoint, Endpoint]:
    """(task, reflection) endpoints with short timeouts and fast retries: a timeout fault costs ~0.5 s."""
    params: dict[str, Any] = dict(provider="openai", api_base=server.base_url, api_key=api_key, timeout=0.5,
                                  max_retries=3, retry_backoff=0.01)
    params.update(overrides)
    return Endpoint(model="scripted-task", **params), Endpoint(model="scripted-reflect", **params)


LONGER: dict[str, dict[str, int]] = {"gepa": {"generations": 4, "max_concurrent": 4},
                                     "mipro": {"num_trials": 8, "max_concurrent": 4}}
"""Settings for runs that must last several steps (kill/interrupt tests)."""


def gepa_config(**kw: Any) -> GEPAConfig:
    params: dict[str, Any] = dict(population_size=4, generations=3, elite_size=1, train_seeds=TRAIN, val_seeds=VAL,
                                  minibatch_size=6, reflection_minibatch_size=3, val_candidates=2, seed=1,
                                  max_concurrent=8, mutation_attempts=2)
    params.update(kw)
    return GEPAConfig(**params)


def mipro_config(**kw: Any) -> MIPROConfig:
    params: dict[str, Any] = dict(num_candidates=3, num_trials=4, max_bootstrapped_demos=2, max_labeled_demos=2,
                                  num_demo_sets=3, minibatch_size=6, full_eval_every=2, num_top_for_validation=2,
                                  proposal_demos=4, summary_examples=4, train_seeds=TRAIN, val_seeds=VAL, seed=0,
                                  max_concurrent=8)
    params.update(kw)
    return MIPROConfig(**params)


async def run(method: str, server, config: Any = None, *, score_fn: Any = intent_score, data: Any = DATA,
              template: PromptTemplate = WEAK, api_key: str = "sk-test-not-a-real-key", **kw: Any,
              ) -> OptimizationResult:
    """One run of `method` ('gepa' or 'mipro') on `server` with the small configs above."""
    task, optimizer = endpoints(server, api_key=api_key, **kw.pop("endpoint_overrides", {}))
    options = RunOptions(reporter=kw.pop("reporter", None), progress=kw.pop("progress", False))
    if method == "gepa":
        return await run_gepa(template, config or gepa_config(), data, task, optimizer, score_fn, options=options, **kw)
    return await run_mipro(template, config or mipro_config(), data, task, optimizer, score_fn, options=options, **kw)


def measured_scores(result: OptimizationResult) -> list[tuple[Any, int, float]]:
    """Every (candidate record, sample index, score) the result claims was measured."""
    out = []
    for record in result.candidates:
        for split in (record.train_scores, record.val_scores):
            out.extend((record, i, s) for i, s in split.items())
    return out


def task_requests(server) -> int:
    return server.stats().requests_by_model.get("scripted-task", 0)


def write_script(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body))
    return path


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def popen(args: list[str], cwd: Path, **extra_env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=subprocess_env(**extra_env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def storage_kw(method: str, directory: Path) -> dict[str, str]:
    """The config field that turns on checkpointing for `method`, pointing into `directory`."""
    return {"checkpoint_dir": str(directory / "ckpt")}


def config_for(method: str, directory: Path | None = None, **kw: Any) -> Any:
    if directory is not None:
        kw.update(storage_kw(method, directory))
    return gepa_config(**kw) if method == "gepa" else mipro_config(**kw)


def journal_records(path: Path) -> list[dict[str, Any]]:
    """The records of a journal checkpoint (its header left out); [] while it cannot be read."""
    import json

    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            break  # a torn last line
    return out


def checkpoint_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".json", ".db")]


def saved_rollouts(directory: Path) -> list[dict[str, Any]]:
    """Every rollout the journals under `directory` hold (as dicts)."""
    return [r["r"] for p in directory.rglob("journal.jsonl") for r in journal_records(p) if r.get("t") == "r"]


def steps_done(directory: Path) -> int:
    """Steps (generations, trials) a journal under `directory` has recorded as finished; 0 while none can be
    read."""
    journals = list(directory.rglob("journal.jsonl"))
    return sum(1 for r in journal_records(journals[0]) if r.get("t") == "s" and "best" in r) if journals else 0


def checkpoint_rollouts(method: str, directory: Path) -> list[dict[str, Any]]:
    """Every rollout saved in the run's checkpoint (as dicts)."""
    return saved_rollouts(directory)
