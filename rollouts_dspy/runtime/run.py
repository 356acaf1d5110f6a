"""One run's runtime: the ledger, meter, outage detector, concurrency limit and journal, built once per run and
shared by the engine's evaluations and model calls. Both engines build their runs through `Runtime.open`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..prompt_optimization.protocols import LanguageModel, Task
from ..prompt_optimization.types import Candidate
from .evaluator import Evaluator
from .journal import JOURNAL_FILE, Journal, JournalContents, read_journal
from .ledger import ROLLOUT, Budget, Ledger
from .meter import Meter
from .models import RecordedModel
from .outage import DEFAULT_OUTAGE_THRESHOLD, OutageDetector

__all__ = ["RunContext", "Runtime"]

Counters = Callable[[], Mapping[str, Mapping[str, Any]]]
"""Per-role counters the LLM layer keeps itself (retries), read at step markers so a resume keeps them."""


@dataclass(frozen=True)
class RunContext:
    """What a front door tells an engine about a run beyond its config: the `fingerprint` of its world (dataset,
    models, template: what a checkpoint must agree on besides the config), how the run can be continued after an
    outage (`resume_hint`, part of the error message), and the LLM layer's own `counters`."""

    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    resume_hint: str = ""
    counters: Counters | None = None


class Runtime:
    """Everything an engine's shell needs to pay for work, for one run (see the package doc)."""

    def __init__(self, *, method: str, budget: Budget, max_concurrent: int, checkpoint_dir: str | None = None,
                 fingerprint: Mapping[str, Any] | None = None, resume_hint: str = "",
                 counters: Counters | None = None, outage_threshold: int = DEFAULT_OUTAGE_THRESHOLD) -> None:
        """`fingerprint` is everything a checkpoint must agree on (config fields and the front door's world)."""
        self.method = method
        self.budget = budget
        path = None if checkpoint_dir is None else Path(checkpoint_dir) / JOURNAL_FILE
        contents = (read_journal(path, method=method, fingerprint=fingerprint or {}) if path else None)
        self.resumed = contents is not None
        contents = contents or JournalContents(method=method)
        self.journal = None if path is None else Journal(path, method=method, fingerprint=fingerprint or {})
        self.ledger = Ledger(budget, rollouts_used=contents.admitted)
        self.meter = Meter(elapsed=contents.elapsed)
        self._replay_paid(contents)
        self.outage = OutageDetector(outage_threshold, resume_hint=resume_hint)
        self.limit = asyncio.Semaphore(max_concurrent)
        self.cache = dict(contents.rollouts)
        self._answers = dict(contents.answers)
        self._counters = counters
        self._base_counters = {role: dict(c) for role, c in contents.counters.items()}
        self.best_recorded = contents.best
        self.steps_recorded = contents.steps
        self._models: list[RecordedModel] = []
        self._last_step = contents.steps

    def _replay_paid(self, contents: JournalContents) -> None:
        """What the earlier processes of this run paid, into the ledger (dollars, prices) and the meter."""
        for _key, rollout in contents.finished:
            self.meter.paid("task", rollout.usage, failed=rollout.error is not None)
            self.ledger.cost_usd += rollout.usage.cost_usd or 0.0
            self.ledger.prices.observe(ROLLOUT, rollout.usage.cost_usd)
        for role, usage, failed in contents.calls:
            self.meter.paid(role, usage, failed=failed)
            self.ledger.cost_usd += usage.cost_usd or 0.0
            self.ledger.prices.observe(role, usage.cost_usd if not failed else None)

    @classmethod
    def open(cls, *, method: str, budget: Budget, max_concurrent: int, checkpoint_dir: str | None,
             fingerprint: Mapping[str, Any], context: RunContext | None) -> Runtime:
        """The runtime of an engine run: the config's `fingerprint` joined with the front door's world."""
        context = context or RunContext()
        return cls(method=method, budget=budget, max_concurrent=max_concurrent, checkpoint_dir=checkpoint_dir,
                   fingerprint={**dict(fingerprint), **dict(context.fingerprint)},
                   resume_hint=context.resume_hint, counters=context.counters)

    def evaluator(self, task: Task, on_rollout: Callable[[Candidate, Any], None] | None = None,
                  namespace: str = "") -> Evaluator:
        return Evaluator(task, ledger=self.ledger, meter=self.meter, outage=self.outage, limit=self.limit,
                         cache=self.cache, journal=self.journal, on_rollout=on_rollout, namespace=namespace)

    def model(self, model: LanguageModel, role: str) -> RecordedModel:
        recorded = RecordedModel(model, role, ledger=self.ledger, meter=self.meter, outage=self.outage,
                                 limit=self.limit, answers=self._answers, journal=self.journal)
        self._models.append(recorded)
        return recorded

    def usage(self) -> dict[str, dict[str, Any]]:
        """The usage table of the whole run (every process of a resumed run)."""
        self.meter.add_retries(self._counters_now())
        return self.meter.usage()

    def _counters_now(self) -> dict[str, dict[str, Any]]:
        now = {role: dict(c) for role, c in (self._counters() if self._counters else {}).items()}
        out = {role: dict(c) for role, c in self._base_counters.items()}
        for role, c in now.items():
            base = out.setdefault(role, {})
            base["retries"] = int(base.get("retries", 0)) + int(c.get("retries", 0))
        return out

    def step(self, n: int, best: Mapping[str, Any] | None = None) -> None:
        """A step (generation, trial batch) finished: journal a marker (progress, elapsed, best so far)."""
        self._last_step = n
        if self.journal is not None:
            self.journal.step(n, elapsed=self.meter.elapsed, best=best, counters=self._counters_now())

    def close(self) -> None:
        """Journal the final elapsed time and counters (also after Ctrl-C or an outage), then close."""
        if self.journal is not None:
            self.step(self._last_step)
            self.journal.close()

    @property
    def rollouts_used(self) -> int:
        """Rollouts admitted in the whole run (what the provider was asked for, lost calls included)."""
        return self.ledger.rollouts_used

    def cost(self) -> float | None:
        """Dollars spent in the whole run, None when some call's price is unknown."""
        known = all(u.cost_known for u in self.meter.roles.values())
        return self.ledger.cost_usd if known else None
