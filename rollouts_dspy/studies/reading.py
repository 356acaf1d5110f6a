"""Reading shared studies without joining them: the result of a finished study, and how far each study is
(`rollouts-dspy show postgresql://... [--study NAME]`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ..errors import ResultFileError
from ..prompt_optimization.types import OptimizationResult
from .options import mask_url
from .schema import budgets, studies, trials, workers
from .store import connect, unreachable

__all__ = ["StudyStatus", "list_studies", "load_study_result", "study_status"]


@dataclass(frozen=True)
class StudyStatus:
    """Where a study is: its trials told so far and the best of them, its live workers, what it spent."""

    name: str
    method: str
    created_at: datetime
    finished: bool
    workers_alive: int
    trials_told: int
    best_trial: tuple[int, str, float] | None  # (number, combination, minibatch mean)
    rollouts_used: int
    max_rollouts: int | None
    cost_usd: float


@contextmanager
def _database(storage: str) -> Iterator[sa.Connection]:
    engine = connect(storage)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(studies.name):
                raise ResultFileError(f"{mask_url(storage)} holds no shared studies")
            yield conn
    except sa.exc.SQLAlchemyError as exc:
        raise unreachable(storage, exc) from None
    finally:
        engine.dispose()


def _names(conn: sa.Connection) -> list[str]:
    return list(conn.execute(sa.select(studies.c.name).order_by(studies.c.created_at)).scalars())


def _status(conn: sa.Connection, name: str) -> StudyStatus:
    row = conn.execute(sa.select(studies.c.method, studies.c.created_at, studies.c.result)
                       .where(studies.c.name == name)).first()
    if row is None:
        known = ", ".join(_names(conn)) or "none"
        raise ResultFileError(f"no study named {name!r} (studies there: {known})")
    alive = conn.execute(sa.select(sa.func.count()).select_from(workers).where(
        workers.c.study == name, workers.c.alive_until > sa.func.now())).scalar_one()
    told = list(conn.execute(sa.select(trials.c.number, trials.c.combo, trials.c.value)
                             .where(trials.c.study == name).order_by(trials.c.number)))
    scored = [t for t in told if t.value is not None]
    best = max(scored, key=lambda t: (t.value, -t.number), default=None)
    budget = conn.execute(sa.select(budgets).where(budgets.c.study == name)).one()
    return StudyStatus(name, row.method, row.created_at, row.result is not None, int(alive), len(told),
                       None if best is None else (best.number, best.combo, best.value), budget.rollouts_used,
                       budget.max_rollouts, budget.cost_usd)


def study_status(storage: str, name: str) -> StudyStatus:
    """How far study `name` is. ResultFileError names the studies there when it is unknown."""
    with _database(storage) as conn:
        return _status(conn, name)


def list_studies(storage: str) -> list[StudyStatus]:
    """Every shared study in the database, oldest first."""
    with _database(storage) as conn:
        return [_status(conn, name) for name in _names(conn)]


def load_study_result(storage: str, study: str) -> OptimizationResult:
    """The result of the finished shared study `study` in the database `storage` (what the first of its workers
    to finish stored). ResultFileError when there is no such study or it is still running."""
    from ..io import result_from_dict

    with _database(storage) as conn:
        status = _status(conn, study)
        text = conn.execute(sa.select(studies.c.result).where(studies.c.name == study)).scalar()
    if text is None:
        raise ResultFileError(f"study {study!r} has no result yet: {status.trials_told} trials told, "
                              f"{status.workers_alive} workers alive")
    try:
        return result_from_dict(json.loads(text))
    except ValueError as exc:
        raise ResultFileError(f"study {study!r}: its stored result cannot be read ({exc})") from None
