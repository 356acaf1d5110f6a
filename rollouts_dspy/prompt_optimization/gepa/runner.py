"""`optimize_gepa`: the thin async shell over the GEPA engine. It evaluates the start on the Pareto set, keeps up
to `children_per_generation` steps in flight (each planned by the engine from the state told so far), tells their
results back in step order, validates the best candidates and returns a SearchOutcome.

Keeping several steps in flight keeps the concurrency slots busy while a step waits on its reflection; telling in
step order (and planning from told results only) keeps the search the same whatever order calls finish in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ...errors import ConfigError
from ...runtime import Budget, RunContext, Runtime
from ..events import (
    BudgetUpdated,
    CandidateDropped,
    PhaseStarted,
    Reporter,
    RunFinished,
    RunStarted,
    RunWarning,
    StepFinished,
)
from ..protocols import LanguageModel, Task
from ..types import Candidate, SearchOutcome
from .config import GEPAConfig
from .engine import GEPAEngine, StepPlan, StepResult
from .step import RecordedProposer, StepRunner
from .strategies import GEPAStrategies, ReflectiveProposer, candidate_selector, component_selector

__all__ = ["optimize_gepa"]

METHOD = "gepa"


async def optimize_gepa(
    task: Task,
    reflection: LanguageModel,
    initial: Candidate,
    config: GEPAConfig,
    *,
    reporter: Reporter | None = None,
    context: RunContext | None = None,
    strategies: GEPAStrategies | None = None,
) -> SearchOutcome:
    """Run GEPA on `task` from `initial` (docs/gepa.md): reflective mutations by `reflection` (or
    `strategies.proposer`), Pareto-aware parents, merges; then validate the best candidates on `config.val_seeds`.
    `context` comes from the front door (what identifies the run's world for checkpoints, how to resume)."""
    components = _check(task, initial, config)
    strategies = strategies or GEPAStrategies()
    fingerprint = {**config.fingerprint(), "initial": initial.key, "components": list(components),
                   "proposer": type(strategies.proposer).__name__ if strategies.proposer else "reflective"}
    runtime = Runtime.open(method=METHOD, budget=Budget(max_rollouts=config.max_rollouts,
                                                        max_cost_usd=config.max_cost_usd),
                           max_concurrent=config.max_concurrent, checkpoint_dir=config.checkpoint_dir,
                           fingerprint=fingerprint, context=context)
    try:
        shell = _Shell(task, reflection, initial, config, strategies, runtime, reporter)
        return await shell.run()
    finally:
        runtime.close()


def _check(task: Task, initial: Candidate, config: GEPAConfig) -> tuple[str, ...]:
    if not isinstance(config, GEPAConfig):
        raise ConfigError(f"config must be a GEPAConfig, but got {type(config).__name__}")
    components = tuple(task.components)
    missing = [c for c in components if c not in initial.instructions]
    if not components or missing:
        raise ConfigError(f"the initial candidate must have an instruction for every component of the task "
                          f"{components}, but lacks {missing}")
    return components


class _Shell:
    def __init__(self, task: Task, reflection: LanguageModel, initial: Candidate, config: GEPAConfig,
                 strategies: GEPAStrategies, runtime: Runtime, reporter: Reporter | None) -> None:
        self.config, self.runtime, self.reporter, self.initial = config, runtime, reporter, initial
        selector = strategies.candidate_selector or candidate_selector(config.candidate_selection)
        self.engine = GEPAEngine(config, task.components, initial, selector)
        model = runtime.model(reflection, "reflection")
        proposer = (RecordedProposer(strategies.proposer, model) if strategies.proposer is not None
                    else ReflectiveProposer(model, attempts=config.mutation_attempts))
        self.evaluator = runtime.evaluator(task)
        self.steps = StepRunner(self.engine, self.evaluator, task, proposer,
                                strategies.component_selector or component_selector(config.component_selection),
                                model if config.llm_merge else None)

    def emit(self, event: Any) -> None:
        if self.reporter is not None:
            self.reporter(event)

    async def run(self) -> SearchOutcome:
        engine, config = self.engine, self.config
        self.emit(RunStarted(METHOD, config.generations, config.max_rollouts, self._estimate()))
        if config.overlap:
            self.emit(RunWarning(f"train_seeds and val_seeds share {len(config.overlap)} indices "
                                 f"(e.g. {list(config.overlap[:5])}): validation is not held out"))
        self.emit(PhaseStarted(METHOD, "initial evaluation", len(engine.pareto_set)))
        engine.tell_initial(await self.evaluator.evaluate(self.initial, engine.pareto_set))
        self.emit(PhaseStarted(METHOD, "search" if not self.runtime.resumed else
                               f"search, resumed: {self.runtime.steps_recorded} generation(s) replayed from the "
                               "checkpoint"))
        reason = await self._search()
        validated = await self._validate()
        best_id = engine.choose_best(validated)
        best = engine.state.entries[best_id]
        score = best.to_record().score
        self.runtime.step(len(engine.state.history), best=_snapshot(best.id, best.candidate, score))
        self.emit(RunFinished(METHOD, score, reason, self.runtime.rollouts_used))
        return SearchOutcome(engine.state.records(), tuple(engine.state.history), best_id, reason,
                             self.runtime.rollouts_used, self.runtime.cost(), self.runtime.usage(),
                             compared_on=engine.pareto_set, compared_split=engine.split,
                             front=engine.objective_front() if self.config.objectives else None)

    async def _search(self) -> str:
        """Launch steps while the engine allows (at most a generation's worth in flight), tell them in order."""
        engine, width = self.engine, self.config.children_per_generation
        inflight: dict[int, tuple[StepPlan, asyncio.Future[StepResult]]] = {}
        next_step, reason = 0, ""
        try:
            while True:
                while not reason and len(inflight) < width:
                    plan, reason = self._next(next_step, inflight)
                    if plan is None:
                        break
                    inflight[next_step] = (plan, asyncio.ensure_future(self.steps.run(plan)))
                    next_step += 1
                if not inflight:
                    break
                oldest = min(inflight)
                plan, future = inflight[oldest]
                await _wait_for(future, [f for _, f in inflight.values()])
                del inflight[oldest]
                self._tell(plan, future.result())
                reason = reason or engine.state.stop_reason
        except BaseException:
            await _cancel([f for _, f in inflight.values()])
            raise
        if engine.state.told % width:
            self._close_generation(engine.state.told // width)
        return reason or engine.stop_reason(next_step) or "budget"

    def _next(self, step: int, inflight: Mapping[int, tuple[StepPlan, Any]]) -> tuple[StepPlan | None, str]:
        """The plan of `step` if it may start now; else why the search stops ('' = wait for a step to finish)."""
        engine = self.engine
        reason = engine.stop_reason(step)
        if reason:
            return None, reason
        plan = engine.ask(step, [p for p, _ in inflight.values()])
        if plan is None:
            return None, "" if inflight else "no_candidate"
        if not engine.fits(plan, sum(p.reserve for p, _ in inflight.values()), len(inflight)):
            return None, "" if inflight else "budget"
        return plan, ""

    def _replayed(self, generation: int) -> bool:
        """A generation an earlier process of this run already finished and reported (a resumed run replays it
        from the journal, for free): not reported again."""
        return self.runtime.resumed and generation < self.runtime.steps_recorded

    def _tell(self, plan: StepPlan, result: StepResult) -> None:
        self.engine.tell(plan, result)
        if not self._replayed(plan.generation):
            if result.child is None and result.rejected:
                self.emit(CandidateDropped(METHOD, plan.step, result.rejected))
            spend = self.engine.state.spend
            self.emit(BudgetUpdated(spend.rollouts, self.config.max_rollouts, spend.cost, spend.tokens))
        if (plan.step + 1) % self.config.children_per_generation == 0:
            self._close_generation(plan.generation)

    def _close_generation(self, generation: int) -> None:
        stats = self.engine.end_generation(generation, self.runtime.meter.elapsed)
        if self._replayed(generation):
            return
        best_id, best = self.engine.best_so_far()
        entry = self.engine.state.entries[best_id]
        self.runtime.step(generation + 1, best=_snapshot(best_id, entry.candidate, best))
        self.emit(StepFinished(METHOD, stats, best))

    async def _validate(self) -> list[str]:
        engine, val = self.engine, self.engine.val_set
        ids = engine.validation_order()
        if not ids:
            return []
        left = engine.room(reserve=0)
        chosen = []
        for cid in ids:
            need = sum(1 for i in val if (engine.state.entries[cid].candidate.key, i) not in engine.state.charged)
            if left is None or need <= left:
                chosen.append(cid)
                left = None if left is None else left - need
        self.emit(PhaseStarted(METHOD, "validation", len(chosen) * len(val)))
        results = await asyncio.gather(*(self.evaluator.evaluate(engine.state.entries[c].candidate, val)
                                         for c in chosen))
        for cid, rollouts in zip(chosen, results, strict=True):
            entry = engine.state.entries[cid]
            engine.state.charge(entry.candidate.key, rollouts)
            entry.absorb(rollouts, "val")
        return chosen

    def _estimate(self) -> dict[str, int]:
        """Upper bounds of the calls planned (before caching and rejected children save some)."""
        c, engine = self.config, self.engine
        steps = c.generations * c.children_per_generation  # type: ignore[operator]
        per_step = 2 * (c.minibatch_size or 0) + len(engine.pareto_set)
        task = len(engine.pareto_set) + steps * per_step + engine.validation_reserve
        if c.max_rollouts is not None:
            task = min(task, c.max_rollouts)
        return {"task": task, "reflection": steps * c.mutation_attempts}


def _snapshot(cid: str, candidate: Candidate, score: float | None) -> dict[str, Any]:
    return {"id": cid, "candidate": candidate.to_dict(), "score": score}


async def _wait_for(future: asyncio.Future[Any], all_futures: list[asyncio.Future[Any]]) -> None:
    """Wait until `future` is done; a failure of any step in flight (an outage, a bug) surfaces at once."""
    while not future.done():
        done, _ = await asyncio.wait(all_futures, return_when=asyncio.FIRST_COMPLETED)
        for f in done:
            if not f.cancelled() and f.exception() is not None:
                raise f.exception()  # type: ignore[misc]
        all_futures = [f for f in all_futures if not f.done()]
    if future.exception() is not None:
        raise future.exception()  # type: ignore[misc]


async def _cancel(futures: list[asyncio.Future[Any]]) -> None:
    for f in futures:
        f.cancel()
    await asyncio.gather(*futures, return_exceptions=True)
