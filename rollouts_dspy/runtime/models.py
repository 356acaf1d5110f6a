"""The optimizer's own models (reflection, proposals) as the engines call them.

A `RecordedModel` remembers answers by request: a resumed run gets the same answers (free), and identical
concurrent requests share one call. Every real call is admitted by the Ledger against the dollar budget first (a
refusal raises BudgetExhausted, which is not a failure of anything), runs under the run's concurrency limit, is
journaled and metered, and its provider failures -- only those -- feed the outage detector. Any other exception
of the model (an LM that raised ValueError, say) fails that one request: the caller drops its candidate.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence

from ..dtypes import Message, Usage
from ..prompt_optimization.protocols import LanguageModel
from .errors import ProviderError, counts_as_outage
from .journal import Journal
from .ledger import Ledger
from .meter import Meter
from .outage import OutageDetector

__all__ = ["RecordedModel", "message_digest"]

FAILED_CALL = Usage(0, 0, 0.0, 0)
"""What a failed call is metered as: no tokens, no dollars, and not a call (it counts as a failure): the usage
table's calls + retries + failures is then every request the provider saw."""


def message_digest(messages: Sequence[Message]) -> str:
    """A stable key for one request (for replaying answers on resume)."""
    blob = json.dumps([m.to_openai() for m in messages], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class RecordedModel:
    """A LanguageModel under the run's ledger, limit, meter, journal and outage detector (see the module doc).
    Implements the LanguageModel protocol itself, so engines call it as they would call the model."""

    def __init__(self, model: LanguageModel, role: str, *, ledger: Ledger, meter: Meter, outage: OutageDetector,
                 limit: asyncio.Semaphore, answers: dict[str, tuple[str, Usage]] | None = None,
                 journal: Journal | None = None) -> None:
        self.model, self.role = model, role
        self.ledger, self.meter, self.outage, self.limit, self.journal = ledger, meter, outage, limit, journal
        self.answers: dict[str, tuple[str, Usage]] = answers if answers is not None else {}
        self._pending: dict[str, asyncio.Future[tuple[str, Usage]]] = {}
        self.requests = 0  # requests made, replayed answers included (deterministic)
        self.calls = 0  # real calls made by this process

    async def complete(self, messages: Sequence[Message]) -> tuple[str, Usage]:
        return await self.recorded(message_digest(messages), lambda: self.model.complete(messages))

    async def recorded(self, digest: str, call: Callable[[], Awaitable[tuple[str, Usage]]]) -> tuple[str, Usage]:
        """The answer to request `digest`: remembered, shared with an identical request in flight, or paid for by
        `call()` under the ledger, the limit and the outage watch (see the module doc). `complete` is this for a
        chat request; a custom proposer (request in, text out) is recorded the same way."""
        self.requests += 1
        if digest in self.answers:
            return self._serve(digest)
        if digest in self._pending:
            await asyncio.shield(self._pending[digest])
            return self._serve(digest)
        future: asyncio.Future[tuple[str, Usage]] = asyncio.get_running_loop().create_future()
        self._pending[digest] = future
        try:
            text, usage = await self._call(digest, call)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            future.exception()  # retrieved here so an unawaited failure is not logged
            raise
        finally:
            self._pending.pop(digest, None)
        self.answers[digest] = (text, usage)
        future.set_result((text, usage))
        return self._serve(digest)

    def _serve(self, digest: str) -> tuple[str, Usage]:
        text, usage = self.answers[digest]
        self.meter.served(("answer", digest), usage, rollout=False)
        return text, usage

    async def _call(self, digest: str, call: Callable[[], Awaitable[tuple[str, Usage]]]) -> tuple[str, Usage]:
        committed = await self.ledger.admit_call(self.role)  # BudgetExhausted propagates: nothing was spent
        cost: float | None = None
        try:
            async with self.limit:
                text, usage = await call()
            cost = usage.cost_usd
        except Exception as exc:
            self._failed(digest, exc)
            raise
        finally:
            self.ledger.settle(self.role, cost, committed=committed)
        self.calls += 1
        self.outage.answered()
        self.meter.paid(self.role, usage)
        if self.journal is not None:
            self.journal.answer(digest, self.role, text, usage)
        return text, usage

    def _failed(self, digest: str, exc: Exception) -> None:
        self.meter.paid(self.role, FAILED_CALL, failed=True)
        if self.journal is not None:
            self.journal.answer(digest, self.role, None, FAILED_CALL)
        if counts_as_outage(exc):
            kind = exc.kind if isinstance(exc, ProviderError) else type(exc).__name__
            self.outage.failed(self.role, kind, str(exc))
            self.outage.check()
