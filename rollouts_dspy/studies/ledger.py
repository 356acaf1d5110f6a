"""The budget of a shared study: one ledger for all its workers, kept in the study's budget row.

Every admission is a transaction that locks that row, loads what all workers were admitted and paid into this
process's `Ledger`, lets the runtime's own decision run on those counters (`Ledger.grant_rollouts`,
`Ledger.grant_call`: the one place that decides) and writes the result back before the call starts. So the workers
together never pass `max_rollouts` or `max_cost_usd`; a worker killed with calls in flight leaves them counted (they
were sent) and their dollar estimates committed. Under a dollar budget, before a kind of call has a price, the
one probe call of that kind is a claim in the study: a single worker sends it and the others wait for its price.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..runtime import Budget, BudgetExhausted, Ledger
from ..runtime.ledger import ROLLOUT
from .schema import budgets
from .store import POLL_SECONDS

if TYPE_CHECKING:
    from .store import StudyStore

__all__ = ["SharedLedger"]

PROBE = "probe"


class SharedLedger(Ledger):
    """See the module doc. The inherited counters mirror the study's row as of this worker's last transaction:
    each transaction loads them, decides and writes them back holding `_lock` (the store runs transactions on
    several threads; the row lock orders the workers, this lock the threads of one worker)."""

    def __init__(self, store: StudyStore, budget: Budget) -> None:
        super().__init__(budget)
        self.store = store
        self._lock = threading.RLock()
        self._probing: set[str] = set()  # kinds whose probe call this worker has out

    # -- the row ---------------------------------------------------------------------------------------------
    def _row(self, tx: sa.Connection, *, lock: bool) -> sa.Row:
        query = sa.select(budgets).where(budgets.c.study == self.store.name)
        row = tx.execute(query.with_for_update() if lock else query).one()
        self.rollouts_used, self.cost_usd, self._pending_usd = row.rollouts_used, row.cost_usd, row.pending_usd
        for kind, price in json.loads(row.prices).items():
            self.prices.observe(kind, price)  # the dearest call of each kind any worker paid (the estimator's input)
        return row

    def _save(self, tx: sa.Connection) -> None:
        tx.execute(sa.update(budgets).where(budgets.c.study == self.store.name)
                   .values(rollouts_used=self.rollouts_used, pending_usd=self._pending_usd))

    def _probe(self, tx: sa.Connection, kind: str) -> bool | None:
        """False: prices are known (or no dollar budget). True: this call is the probe of `kind`. None: a probe
        (this worker's or another's) is out; wait for its price."""
        if self.budget.max_cost_usd is None or self.prices.estimate(kind) is not None:
            return False
        if kind in self._probing or not self.store.claim_in(tx, PROBE, kind):
            return None
        self._probing.add(kind)
        return True

    def _unprobe(self, tx: sa.Connection, kind: str) -> None:
        self._probing.discard(kind)
        self.store.release_in(tx, PROBE, kind)

    def refresh(self) -> None:
        """Read the study's counters (what every worker was admitted and paid so far)."""
        with self._lock, self.store.guard(), self.store.engine.connect() as conn:
            self._row(conn, lock=False)

    # -- rollouts --------------------------------------------------------------------------------------------
    def grant_in(self, tx: sa.Connection, n: int = 1) -> tuple[int, float] | None:
        """Admit up to `n` rollouts in transaction `tx`: (granted, dollars committed for each), or None to wait
        for another worker's probe."""
        with self._lock:
            self._row(tx, lock=True)
            probe = self._probe(tx, ROLLOUT)
            if probe is None:
                return None
            granted, price = self.grant_rollouts(1 if probe else n)
            if probe and not granted:
                self._unprobe(tx, ROLLOUT)
            self._save(tx)
            return granted, price

    def _admit(self, n: int) -> tuple[int, float] | None:
        with self.store.engine.begin() as tx:
            return self.grant_in(tx, n)

    async def admit_rollouts(self, n: int) -> tuple[int, float]:
        if n <= 0:
            return 0, 0.0
        while (granted := await self.store.run(self._admit, n)) is None:
            await asyncio.sleep(POLL_SECONDS)
        return granted

    # -- model calls -----------------------------------------------------------------------------------------
    def _admit_call(self, kind: str) -> float | None:
        with self._lock, self.store.engine.begin() as tx:
            self._row(tx, lock=True)
            if self._probe(tx, kind) is None:
                return None
            try:
                price = self.grant_call(kind)
            except BudgetExhausted:
                self._probing.discard(kind)  # the transaction (its probe claim too) is rolled back
                raise
            self._save(tx)
            return price

    async def admit_call(self, kind: str) -> float:
        if self.budget.max_cost_usd is None:
            return 0.0  # nothing to admit against; the call is still paid for in `settle`
        while (price := await self.store.run(self._admit_call, kind)) is None:
            await asyncio.sleep(POLL_SECONDS)
        return price

    # -- paying ----------------------------------------------------------------------------------------------
    def settle_in(self, tx: sa.Connection, kind: str, cost_usd: float | None, *, committed: float) -> None:
        """A granted call of `kind` cost `cost_usd` (None: unknown or nothing charged): pay it and give back the
        estimate committed for it, in transaction `tx` (with the result that is stored)."""
        with self._lock:
            row = self._row(tx, lock=True)
            prices = json.loads(row.prices)
            if cost_usd is not None:
                prices[kind] = max(float(prices.get(kind, 0.0)), float(cost_usd))
                self.prices.observe(kind, cost_usd)
            self.cost_usd = row.cost_usd + (cost_usd or 0.0)
            self._pending_usd = max(row.pending_usd - committed, 0.0)
            tx.execute(sa.update(budgets).where(budgets.c.study == self.store.name).values(
                cost_usd=self.cost_usd, pending_usd=self._pending_usd, prices=json.dumps(prices, sort_keys=True)))
            if kind in self._probing:  # this was the probe: its price is known now (or the next call probes)
                self._unprobe(tx, kind)

    def settle(self, kind: str, cost_usd: float | None, *, committed: float) -> None:
        with self._lock, self.store.guard(), self.store.engine.begin() as tx:
            self.settle_in(tx, kind, cost_usd, committed=committed)
