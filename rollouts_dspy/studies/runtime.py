"""The runtime of one worker of a shared study: the run's Runtime with the study's ledger, an evaluator whose cache
is the study's rollouts table and a model whose remembered answers are the study's answers table.

Every rollout and proposer call is claimed in the database before it starts (claim and budget admission in one
transaction) and stored when it ends, so no worker repeats another's; a worker that finds a piece of work claimed
waits for it (without holding one of its concurrency slots) and is served what the other stored. What this worker
ran is metered and feeds its outage detector as in a single run; what it was served was paid by someone else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from ..dtypes import Usage
from ..prompt_optimization.protocols import LanguageModel, Rollout, Task
from ..prompt_optimization.types import Candidate
from ..runtime import (
    Budget,
    BudgetExhausted,
    Evaluator,
    ProviderUnavailableError,
    RecordedModel,
    Runtime,
    counts_as_outage,
)
from ..runtime.run import Counters
from .ledger import SharedLedger
from .records import (
    ANSWER_CLAIM,
    DONE,
    GRANTED,
    ROLLOUT_CLAIM,
    WAIT,
    Claim,
    StoredFailure,
    claim_answer,
    claim_rollout,
    finish_answer,
    finish_rollout,
    finished_rollouts,
    study_usage,
)
from .store import POLL_SECONDS, StudyStore

__all__ = ["SharedEvaluator", "SharedModel", "SharedRuntime"]


class SharedEvaluator(Evaluator):
    """An Evaluator over the study's rollouts (see the module doc); `model` keys the rollouts by the task model."""

    def __init__(self, task: Task, *, store: StudyStore, model: str, **kwargs: Any) -> None:
        super().__init__(task, **kwargs)
        self.store, self.model = store, model

    async def evaluate(self, candidate: Candidate, indices: Sequence[int]) -> dict[int, Rollout]:
        key = self.namespace + candidate.key
        unknown = [i for i in dict.fromkeys(indices) if (key, i) not in self.cache and (key, i) not in self._pending]
        if unknown:  # one query for what the study already has
            stored = await self.store.run(finished_rollouts, self.store, self.model, key, unknown)
            self.cache.update({(key, i): r for i, r in stored.items()})
        return await super().evaluate(candidate, indices)

    async def _run(self, candidate: Candidate, key: str, index: int) -> Rollout | None:
        future = self._pending[(key, index)]
        rollout: Rollout | None = None
        ran = False
        try:
            rollout, ran = await self._shared(candidate, key, index)
        finally:
            self._pending.pop((key, index), None)
            if not future.done():
                future.set_result(rollout)
        if rollout is not None:
            if ran:
                self._record(candidate, key, rollout)
            self.cache[(key, index)] = rollout  # final in a shared study, failed ones too (records' module doc)
        return rollout

    async def _shared(self, candidate: Candidate, key: str, index: int) -> tuple[Rollout | None, bool]:
        """(the rollout -- None when the budget refused it --, whether this worker ran it)."""
        while True:
            async with self.limit:
                claim: Claim = await self.store.run(claim_rollout, self.store, self.model, key, index,
                                                    self.ledger.grant_in)
                if claim.state == DONE:
                    return claim.value, False
                if claim.state == GRANTED:
                    # Cancelled or failed here, the claim is given back when this worker leaves the study.
                    rollout = await self.task.run(candidate, index)
                    stored = await self.store.run(finish_rollout, self.store, self.model, key, rollout,
                                                  claim.committed, self.ledger.settle_in)
                    return stored, True
            if claim.state == WAIT:
                await asyncio.sleep(POLL_SECONDS)  # another worker's probe decides the price first
            else:
                await self.store.wait_free(ROLLOUT_CLAIM, f"{self.model}/{key}", index)


class SharedModel(RecordedModel):
    """A RecordedModel whose answers are the study's: each request is answered once, by the worker that claims it;
    a failed or refused call is served as that failure to the others (`StoredFailure`, or BudgetExhausted)."""

    def __init__(self, model: LanguageModel, role: str, *, store: StudyStore, **kwargs: Any) -> None:
        super().__init__(model, role, **kwargs)
        self.store = store

    async def _call(self, digest: str, call: Callable[[], Any]) -> tuple[str, Usage]:
        while True:
            claim: Claim = await self.store.run(claim_answer, self.store, digest)
            if claim.state == DONE:
                return _served(claim.value)
            if claim.state == GRANTED:
                return _served(await self._call_claimed(digest, call))
            await self.store.wait_free(ANSWER_CLAIM, digest)

    async def _call_claimed(self, digest: str, call: Callable[[], Any]) -> tuple[str, Usage] | StoredFailure:
        try:
            text, usage = await super()._call(digest, call)
        except ProviderUnavailableError:
            raise  # the run stops; its claim is given back when the worker leaves
        except Exception as exc:
            budget = isinstance(exc, BudgetExhausted)
            error = {"kind": "budget" if budget else str(getattr(exc, "kind", type(exc).__name__)),
                     "message": str(getattr(exc, "message", exc))[:500], "outage": counts_as_outage(exc),
                     "budget": budget}
            await self.store.run(finish_answer, self.store, digest, self.role, None, Usage(0, 0, 0.0, 0), error)
            raise
        return await self.store.run(finish_answer, self.store, digest, self.role, text, usage)


def _served(stored: tuple[str, Usage] | StoredFailure) -> tuple[str, Usage]:
    """A stored answer as the model's reply: its text, or the failure it was (a refusal as BudgetExhausted)."""
    if not isinstance(stored, StoredFailure):
        return stored
    if stored.error.get("budget"):
        raise BudgetExhausted(stored.error["message"])
    raise stored


class SharedRuntime(Runtime):
    """A Runtime whose ledger, evaluators and models are the study's (see the module doc). `model` names the task
    model the rollouts are keyed by. The counters it reports (rollouts, dollars, usage) are the whole study's."""

    def __init__(self, store: StudyStore, *, method: str, budget: Budget, max_concurrent: int, model: str,
                 resume_hint: str = "", counters: Counters | None = None) -> None:
        super().__init__(method=method, budget=budget, max_concurrent=max_concurrent, resume_hint=resume_hint,
                         counters=counters)
        self.store, self.model_key = store, model
        self.ledger = SharedLedger(store, budget)

    def evaluator(self, task: Task, on_rollout: Callable[[Candidate, Any], None] | None = None,
                  namespace: str = "") -> Evaluator:
        return SharedEvaluator(task, store=self.store, model=self.model_key, ledger=self.ledger, meter=self.meter,
                               outage=self.outage, limit=self.limit, cache=self.cache, on_rollout=on_rollout,
                               namespace=namespace)

    def model(self, model: LanguageModel, role: str) -> RecordedModel:
        recorded = SharedModel(model, role, store=self.store, ledger=self.ledger, meter=self.meter,
                               outage=self.outage, limit=self.limit, answers=self._answers)
        self._models.append(recorded)
        return recorded

    @property
    def rollouts_used(self) -> int:
        self.ledger.refresh()
        return self.ledger.rollouts_used

    def cost(self) -> float | None:
        self.ledger.refresh()
        return super().cost()

    def usage(self) -> dict[str, dict[str, Any]]:
        with self.store.guard():
            return study_usage(self.store.engine, self.store.name)
