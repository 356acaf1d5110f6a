"""One worker's connection to a shared study: joining it, the heartbeat, claims and waiting for others' claims, and
work done once per study (jobs). The rows of finished work are in `records`, the budget in `ledger`.

Claims are how workers never do the same work twice: a worker inserts a claim row before it starts something (a
rollout, a proposer call, a job) and deletes it in the transaction that stores the result. A claim is valid while
its worker is alive -- while the worker's heartbeat (a thread, every quarter of `lease_seconds`) keeps its
`alive_until` in the future, by the database's clock. When a worker dies its claims lapse and the next worker to
ask takes them over, so a killed worker loses only its calls in flight. A worker waiting for another's claim polls
the live claims (one query for everything it waits for) and looks again when the claim is gone.

Everything here is synchronous SQLAlchemy; `run` executes it on the store's own threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..errors import CheckpointError, ConfigError
from ..runtime import Budget
from .options import SharedStudy, mask_url
from .schema import answers, budgets, claims, create_schema, jobs, rollouts, schema_lock, studies, trials, workers

__all__ = ["POLL_SECONDS", "StudyStore", "connect"]

T = TypeVar("T")
POLL_SECONDS = 0.05
"""How often a worker waiting for others' claims looks again (one small query per worker, whatever it waits for)."""
THREADS = 4
"""Database calls of one worker at once (each worker holds at most THREADS + 4 connections, plus Optuna's)."""

_CLAIM = sa.text("""
INSERT INTO rdspy_claims (study, kind, "key", idx, worker, since) VALUES (:study, :kind, :key, :idx, :me, now())
ON CONFLICT (study, kind, "key", idx) DO UPDATE SET worker = EXCLUDED.worker, since = EXCLUDED.since
WHERE rdspy_claims.worker = EXCLUDED.worker OR NOT EXISTS (
    SELECT 1 FROM rdspy_workers w
    WHERE w.study = rdspy_claims.study AND w.worker = rdspy_claims.worker AND w.alive_until > now())
RETURNING worker
""")
_ALIVE = sa.text("now() + make_interval(secs => :lease)")


def connect(storage: str) -> sa.Engine:
    """A SQLAlchemy engine for the study's database (the PostgreSQL driver is the `[postgres]` extra)."""
    try:
        return sa.create_engine(storage, pool_size=THREADS + 2, max_overflow=2, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the PostgreSQL driver is not installed ({exc}): pip install 'rollouts-dspy[postgres]'"
                          ) from None
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"SharedStudy.storage {mask_url(storage)!r} is not a database URL ({exc})") from None


def unreachable(storage: str, exc: BaseException) -> CheckpointError:
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return CheckpointError(f"the study's database {mask_url(storage)} cannot be used ({type(exc).__name__}: {first})")


def _diff(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))


class _Heartbeat(threading.Thread):
    """Pushes this worker's `alive_until` forward every quarter lease, on a thread of its own (a busy event loop
    must not let the claims lapse)."""

    def __init__(self, store: StudyStore) -> None:
        super().__init__(name=f"rdspy-heartbeat-{store.me}", daemon=True)
        self.store = store
        self.stopping = threading.Event()
        self.failures = 0

    def run(self) -> None:
        s = self.store
        while not self.stopping.wait(s.study.lease_seconds / 4):
            try:
                with s.engine.begin() as conn:
                    conn.execute(sa.update(workers).where(workers.c.study == s.name, workers.c.worker == s.me)
                                 .values(alive_until=_ALIVE), {"lease": s.study.lease_seconds})
                self.failures = 0
            except sa.exc.SQLAlchemyError:
                self.failures += 1  # the worker's own queries meet the same error and stop it


class StudyStore:
    """See the module doc. Open with `await StudyStore.join(...)`, close with `leave()`."""

    def __init__(self, study: SharedStudy, engine: sa.Engine) -> None:
        self.study, self.engine = study, engine
        self.name, self.me = study.name, study.worker_name
        self.optuna: Any = None  # the study in Optuna's tables
        self._optuna_storage: Any = None
        self.restarted = False
        self._threads = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="rdspy-db")
        self._heartbeat = _Heartbeat(self)
        self._waiting: dict[tuple[str, str, int], list[asyncio.Future[None]]] = {}
        self._poller: asyncio.Task[None] | None = None

    # -- joining and leaving -------------------------------------------------------------------------------------
    @classmethod
    async def join(cls, study: SharedStudy, *, method: str, fingerprint: Mapping[str, Any],
                   config: Mapping[str, Any], budget: Budget) -> StudyStore:
        """Create the study or join it (its fingerprint must equal `fingerprint`), and start the heartbeat."""
        store = cls(study, connect(study.storage))
        try:
            await store.run(store._join, method, fingerprint, config, budget)
        except BaseException:
            store.leave()
            raise
        store._heartbeat.start()
        return store

    def _join(self, method: str, fingerprint: Mapping[str, Any], config: Mapping[str, Any], budget: Budget) -> None:
        try:
            with schema_lock(self.engine) as conn:
                create_schema(conn)
                with self.engine.begin() as tx:
                    self.restarted = self._enter(tx, method, json.loads(json.dumps(dict(fingerprint))), config,
                                                 budget)
                self.optuna = self._optuna(fresh=self.restarted)
        except sa.exc.SQLAlchemyError as exc:
            raise unreachable(self.study.storage, exc) from None

    def _enter(self, tx: sa.Connection, method: str, fingerprint: dict[str, Any], config: Mapping[str, Any],
               budget: Budget) -> bool:
        """Insert or check the study row and this worker's row; True when the study restarts (see `_restart`)."""
        created = tx.execute(pg_insert(studies).values(
            name=self.name, method=method, fingerprint=json.dumps(fingerprint, sort_keys=True),
            config=json.dumps(dict(config), sort_keys=True, default=str)).on_conflict_do_nothing()
            .returning(studies.c.name)).first() is not None
        tx.execute(pg_insert(budgets).values(study=self.name, max_rollouts=budget.max_rollouts,
                                             max_cost_usd=budget.max_cost_usd).on_conflict_do_nothing())
        row = tx.execute(sa.select(studies.c.method, studies.c.fingerprint, studies.c.result)
                         .where(studies.c.name == self.name).with_for_update()).one()
        if row.method != method:
            raise CheckpointError(f"study {self.name!r} is a {row.method} study, not {method}; use another name")
        differ = _diff(json.loads(row.fingerprint), fingerprint)
        if differ:
            raise CheckpointError(
                f"study {self.name!r} in {mask_url(self.study.storage)} was started with different settings "
                f"({', '.join(differ)} differ); start every worker with the same config, dataset, models, initial "
                "prompt and rollouts-dspy/optuna versions, or use another study name")
        alive = set(tx.execute(sa.select(workers.c.worker).where(
            workers.c.study == self.name, workers.c.alive_until > sa.func.now())).scalars())
        if self.me in alive:
            raise ConfigError(f"a worker named {self.me!r} is already running study {self.name!r}; give this one "
                              f"another name (or, if it was killed, start it again in {self.study.lease_seconds:g} s)")
        restart = not created and not alive and row.result is None
        if restart:
            self._restart(tx)
        tx.execute(sa.delete(workers).where(workers.c.study == self.name, workers.c.worker == self.me))
        tx.execute(sa.insert(workers).values(study=self.name, worker=self.me, alive_until=_ALIVE),
                   {"lease": self.study.lease_seconds})
        return restart

    def _restart(self, tx: sa.Connection) -> None:
        """Every worker of an unfinished study stopped (an outage, Ctrl-C, all killed): the study continues as a
        resumed run does. Finished rollouts and answers are kept (served for free); what failed or was refused is
        forgotten, so it is tried again, and so is everything derived from it (claims, the pool, the trials)."""
        tx.execute(sa.delete(claims).where(claims.c.study == self.name))
        tx.execute(sa.delete(rollouts).where(rollouts.c.study == self.name, rollouts.c.state != "done"))
        tx.execute(sa.delete(answers).where(answers.c.study == self.name, answers.c.error.is_not(None)))
        tx.execute(sa.delete(jobs).where(jobs.c.study == self.name))
        tx.execute(sa.delete(trials).where(trials.c.study == self.name))

    def _optuna(self, *, fresh: bool) -> Any:
        """The study in Optuna's tables (for optuna-dashboard and `show`); recreated when the study restarts."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = self._optuna_storage = optuna.storages.RDBStorage(self.study.storage)
        if fresh and self.name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
            optuna.delete_study(study_name=self.name, storage=storage)
        return optuna.create_study(storage=storage, study_name=self.name, direction="maximize", load_if_exists=True)

    def leave(self) -> None:
        """Stop the heartbeat, give back every claim and leave (also after an error or Ctrl-C)."""
        self._heartbeat.stopping.set()
        if self._poller is not None:
            self._poller.cancel()
        try:
            with self.engine.begin() as tx:
                tx.execute(sa.delete(claims).where(claims.c.study == self.name, claims.c.worker == self.me))
                tx.execute(sa.delete(workers).where(workers.c.study == self.name, workers.c.worker == self.me))
        except sa.exc.SQLAlchemyError:
            pass  # unreachable now: the claims lapse with the heartbeat
        finally:
            self._threads.shutdown(wait=False, cancel_futures=True)
            if self._optuna_storage is not None:
                self._optuna_storage.engine.dispose()
            self.engine.dispose()

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Database failures inside as a CheckpointError naming the database (for the few calls made on the
        event loop's thread)."""
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise unreachable(self.study.storage, exc) from None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the store's threads (database calls never block the event loop). A database that fails
        is a CheckpointError naming it (without its password)."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, functools.partial(fn, *args))
        except sa.exc.SQLAlchemyError as exc:
            raise unreachable(self.study.storage, exc) from None

    # -- claims --------------------------------------------------------------------------------------------------
    def claim_in(self, tx: sa.Connection, kind: str, key: str, idx: int = 0) -> bool:
        """Claim (kind, key, idx) in transaction `tx`: True when this worker holds it now (it was free, already
        ours, or its holder is dead)."""
        row = tx.execute(_CLAIM, {"study": self.name, "kind": kind, "key": key, "idx": idx, "me": self.me}).first()
        return row is not None

    def release_in(self, tx: sa.Connection, kind: str, key: str, idx: int = 0) -> None:
        tx.execute(sa.delete(claims).where(claims.c.study == self.name, claims.c.kind == kind, claims.c.key == key,
                                           claims.c.idx == idx, claims.c.worker == self.me))

    def live_claims(self) -> set[tuple[str, str, int]]:
        """Every claim held by a live worker."""
        live = claims.join(workers, sa.and_(workers.c.study == claims.c.study, workers.c.worker == claims.c.worker))
        query = (sa.select(claims.c.kind, claims.c.key, claims.c.idx).select_from(live)
                 .where(claims.c.study == self.name, workers.c.alive_until > sa.func.now()))
        with self.engine.connect() as conn:
            return {(r.kind, r.key, r.idx) for r in conn.execute(query)}

    async def wait_free(self, kind: str, key: str, idx: int = 0) -> None:
        """Return once no live worker holds (kind, key, idx): its work is stored, or its holder died."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((kind, key, idx), []).append(future)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll())
        await future

    async def _poll(self) -> None:
        while self._waiting:
            await asyncio.sleep(POLL_SECONDS)
            try:
                live = await self.run(self.live_claims)
            except CheckpointError as exc:  # every waiter fails with it: none hangs
                for future in [f for futures in self._waiting.values() for f in futures if not f.done()]:
                    future.set_exception(exc)
                self._waiting.clear()
                return
            for item in [i for i in self._waiting if i not in live]:
                for future in self._waiting.pop(item):
                    if not future.done():
                        future.set_result(None)

    # -- work done once per study --------------------------------------------------------------------------------
    async def once(self, job: str, make: Callable[[], Awaitable[Any]],
                   waiting: Callable[[], None] | None = None) -> tuple[Any, bool]:
        """The value of `job`: made by `make()` if this worker is the first to claim it (True), else the value
        another worker stored (False; waits while the job is claimed -- calling `waiting()` once -- and takes it
        over if its worker died)."""
        while True:
            state, value = await self.run(self._job, job)
            if state == "done":
                return value, False
            if state == "claimed":
                made = await make()
                return await self.run(self._finish_job, job, made), True
            if waiting is not None:
                waiting()
                waiting = None
            await self.wait_free("job", job)

    def _job(self, job: str) -> tuple[str, Any]:
        with self.engine.begin() as tx:
            if not self.claim_in(tx, "job", job):
                return "busy", None
            value = tx.execute(sa.select(jobs.c.value).where(jobs.c.study == self.name, jobs.c.name == job)).scalar()
            if value is None:
                return "claimed", None
            self.release_in(tx, "job", job)
            return "done", json.loads(value)

    def _finish_job(self, job: str, value: Any) -> Any:
        with self.engine.begin() as tx:
            tx.execute(pg_insert(jobs).values(study=self.name, name=job, value=json.dumps(value, sort_keys=True),
                                              worker=self.me).on_conflict_do_nothing())
            self.release_in(tx, "job", job)
            stored = tx.execute(sa.select(jobs.c.value).where(jobs.c.study == self.name, jobs.c.name == job)).scalar()
        return json.loads(stored)
