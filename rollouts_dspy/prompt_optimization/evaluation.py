"""Scoring candidates on samples: the async shell around a Task, with the run's cache and budget.

`Evaluator` is what both engines' shells call. It never runs the same (candidate content, sample) twice: finished
rollouts are cached and concurrent requests for the same pair share one run. Before launching, it reserves the
rollouts from the budget; what the budget cannot pay for is simply not run (the caller sees fewer results).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..dtypes import Endpoint, ScoreFn, Usage
from ..llm import LLMSession
from ..runtime import ProviderUnavailableError
from .budget import Budget, BudgetLedger
from .protocols import Rollout, Task
from .template_task import EnvironmentFactory, TemplateTask, preflight
from .types import Candidate, PromptTemplate

__all__ = [
    "EvaluationReport", "Evaluator", "ProviderUnavailableError", "evaluate_detailed", "evaluate_template", "mean_score",
]

DEFAULT_OUTAGE_THRESHOLD = 8
"""Consecutive rollouts that fail on the LLM call (after their own retries) before the provider counts as down."""


def mean_score(rollouts: Iterable[Rollout]) -> float | None:
    """Mean over measured rollouts; None when none was measured (never a failure counted as a 0 it wasn't)."""
    scores = [r.score for r in rollouts if r.score is not None]
    return sum(scores) / len(scores) if scores else None


class Evaluator:
    """Runs a Task under a run's cache and budget. `cache` maps (candidate key, sample index) -> Rollout and is
    the run's memory of paid-for work (checkpoints save it)."""

    def __init__(
        self,
        task: Task,
        ledger: BudgetLedger | None = None,
        cache: dict[tuple[str, int], Rollout] | None = None,
        on_rollout: Callable[[Candidate, Rollout], None] | None = None,
        *,
        outage_threshold: int = DEFAULT_OUTAGE_THRESHOLD,
    ) -> None:
        self.task = task
        self.outage_threshold = outage_threshold
        self._failed_in_a_row = 0
        self.ledger = ledger or BudgetLedger(Budget())
        self.cache: dict[tuple[str, int], Rollout] = cache if cache is not None else {}
        self.on_rollout = on_rollout
        self.rollouts_run = 0
        self.cache_hits = 0
        self._pending: dict[tuple[str, int], asyncio.Future[Rollout | None]] = {}
        self._probe = asyncio.Lock()

    def cached(self, candidate: Candidate, indices: Iterable[int]) -> dict[int, Rollout]:
        key = candidate.key
        return {i: self.cache[(key, i)] for i in indices if (key, i) in self.cache}

    async def evaluate(self, candidate: Candidate, indices: Sequence[int]) -> dict[int, Rollout]:
        """Rollouts of `candidate` on `indices`: cached ones, plus new ones as far as the budget allows."""
        key = candidate.key
        results: dict[int, Rollout] = {}
        waits: dict[int, asyncio.Future[Rollout | None]] = {}
        todo: list[int] = []
        for i in dict.fromkeys(indices):
            if (key, i) in self.cache:
                results[i] = self.cache[(key, i)]
                self.cache_hits += 1
            elif (key, i) in self._pending:
                waits[i] = self._pending[(key, i)]
            else:
                todo.append(i)
        if todo and self.ledger.budget.max_cost_usd is not None and self.ledger._charged_rollouts == 0:
            # The price of a rollout is unknown until one has run: run one alone so the cost budget can bound
            # the rest instead of launching a whole batch blind.
            async with self._probe:
                if self.ledger._charged_rollouts == 0 and self.ledger.reserve(1):
                    first = todo.pop(0)
                    results[first] = await self._run(candidate, key, first)
        granted = self.ledger.reserve(len(todo)) if todo else 0
        loop = asyncio.get_running_loop()
        for i in todo[:granted]:
            self._pending[(key, i)] = loop.create_future()
        runs = [asyncio.ensure_future(self._run(candidate, key, i)) for i in todo[:granted]]
        try:
            done = await asyncio.gather(*runs, *waits.values())
        except BaseException:
            # One rollout's crash (or a cancellation) must not leave its siblings running unobserved.
            for run in runs:
                run.cancel()
            raise
        for i, rollout in zip([*todo[:granted], *waits], done, strict=True):
            if rollout is not None:
                results[i] = rollout
        if self._failed_in_a_row >= self.outage_threshold:
            last = next((r.error.detail for r in reversed(done) if r is not None and r.error), "")
            raise ProviderUnavailableError(self._failed_in_a_row, last,
                                           resume_hint="resume it once the provider answers again")
        return {i: results[i] for i in indices if i in results}

    async def _run(self, candidate: Candidate, key: str, index: int) -> Rollout:
        future = self._pending.get((key, index))
        try:
            rollout = await self.task.run(candidate, index)
        except BaseException:
            if future is not None and not future.done():
                future.set_result(None)
            self._pending.pop((key, index), None)
            self.ledger.settle(None)
            raise
        self.ledger.settle(rollout.usage.cost_usd)
        self.rollouts_run += 1
        if rollout.error is not None and rollout.error.kind == "llm":
            # Unmeasured: not cached, so a later request (or a resumed run) tries the pair again.
            self._failed_in_a_row += 1
        else:
            self._failed_in_a_row = 0
            self.cache[(key, index)] = rollout
        if future is not None and not future.done():
            future.set_result(rollout)
        self._pending.pop((key, index), None)
        if self.on_rollout is not None:
            self.on_rollout(candidate, rollout)
        return rollout


@dataclass(frozen=True)
class EvaluationReport:
    """The detailed form of evaluate_template: every rollout, the mean over measured ones, totals."""

    template: PromptTemplate
    rollouts: tuple[Rollout, ...]
    mean: float | None
    usage: Usage = field(default_factory=Usage)
    failures: Mapping[str, int] = field(default_factory=dict)

    @property
    def num_failed(self) -> int:
        return sum(self.failures.values())


async def evaluate_detailed(
    template: PromptTemplate,
    seeds: Sequence[int],
    dataset: Sequence[dict[str, Any]],
    endpoint: Endpoint,
    score_fn: ScoreFn,
    environment_factory: EnvironmentFactory | None = None,
    max_concurrent: int = 10,
    *,
    session: LLMSession | None = None,
    cache: dict[str, dict[tuple[str, int], Rollout]] | None = None,
) -> EvaluationReport:
    """Evaluate `template` on the rows `seeds` of `dataset`; every sample's trajectory text, score, feedback,
    error and usage. Pass the same `cache` (a dict, keyed inside by endpoint) to several calls to never run a
    prompt twice on a sample with the same model."""
    preflight(template, dataset, score_fn, environment_factory, train_seeds=seeds, owner="evaluate_detailed")
    session = session or LLMSession(max_concurrent=max_concurrent)
    task = TemplateTask(template, dataset, endpoint, score_fn, session, environment_factory=environment_factory)
    evaluator = Evaluator(task, cache=None if cache is None else cache.setdefault(endpoint.identity(), {}))
    by_index = await evaluator.evaluate(Candidate.from_template(template), seeds)
    rollouts = tuple(by_index[i] for i in seeds)
    usage = Usage()
    failures: dict[str, int] = {}
    for r in rollouts:
        usage = usage + r.usage
        if r.error is not None:
            failures[r.error.kind] = failures.get(r.error.kind, 0) + 1
    mean = mean_score(rollouts)
    return EvaluationReport(_with_score(template, mean), rollouts, mean, usage, failures)


def _with_score(template: PromptTemplate, score: float | None) -> PromptTemplate:
    from dataclasses import replace

    return replace(template, score=score)


async def evaluate_template(
    template: PromptTemplate,
    seeds: Sequence[int],
    dataset: Sequence[dict[str, Any]],
    endpoint: Endpoint,
    score_fn: ScoreFn,
    environment_factory: EnvironmentFactory | None = None,
    max_concurrent: int = 10,
) -> PromptTemplate:
    """Evaluate `template` on `seeds`; returns it with `score` set to the mean over measured samples (None if
    every sample failed). Samples run concurrently up to `max_concurrent` LLM calls in flight."""
    report = await evaluate_detailed(template, seeds, dataset, endpoint, score_fn, environment_factory,
                                     max_concurrent)
    return report.template
