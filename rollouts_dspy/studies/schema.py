"""The tables of shared studies, next to Optuna's in the same database. Every row is keyed by the study's name.

    rdspy_studies   one row per study: the fingerprint every worker must agree on, its config, the final result
    rdspy_budgets   the study's budget and what all its workers were admitted and paid (the hot row, kept small)
    rdspy_workers   who is alive: each worker's heartbeat pushes its `alive_until` forward
    rdspy_claims    work a worker is doing now (a rollout, a proposer call, a job); valid while its worker is alive
    rdspy_rollouts  finished rollouts by (model, candidate key, row); `refused` when the budget said no
    rdspy_answers   finished proposer calls by request digest (a failure keeps its error)
    rdspy_jobs      work done once per study (the candidate pool) and its value
    rdspy_trials    each trial as the first worker to tell it recorded it

`create_schema` creates what is missing (idempotent) while holding a PostgreSQL advisory lock, so workers starting
together do not race on CREATE TABLE; joining a study (and Optuna's own table creation) happens under the same lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

__all__ = ["SCHEMA_LOCK", "answers", "budgets", "claims", "create_schema", "jobs", "metadata", "rollouts",
           "schema_lock", "studies", "trials", "workers"]

SCHEMA_LOCK = 0x7264737079  # "rdspy": the advisory lock key under which tables are created and workers join

metadata = sa.MetaData()
_NAME = sa.String(200)
_TIME = sa.DateTime(timezone=True)


def _study() -> sa.Column[Any]:
    return sa.Column("study", _NAME, primary_key=True)


studies = sa.Table(
    "rdspy_studies", metadata,
    sa.Column("name", _NAME, primary_key=True),
    sa.Column("method", sa.String(20), nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("result", sa.Text),
    sa.Column("created_at", _TIME, server_default=sa.func.now(), nullable=False),
    sa.Column("finished_at", _TIME),
)
budgets = sa.Table(
    "rdspy_budgets", metadata,
    _study(),
    sa.Column("max_rollouts", sa.Integer),
    sa.Column("max_cost_usd", sa.Float),
    sa.Column("rollouts_used", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
    sa.Column("pending_usd", sa.Float, nullable=False, server_default="0"),
    sa.Column("prices", sa.Text, nullable=False, server_default="{}"),
)
workers = sa.Table(
    "rdspy_workers", metadata,
    _study(),
    sa.Column("worker", _NAME, primary_key=True),
    sa.Column("alive_until", _TIME, nullable=False),
    sa.Column("joined_at", _TIME, server_default=sa.func.now(), nullable=False),
)
claims = sa.Table(
    "rdspy_claims", metadata,
    _study(),
    sa.Column("kind", sa.String(20), primary_key=True),
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("worker", _NAME, nullable=False),
    sa.Column("since", _TIME, server_default=sa.func.now(), nullable=False),
)
rollouts = sa.Table(
    "rdspy_rollouts", metadata,
    _study(),
    sa.Column("model", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("state", sa.String(10), nullable=False),  # done | failed | refused
    sa.Column("body", sa.Text),
    sa.Column("worker", _NAME, nullable=False),
    sa.Column("created_at", _TIME, server_default=sa.func.now(), nullable=False),
)
answers = sa.Table(
    "rdspy_answers", metadata,
    _study(),
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("text", sa.Text),
    sa.Column("usage", sa.Text, nullable=False),
    sa.Column("error", sa.Text),  # JSON {kind, message, outage, budget} when the call failed or was refused
    sa.Column("worker", _NAME, nullable=False),
)
jobs = sa.Table(
    "rdspy_jobs", metadata,
    _study(),
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("worker", _NAME, nullable=False),
)
trials = sa.Table(
    "rdspy_trials", metadata,
    _study(),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("combo", sa.String(200), nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("scores", sa.Text, nullable=False),
    sa.Column("worker", _NAME, nullable=False),
    sa.Column("mirrored", sa.Boolean, nullable=False, server_default=sa.false()),  # in Optuna's study too
)


@contextlib.contextmanager
def schema_lock(engine: sa.Engine) -> Iterator[sa.Connection]:
    """Hold the schema lock on a connection of its own (released when the block ends or the process dies)."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": SCHEMA_LOCK})
        conn.commit()
        try:
            yield conn
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEMA_LOCK})
            conn.commit()


def create_schema(conn: sa.Connection) -> None:
    """Create the missing tables (call under `schema_lock`)."""
    metadata.create_all(conn, checkfirst=True)
    conn.commit()
