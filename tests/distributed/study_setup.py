"""What the shared-study tests set up: a run config on the scripted server, worker processes started through the
CLI, and reads of the study's tables (the tests check the database itself, not only what the workers print)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from rollouts_dspy.config_file import load_config
from rollouts_dspy.prompt_optimization.mipro import run_mipro
from rollouts_dspy.studies.schema import answers, budgets, claims, rollouts
from rollouts_dspy.testing import generate_intent_queries

MIPRO = {"num_candidates": 5, "num_trials": 10, "minibatch_size": 8, "full_eval_every": 4, "proposal_demos": 12,
         "max_bootstrapped_demos": 2, "num_demo_sets": 4, "max_concurrent": 4, "max_rollouts": 1500, "seed": 0}
LEASE_SECONDS = 3.0


def write_config(folder: Path, base_url: str, name: str = "run.toml", **mipro: Any) -> Path:
    """A MIPRO run config on the scripted server at `base_url`: 40 training rows, 24 validation rows."""
    rows = folder / "rows.jsonl"
    if not rows.exists():
        rows.write_text("".join(json.dumps(r) + "\n" for r in generate_intent_queries(64, seed=3)))
    settings = {**MIPRO, **mipro}
    table = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
    path = folder / name
    path.write_text(f"""
[template]
system = "Classify the customer query."
user_template = "Query: {{query}}"

[dataset]
path = "rows.jsonl"
inputs = ["query"]
label = "intent"
train = "0:40"
val = "40:64"

[scorer]
type = "exact_match"

[endpoint]
provider = "openai"
model = "scripted-task"
api_base = "{base_url}"
max_retries = 2
retry_backoff = 0.01

[optimizer_endpoint]
provider = "openai"
model = "scripted-reflect"
api_base = "{base_url}"
max_retries = 2
retry_backoff = 0.01

[mipro]
{table}
""")
    return path


async def single_run(config_path: Path, base_url: str, **overrides: Any) -> Any:
    """The same search as one ordinary run_mipro in this process (no study), on the server at `base_url`."""
    config = load_config(config_path)
    rows = config.rows()
    split = config.split(len(rows))
    mipro = config.method_config("mipro", split.train, split.val, None, overrides=overrides)
    endpoint = dataclasses.replace(config.endpoint.build(), api_base=base_url)
    proposer = dataclasses.replace(config.optimizer_endpoint.build(), api_base=base_url)
    return await run_mipro(config.template, mipro, rows, endpoint, proposer, config.score_fn(), progress=False)


def start_worker(storage: str, study: str, config_path: Path, name: str) -> subprocess.Popen[str]:
    """`rollouts-dspy worker` in a process of its own."""
    command = [sys.executable, "-m", "rollouts_dspy.cli", "worker", "--storage", storage, "--study", study,
               "--config", str(config_path), "--name", name, "--lease-seconds", str(LEASE_SECONDS), "--quiet"]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


class StudyTables:
    """Read-only queries on one study's rows."""

    def __init__(self, storage: str, study: str) -> None:
        self.engine = sa.create_engine(storage)
        self.study = study

    def close(self) -> None:
        self.engine.dispose()

    def _scalar(self, query: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def exists(self, table: sa.Table) -> bool:
        with self.engine.connect() as conn:
            return sa.inspect(conn).has_table(table.name)

    def count(self, table: sa.Table, *where: Any) -> int:
        return int(self._scalar(sa.select(sa.func.count()).select_from(table)
                                .where(table.c.study == self.study, *where)))

    def claims_of(self, worker: str, kind: str | None = None) -> int:
        return self.count(claims, claims.c.worker == worker, *([] if kind is None else [claims.c.kind == kind]))

    def calls_finished_by(self, worker: str) -> int:
        """Calls the worker made and stored: its rollouts (one call each here) and its answered proposer calls."""
        return (self.count(rollouts, rollouts.c.worker == worker, rollouts.c.state != "refused")
                + self.count(answers, answers.c.worker == worker, answers.c.error.is_(None)))

    def admitted(self) -> int:
        return int(self._scalar(sa.select(budgets.c.rollouts_used).where(budgets.c.study == self.study)))

    def stored_rollouts(self) -> int:
        return self.count(rollouts, rollouts.c.state != "refused")
