"""The reflection model as the engine calls it: answers remembered by request (a resumed run replays them for free,
identical concurrent requests share one call), a dollar guard per call, and outage detection. Plus `gather_all`,
the gather that never leaves an orphaned call running."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ...dtypes import Message, Usage
from ..budget import BudgetLedger
from ..evaluation import DEFAULT_OUTAGE_THRESHOLD, ProviderUnavailableError
from ..protocols import LanguageModel
from .state import message_digest

__all__ = ["ReplayModel", "gather_all"]


async def gather_all(coros: Sequence[Any]) -> list[Any]:
    """asyncio.gather that, when one call fails or the run is interrupted, cancels and awaits the others, so no
    orphaned call keeps spending (or finishes after the checkpoint was written)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class ReplayModel:
    """The reflection model with its answers remembered by request: a resumed run gets the same answers (and
    pays nothing for them), and identical concurrent requests share one call."""

    def __init__(self, model: LanguageModel, answers: dict[str, str], limit: asyncio.Semaphore,
                 ledger: BudgetLedger) -> None:
        self.model, self.answers, self.limit, self.ledger = model, answers, limit, ledger
        self._pending: dict[str, asyncio.Future[tuple[str, Usage]]] = {}
        self._probe = asyncio.Lock()
        self._failed_in_a_row = 0
        self.answered = self.unreachable = 0  # calls of the current generation: answered / failed to answer
        self.last_error = ""
        self._calls = 0
        self._cost = 0.0
        self._in_flight = 0
        self.requests = 0  # requests of the current generation, replayed answers included (deterministic)

    def _outage(self, exc: BaseException) -> ProviderUnavailableError | None:
        """A model that cannot be reached (its calls fail after their retries, many in a row) stops the run like
        a task-model outage; one that answers nothing or garbage only drops children."""
        if not isinstance(exc, Exception) or isinstance(exc, ProviderUnavailableError):
            return None
        if getattr(exc, "kind", "") in ("empty_response", "malformed_response"):
            return None
        self._failed_in_a_row += 1
        self.unreachable += 1
        self.last_error = str(exc)[:500]
        if self._failed_in_a_row >= DEFAULT_OUTAGE_THRESHOLD:
            return ProviderUnavailableError(self._failed_in_a_row, str(exc)[:500])
        return None

    async def _paid_call(self, messages: Sequence[Message]) -> tuple[str, Usage]:
        """One real call, refused when the dollar budget could not pay for it (and the ones in flight) at the
        average price so far; the first call runs alone so that price is known before calls pile up."""
        limit = self.ledger.budget.max_cost_usd
        if limit is None:
            async with self.limit:
                text, usage = await self.model.complete(messages)
            self.ledger.charge(usage.cost_usd)
            return text, usage
        async with self._probe if self._calls == 0 else _NO_LOCK:
            avg = self._cost / self._calls if self._calls else 0.0
            if self.ledger.cost_usd + avg * (self._in_flight + 1) > limit or self.ledger.exhausted:
                raise RuntimeError("the dollar budget cannot pay for another reflection call")
            self._in_flight += 1
            try:
                async with self.limit:
                    text, usage = await self.model.complete(messages)
            finally:
                self._in_flight -= 1
            self._calls += 1
            self._cost += usage.cost_usd or 0.0
            self.ledger.charge(usage.cost_usd)
            return text, usage

    async def complete(self, messages: Sequence[Message]) -> tuple[str, Usage]:
        self.requests += 1
        key = message_digest(messages)
        if key in self.answers:
            return self.answers[key], Usage()
        if key in self._pending:
            text, _ = await asyncio.shield(self._pending[key])
            return text, Usage()
        future: asyncio.Future[tuple[str, Usage]] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            text, usage = await self._paid_call(messages)
            self._failed_in_a_row = 0
            self.answered += 1
        except BaseException as exc:
            outage = self._outage(exc)
            future.set_exception(outage or exc)
            future.exception()  # retrieved here so an unawaited failure is not logged
            if outage is not None:
                raise outage from exc
            raise
        finally:
            self._pending.pop(key, None)
        self.answers[key] = text
        future.set_result((text, usage))
        return text, usage


class _NoLock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()
