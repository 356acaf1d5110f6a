"""MIPRO across workers: one search run by any number of worker processes through a PostgreSQL database
(`MIPROConfig(study=SharedStudy(...))`; docs/cluster.md, MIPRO across workers).

Every worker runs the same engine and the same shell as a single run, and gives them the same answers: the study's
database is their shared cache (rollouts claimed before they run, stored when they end), their shared ledger and
their shared proposer. The engine's decisions are a function of what it is told, in trial-number order, never of
when work finished (see runner's module doc), so every worker asks the same trials with the same seeded TPE
sampler over the same told trials, whatever the number of workers or who finished first -- and the result equals
a single run's with the same seed and the same LLM answers. The database decides only *who* runs each rollout.

The candidate pool (dataset summary, bootstrapped demos, demo sets, instruction proposals) is a job: the first
worker to claim it makes it and stores it; the others wait, then rebuild their engine's state from the stored
rollouts and answers (no call is made twice) and check it is the stored pool. Each trial is recorded by number by
the first worker to tell it (and added to Optuna's study of the same name, for optuna-dashboard); every other
worker checks its own equals it. The first worker to finish stores the result (`rollouts-dspy show URL --study`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ...errors import CheckpointError, ConfigError
from ...runtime import Budget, RunContext
from ...studies.options import mask_url
from ..events import Reporter
from ..protocols import LanguageModel, Task
from ..types import SYSTEM, Candidate, PromptTemplate, SearchOutcome
from .config import MIPROConfig
from .runner import METHOD, _Shell
from .state import TrialEntry

__all__ = ["POOL_JOB", "optimize_shared", "study_fingerprint"]

POOL_JOB = "pool"
CONFIG_NOT_SHARED = ("study", "storage", "checkpoint_dir", "chosen_for_budget")
"""Config fields that are not part of the search (where it is kept). Every other field must be the same on every
worker: they all decide (`max_concurrent` too: it sizes the bootstrap chunks and the trials in flight)."""


def study_fingerprint(config: MIPROConfig, initial: Candidate, components: tuple[str, ...], teacher: bool,
                      context: RunContext) -> dict[str, Any]:
    """What every worker of a study must agree on, flat so a refusal names the field: the config's search
    fields, the starting candidate, the front door's world (dataset, models) and the versions that decide."""
    import optuna

    from ... import __version__

    fields = {k: v for k, v in config.to_dict().items() if k not in CONFIG_NOT_SHARED}
    return {**fields, "initial": initial.to_dict(), "components": list(components), "teacher": teacher,
            **dict(context.fingerprint), "versions": {"rollouts_dspy": __version__, "optuna": optuna.__version__}}


def _model_key(context: RunContext) -> str:
    """The task model's identity, which keys the study's rollouts (with the candidate and the row)."""
    identity = json.dumps(context.fingerprint.get("endpoint", "task"), sort_keys=True, default=str)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


async def optimize_shared(task: Task, proposer: LanguageModel, initial: Candidate, config: MIPROConfig, *,
                          reporter: Reporter | None, context: RunContext | None, bootstrap_task: Task | None,
                          trial_log: dict[int, TrialEntry] | None) -> SearchOutcome:
    """`optimize_mipro` as one worker of `config.study` (see the module doc); the same arguments and outcome."""
    from ...studies.records import save_result
    from ...studies.runtime import SharedRuntime
    from ...studies.store import StudyStore

    assert config.study is not None
    context = context or RunContext()
    components = tuple(task.components)
    if SYSTEM not in components:
        raise ConfigError(f"a shared study optimizes a prompt template's {SYSTEM!r} component; this task has "
                          f"{list(components)}")
    study = config.study
    budget = Budget(max_rollouts=config.max_rollouts, max_cost_usd=config.max_cost_usd)
    fingerprint = study_fingerprint(config, initial, components, bootstrap_task is not None, context)
    store = await StudyStore.join(study, method=METHOD, fingerprint=fingerprint, config=config.to_dict(),
                                  budget=budget)
    shell: SharedShell | None = None
    try:
        hint = (f"start the workers again (rollouts-dspy worker --storage {mask_url(study.storage)} --study "
                f"{study.name}): the study continues from its database")
        runtime = SharedRuntime(store, method=METHOD, budget=budget, max_concurrent=config.max_concurrent,
                                model=_model_key(context), resume_hint=hint, counters=context.counters)
        # The engine's Optuna study stays in memory (rebuilt by the same asks and tells in every worker).
        local = dataclasses.replace(config, study=None)
        shell = SharedShell(task, proposer, initial, local, runtime, reporter, bootstrap_task, store=store)
        outcome = await shell.run()
        await store.run(save_result, store, _result(outcome, initial, config, context))
        return outcome
    finally:
        store.leave()
        if trial_log is not None and shell is not None:
            trial_log.update(shell.engine.state.trials)


def _result(outcome: SearchOutcome, initial: Candidate, config: MIPROConfig, context: RunContext) -> dict[str, Any]:
    """The result as `show` reads it: the one conversion (`SearchOutcome.to_result`) from the template the initial
    candidate came from (its user template is in the front door's world: frontdoor.world_fingerprint)."""
    from ...io import result_to_dict

    base = initial.to_template(PromptTemplate(system="", user_template=str(context.fingerprint.get("user_template",
                                                                                                   ""))))
    return result_to_dict(outcome.to_result(base, method=METHOD, seed=config.seed, config=config.to_dict()))


class SharedShell(_Shell):
    """The MIPRO shell of one worker: the pool made once, each trial recorded once and checked (module doc)."""

    def __init__(self, *args: Any, store: Any) -> None:
        super().__init__(*args)
        self.store = store
        self._records: list[tuple[TrialEntry, asyncio.Future[tuple[str, float | None]]]] = []

    async def run(self) -> SearchOutcome:
        try:
            outcome = await super().run()
            for entry, future in self._records:
                self._agree(entry, await future)
            return outcome
        finally:
            for _, future in self._records:
                future.cancel()

    # -- the candidate pool --------------------------------------------------------------------------------------
    async def _setup(self) -> None:
        def waiting() -> None:
            self._phase("waiting for another worker's candidate pool", None)

        pool, made = await self.store.once(POOL_JOB, self._make_pool, waiting)
        if made:
            return
        await super()._setup()  # every rollout and answer it needs is in the study: served, none made again
        if self._pool() != pool:
            raise CheckpointError(f"study {self.store.name!r}: the candidate pool rebuilt from the study's rollouts "
                                  "and answers differs from the stored one; the workers disagree (same rollouts-dspy "
                                  "and optuna versions everywhere?)")

    async def _make_pool(self) -> Mapping[str, Any]:
        await super()._setup()
        return self._pool()

    def _pool(self) -> Mapping[str, Any]:
        state = self.engine.state
        pool = {"summary": state.summary, "instructions": state.instructions,
                "demo_sets": {c: [[dict(d) for d in s] for s in sets] for c, sets in state.demo_sets.items()}}
        return json.loads(json.dumps(pool, sort_keys=True))

    # -- trials --------------------------------------------------------------------------------------------------
    def _step(self, entry: TrialEntry) -> None:
        super()._step(entry)
        while self._records and self._records[0][1].done():
            done, future = self._records.pop(0)
            self._agree(done, future.result())
        self._records.append((entry, asyncio.ensure_future(self._record(entry))))

    async def _record(self, entry: TrialEntry) -> tuple[str, float | None]:
        """Trial `entry` as the study recorded it (by this worker if it is the first to tell it)."""
        from ...studies.records import TRIAL_CLAIM, record_trial

        mirror = functools.partial(self._mirror, entry)
        while (recorded := await self.store.run(record_trial, self.store, entry.number, entry.combo, entry.value,
                                                entry.scores, mirror)) is None:
            await self.store.wait_free(TRIAL_CLAIM, "", entry.number)
        return recorded

    def _agree(self, entry: TrialEntry, recorded: tuple[str, float | None]) -> None:
        combo, value = recorded
        if (combo, value) != (entry.combo, entry.value):
            raise CheckpointError(f"study {self.store.name!r}: trial {entry.number} was recorded as {combo} (score "
                                  f"{value}) but this worker's engine has {entry.combo} ({entry.value}); the workers "
                                  "disagree (same rollouts-dspy and optuna versions everywhere?)")

    def _mirror(self, entry: TrialEntry, check: bool) -> None:
        """Trial `entry` in Optuna's study of the same name (on the store's threads); with `check`, only if the
        worker that recorded it died before it was known to be there."""
        import optuna

        if check and any(t.user_attrs.get("mipro_trial") == entry.number
                         for t in self.store.optuna.get_trials(deepcopy=False)):
            return
        assert self.engine.study is not None
        study = self.engine.study
        attrs = {"mipro_trial": entry.number, "combination": entry.combo, "minibatch": list(entry.indices)}
        state = optuna.trial.TrialState.FAIL if entry.value is None else optuna.trial.TrialState.COMPLETE
        self.store.optuna.add_trial(optuna.trial.create_trial(
            params=study.params(entry.choice), distributions=study.distributions, value=entry.value, state=state,
            user_attrs=attrs))
