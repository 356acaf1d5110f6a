"""Finished work in a shared study: rollouts by (model, candidate key, row), proposer answers by request digest,
trials by number and the final result -- each written once, by the worker that claimed it, in the transaction
that gives its claim back (and pays for it in the budget row).

A stored outcome is final while the study runs, failures included: every worker is served the same rollout or the
same failed call, so every worker's engine is told the same and makes the same decisions. (When every worker has
stopped and the study is started again, what failed is tried again: see `StudyStore._restart`.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..dtypes import Usage
from ..prompt_optimization.protocols import Rollout
from ..runtime.errors import ProviderError
from ..runtime.ledger import ROLLOUT
from ..runtime.meter import RoleUsage
from .schema import answers, rollouts, studies, trials

if TYPE_CHECKING:
    from .store import StudyStore

__all__ = ["BUSY", "DONE", "GRANTED", "WAIT", "Claim", "StoredFailure", "claim_answer", "claim_rollout",
           "finish_answer", "finish_rollout", "finished_rollouts", "record_trial", "save_result", "study_usage"]

BUSY, DONE, GRANTED, WAIT = "busy", "done", "granted", "wait"
ROLLOUT_CLAIM, ANSWER_CLAIM, TRIAL_CLAIM = "rollout", "answer", "trial"
Grant = Callable[[sa.Connection], "tuple[int, float] | None"]
Settle = Callable[..., None]


@dataclass(frozen=True)
class Claim:
    """What claiming a piece of work found: BUSY (a live worker holds it), DONE (`value` is the stored outcome),
    GRANTED (this worker holds it and was admitted, committing `committed` dollars) or WAIT (a probe is out)."""

    state: str
    value: Any = None
    committed: float = 0.0


class StoredFailure(ProviderError):
    """A proposer call that failed for the worker that made it, served as the same failure to the others (it
    counts as an outage exactly when the original did)."""

    def __init__(self, error: Mapping[str, Any]) -> None:
        super().__init__(str(error["kind"]), str(error["message"]), retryable=bool(error.get("outage")))
        self.error = dict(error)


def _usage(u: Usage) -> str:
    return json.dumps([u.prompt_tokens, u.completion_tokens, u.cost_usd, u.calls])


def _parse_usage(text: str) -> Usage:
    p, c, cost, calls = json.loads(text)
    return Usage(p, c, cost, calls)


def _unmeasured(rollout: Rollout) -> bool:
    return rollout.error is not None and rollout.error.kind == "llm"


# -- rollouts ---------------------------------------------------------------------------------------------------
def _rollout_where(store: StudyStore, model: str, key: str) -> Any:
    return sa.and_(rollouts.c.study == store.name, rollouts.c.model == model, rollouts.c.key == key)


def claim_rollout(store: StudyStore, model: str, key: str, idx: int, grant: Grant) -> Claim:
    """Claim the rollout (model, key, idx) and admit it against the study's budget, in one transaction. Claiming
    comes first: a worker that stored it just before has then committed, so its row is seen here."""
    ckey = f"{model}/{key}"
    with store.engine.begin() as tx:
        if not store.claim_in(tx, ROLLOUT_CLAIM, ckey, idx):
            return Claim(BUSY)
        row = tx.execute(sa.select(rollouts.c.state, rollouts.c.body)
                         .where(_rollout_where(store, model, key), rollouts.c.idx == idx)).first()
        if row is not None:
            store.release_in(tx, ROLLOUT_CLAIM, ckey, idx)
            return Claim(DONE, None if row.body is None else Rollout.from_dict(json.loads(row.body)))
        granted = grant(tx)
        if granted is None:
            store.release_in(tx, ROLLOUT_CLAIM, ckey, idx)
            return Claim(WAIT)
        if not granted[0]:  # the budget said no: every worker is told so from now on
            tx.execute(sa.insert(rollouts).values(study=store.name, model=model, key=key, idx=idx, state="refused",
                                                  worker=store.me))
            store.release_in(tx, ROLLOUT_CLAIM, ckey, idx)
            return Claim(DONE, None)
        return Claim(GRANTED, committed=granted[1])


def finish_rollout(store: StudyStore, model: str, key: str, rollout: Rollout, committed: float,
                   settle: Settle) -> Rollout:
    """Store a rollout this worker ran, give its claim back and pay for it: one transaction. Returns the stored
    rollout: another worker's, when this worker's claim had lapsed (it was presumed dead) and both ran it."""
    idx = rollout.sample_index
    with store.engine.begin() as tx:
        tx.execute(pg_insert(rollouts).values(
            study=store.name, model=model, key=key, idx=idx, state="failed" if _unmeasured(rollout) else "done",
            body=json.dumps(rollout.to_dict()), worker=store.me).on_conflict_do_nothing())
        store.release_in(tx, ROLLOUT_CLAIM, f"{model}/{key}", idx)
        settle(tx, ROLLOUT, rollout.usage.cost_usd, committed=committed)
        body = tx.execute(sa.select(rollouts.c.body).where(_rollout_where(store, model, key),
                                                           rollouts.c.idx == idx)).scalar()
    return rollout if body is None else Rollout.from_dict(json.loads(body))


def finished_rollouts(store: StudyStore, model: str, key: str, indices: Iterable[int]) -> dict[int, Rollout]:
    """The stored rollouts of `key` on `indices` (refused ones are not rollouts)."""
    wanted = sorted(set(indices))
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(rollouts.c.idx, rollouts.c.body).where(
            _rollout_where(store, model, key), rollouts.c.idx.in_(wanted), rollouts.c.state != "refused"))
        return {int(r.idx): Rollout.from_dict(json.loads(r.body)) for r in rows}


# -- proposer answers -------------------------------------------------------------------------------------------
def claim_answer(store: StudyStore, digest: str) -> Claim:
    """Claim the model call `digest`: DONE with (text, usage) or a StoredFailure, BUSY, or GRANTED."""
    with store.engine.begin() as tx:
        if not store.claim_in(tx, ANSWER_CLAIM, digest):
            return Claim(BUSY)
        row = tx.execute(sa.select(answers.c.text, answers.c.usage, answers.c.error)
                         .where(answers.c.study == store.name, answers.c.digest == digest)).first()
        if row is None:
            return Claim(GRANTED)
        store.release_in(tx, ANSWER_CLAIM, digest)
        return Claim(DONE, _answer(row))


def finish_answer(store: StudyStore, digest: str, role: str, text: str | None, usage: Usage,
                  error: Mapping[str, Any] | None = None) -> tuple[str, Usage] | StoredFailure:
    """Store what the call `digest` answered (or how it failed), give its claim back and return what is stored
    (another worker's answer when this worker's claim had lapsed and both made the call)."""
    with store.engine.begin() as tx:
        tx.execute(pg_insert(answers).values(
            study=store.name, digest=digest, role=role, text=text, usage=_usage(usage),
            error=None if error is None else json.dumps(dict(error)), worker=store.me).on_conflict_do_nothing())
        store.release_in(tx, ANSWER_CLAIM, digest)
        row = tx.execute(sa.select(answers.c.text, answers.c.usage, answers.c.error)
                         .where(answers.c.study == store.name, answers.c.digest == digest)).one()
    return _answer(row)


def _answer(row: Any) -> tuple[str, Usage] | StoredFailure:
    if row.error is not None:
        return StoredFailure(json.loads(row.error))
    return row.text, _parse_usage(row.usage)


# -- trials and the result --------------------------------------------------------------------------------------
def record_trial(store: StudyStore, number: int, combo: str, value: float | None, scores: Mapping[int, float],
                 mirror: Callable[[bool], None]) -> tuple[str, float | None] | None:
    """Record trial `number` once, under its claim: the row, then `mirror(False)` adds it to Optuna's study,
    then the row is marked mirrored. A worker that finds the row unmarked (its recorder died in between) calls
    `mirror(True)`, which adds it unless Optuna already has it. Returns the recorded (combination, value), which
    every worker's own must equal; None while another worker is recording it (wait for the claim, then ask
    again)."""
    with store.engine.begin() as tx:
        if not store.claim_in(tx, TRIAL_CLAIM, "", number):
            return None
        inserted = tx.execute(pg_insert(trials).values(
            study=store.name, number=number, combo=combo, value=value,
            scores=json.dumps({str(i): s for i, s in sorted(scores.items())}), worker=store.me)
            .on_conflict_do_nothing().returning(trials.c.number)).first() is not None
        row = tx.execute(sa.select(trials.c.combo, trials.c.value, trials.c.mirrored)
                         .where(trials.c.study == store.name, trials.c.number == number)).one()
    if not row.mirrored:
        mirror(not inserted)
    with store.engine.begin() as tx:
        tx.execute(sa.update(trials).where(trials.c.study == store.name, trials.c.number == number)
                   .values(mirrored=True))
        store.release_in(tx, TRIAL_CLAIM, "", number)
    return row.combo, row.value


def save_result(store: StudyStore, result: Mapping[str, Any]) -> bool:
    """Keep the study's result (the first worker to finish writes it); True when this worker wrote it."""
    with store.engine.begin() as tx:
        done = tx.execute(sa.update(studies).where(studies.c.name == store.name, studies.c.result.is_(None))
                          .values(result=json.dumps(dict(result)), finished_at=sa.func.now()))
        return done.rowcount == 1


def study_usage(engine: sa.Engine, name: str) -> dict[str, dict[str, Any]]:
    """The usage table of the whole study (every worker's calls): rollouts as 'task', answers by their role."""
    roles: dict[str, RoleUsage] = {}
    with engine.connect() as conn:
        for (body,) in conn.execute(sa.select(rollouts.c.body).where(rollouts.c.study == name,
                                                                      rollouts.c.state != "refused")):
            rollout = Rollout.from_dict(json.loads(body))
            roles.setdefault("task", RoleUsage()).add(rollout.usage, failed=rollout.error is not None)
        for row in conn.execute(sa.select(answers.c.role, answers.c.usage, answers.c.error)
                                .where(answers.c.study == name)):
            failed = row.error is not None
            if failed and json.loads(row.error).get("budget"):
                continue  # refused before it was sent: not a call
            roles.setdefault(row.role, RoleUsage()).add(_parse_usage(row.usage), failed=failed)
    return {role: u.to_dict() for role, u in sorted(roles.items())}
