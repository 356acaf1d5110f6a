"""A shared MIPRO study on the scripted server, for tests and benchmarks (like TempPostgres, a testing tool): the
run config file every worker reads, `rollouts-dspy worker` started as a process of its own (as a user starts it),
and read-only queries on the study's tables (what was really stored, not only what the workers print).

    config = write_study_config(folder, server.base_url, num_trials=4)
    worker = start_worker(pg.url, "banking", config, "alpha")
    out, err = worker.communicate()
    StudyTables(pg.url, "banking").stored_rollouts()

Needs the `[postgres]` extra (SQLAlchemy and a PostgreSQL driver).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..studies.schema import answers, budgets, claims, rollouts
from .worlds import generate_intent_queries

__all__ = ["STUDY_MIPRO", "StudyTables", "start_worker", "write_study_config"]

STUDY_MIPRO: dict[str, Any] = {
    "num_candidates": 5, "num_trials": 10, "minibatch_size": 8, "full_eval_every": 4, "proposal_demos": 12,
    "max_bootstrapped_demos": 2, "num_demo_sets": 4, "max_concurrent": 4, "max_rollouts": 1500, "seed": 0}
"""The `[mipro]` table `write_study_config` writes; its keyword arguments override entries or add fields."""


def write_study_config(folder: Path, base_url: str, name: str = "run.toml", **mipro: Any) -> Path:
    """A MIPRO run config (`folder/name`) on the scripted server at `base_url`: intent classification, 40 training
    rows and 24 validation rows (written once to `folder/rows.jsonl`), exact-match scoring."""
    rows = folder / "rows.jsonl"
    if not rows.exists():
        rows.write_text("".join(json.dumps(r) + "\n" for r in generate_intent_queries(64, seed=3)))
    table = "\n".join(f"{k} = {json.dumps(v)}" for k, v in {**STUDY_MIPRO, **mipro}.items())
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


def start_worker(storage: str, study: str, config_path: Path, name: str, *,
                 lease_seconds: float | None = None) -> subprocess.Popen[str]:
    """`rollouts-dspy worker --quiet` in a process of its own, its stdout and stderr piped (read them with
    `communicate()`). `lease_seconds` None: the command's default."""
    command = [sys.executable, "-m", "rollouts_dspy.cli", "worker", "--storage", storage, "--study", study,
               "--config", str(config_path), "--name", name, "--quiet"]
    if lease_seconds is not None:
        command += ["--lease-seconds", str(lease_seconds)]
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
        """Rollouts run and stored (done or failed; not the ones the budget refused)."""
        return self.count(rollouts, rollouts.c.state != "refused")

    def answered_proposer_calls(self) -> int:
        return self.count(answers, answers.c.error.is_(None))
