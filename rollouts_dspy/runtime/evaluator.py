"""Scoring candidates on samples: the async shell around a Task, under the run's cache, budget and outage watch.

`Evaluator.evaluate` never runs the same (candidate content, sample) twice: finished rollouts are cached (and
journaled) and concurrent requests for the same pair share one run. Each rollout is admitted by the Ledger when it
gets a concurrency slot, right before it starts; what the budget cannot pay for is not run (the caller gets fewer
results). A rollout the Task could
not measure because the provider failed (`RolloutError.kind == "llm"`) is not cached -- asking again may measure
it -- and counts toward the outage detector; any measured rollout resets it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from ..prompt_optimization.protocols import Rollout, Task
from ..prompt_optimization.types import Candidate
from .journal import Journal
from .ledger import ROLLOUT, Ledger
from .meter import Meter
from .outage import OutageDetector

__all__ = ["Evaluator", "gather_all"]

Pair = tuple[str, int]


async def gather_all(coros: Iterable[Awaitable[Any]]) -> list[Any]:
    """asyncio.gather that, when one fails or the run is cancelled, cancels and awaits the others: no orphaned
    call keeps spending (or finishes after the checkpoint was written)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class Evaluator:
    """Runs a Task under a run's cache, ledger, concurrency limit, meter, journal and outage detector."""

    def __init__(self, task: Task, *, ledger: Ledger, meter: Meter, outage: OutageDetector,
                 limit: asyncio.Semaphore, cache: dict[Pair, Rollout] | None = None, journal: Journal | None = None,
                 on_rollout: Callable[[Candidate, Rollout], None] | None = None, namespace: str = "") -> None:
        """`namespace` prefixes this evaluator's cache keys: another task over the same candidates (e.g. a
        teacher program bootstrapping demos) shares the run's cache and journal without mixing its rollouts in."""
        self.task = task
        self.namespace = namespace
        self.ledger, self.meter, self.outage, self.limit, self.journal = ledger, meter, outage, limit, journal
        self.cache: dict[Pair, Rollout] = cache if cache is not None else {}
        self.on_rollout = on_rollout
        self.rollouts_run = 0
        self.cache_hits = 0
        self._pending: dict[Pair, asyncio.Future[Rollout | None]] = {}

    def cached(self, candidate: Candidate, indices: Iterable[int]) -> dict[int, Rollout]:
        key = self.namespace + candidate.key
        return {i: self.cache[(key, i)] for i in indices if (key, i) in self.cache}

    async def evaluate(self, candidate: Candidate, indices: Sequence[int]) -> dict[int, Rollout]:
        """Rollouts of `candidate` on `indices`: cached ones, plus new ones as far as the budget allows. Raises
        ProviderUnavailableError when the provider is down (after this call's rollouts have finished)."""
        key = self.namespace + candidate.key
        results: dict[int, Rollout] = {}
        waits: dict[int, asyncio.Future[Rollout | None]] = {}
        todo: list[int] = []
        for i in dict.fromkeys(indices):
            if (key, i) in self.cache:
                results[i] = self._serve(key, self.cache[(key, i)])
                self.cache_hits += 1
            elif (key, i) in self._pending:
                waits[i] = self._pending[(key, i)]
            else:
                todo.append(i)
        launched = await self._launch(candidate, key, todo)
        done = await gather_all([*launched.values(), *waits.values()])
        for i, rollout in zip([*launched, *waits], done, strict=True):
            if rollout is not None:
                results[i] = self._serve(key, rollout)
        self.outage.check()
        return {i: results[i] for i in indices if i in results}

    async def _launch(self, candidate: Candidate, key: str, todo: list[int]) -> dict[int, Awaitable[Rollout | None]]:
        """Start the rollouts of `todo`, in order; each is admitted by the ledger when it gets a concurrency slot
        (a rollout cancelled while it waits for a slot was never sent, so it never counts)."""
        launched: dict[int, Awaitable[Rollout | None]] = {}
        loop = asyncio.get_running_loop()
        for i in todo:
            self._pending[(key, i)] = loop.create_future()
            launched[i] = asyncio.ensure_future(self._run(candidate, key, i))
        return launched

    def _serve(self, key: str, rollout: Rollout) -> Rollout:
        self.meter.served((ROLLOUT, (key, rollout.sample_index)), rollout.usage, rollout=True)
        return rollout

    async def _run(self, candidate: Candidate, key: str, index: int) -> Rollout | None:
        future = self._pending[(key, index)]
        rollout: Rollout | None = None
        try:
            async with self.limit:
                granted, committed = await self.ledger.admit_rollouts(1)
                if granted:
                    if self.journal is not None:
                        self.journal.admitted(1)
                    try:
                        rollout = await self.task.run(candidate, index)
                    finally:
                        self.ledger.settle(ROLLOUT, None if rollout is None else rollout.usage.cost_usd,
                                           committed=committed)
        finally:
            self._pending.pop((key, index), None)
            if not future.done():
                future.set_result(rollout)
        if rollout is not None:
            self._record(candidate, key, rollout)
        return rollout

    def _record(self, candidate: Candidate, key: str, rollout: Rollout) -> None:
        self.rollouts_run += 1
        unmeasured = rollout.error is not None and rollout.error.kind == "llm"
        self.meter.paid("task", rollout.usage, failed=rollout.error is not None)
        if unmeasured:
            # Not cached: a later request (or a resumed run) tries the pair again.
            self.outage.failed("task", rollout.error.cause or "llm", rollout.error.detail)  # type: ignore[union-attr]
        else:
            self.outage.answered()
            self.cache[(key, rollout.sample_index)] = rollout
        if self.journal is not None:
            self.journal.rollout(key, rollout, cached=not unmeasured)
        if self.on_rollout is not None:
            self.on_rollout(candidate, rollout)
