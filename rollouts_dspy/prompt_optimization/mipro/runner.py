"""`optimize_mipro`: the thin async shell of the MIPRO engine. It opens the run's runtime (budget, concurrency,
journal, outage watch), runs what the engine asks for and tells it the results, and emits events. Decisions live
in `engine`; nothing here chooses anything.

Work stays in flight while the engine waits: the dataset summary runs during bootstrapping, the starting point's
first trial during the proposals, `trials_in_flight` trials at once during the search (trial t is asked when trial
t - trials_in_flight was told; trials are told in number order) and full evaluations in the background (told at a
fixed later trial). Every ask and tell happens at a point fixed by the trial numbers, never by which call finished
first, so the same answers give the same result in any order of completion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from ...errors import ConfigError
from ...runtime import Budget, Evaluator, ProviderUnavailableError, RunContext, Runtime, gather_all
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
from ..protocols import LanguageModel, Rollout, Task
from ..types import Candidate, SearchOutcome
from . import schedule as sch
from .config import MIPROConfig
from .demos import labeled_pool
from .engine import TEACHER, MiproEngine
from .estimate import estimate_calls
from .proposals import Reply, ask_all, ask_one, collect_proposals, proposal_requests
from .state import TrialEntry

__all__ = ["METHOD", "optimize_mipro"]

METHOD = "mipro"
Results = tuple[dict[int, Rollout], int]
"""The rollouts of one evaluation and how many of its calls were lost (and retried)."""


async def optimize_mipro(task: Task, proposer: LanguageModel, initial: Candidate, config: MIPROConfig, *,
                         reporter: Reporter | None = None, context: RunContext | None = None,
                         bootstrap_task: Task | None = None,
                         trial_log: dict[int, TrialEntry] | None = None) -> SearchOutcome:
    """Search (instruction, demo set) per component of `initial` with MIPROv2's recipe (docs/mipro.md).

    `context` comes from a front door (what identifies the run's world, how to resume); `bootstrap_task` runs the
    bootstrapping instead of `task` (e.g. a teacher program over the same dataset; its rollouts are kept apart
    from the candidates' scores); `trial_log`, when given, receives every trial by number (its combination,
    choice, minibatch scores and stats), also when the run stops early."""
    if not isinstance(config, MIPROConfig):
        raise ConfigError(f"config must be a MIPROConfig, but got {type(config).__name__}")
    components = tuple(task.components)
    missing = [c for c in components if c not in initial.instructions]
    if missing:
        raise ConfigError(f"the initial candidate has no instruction for component {missing[0]!r} "
                          f"(task components: {list(components)})")
    if config.study is not None:  # one worker of a shared study (docs/cluster.md, MIPRO across workers)
        from .workers import optimize_shared

        return await optimize_shared(task, proposer, initial, config, reporter=reporter, context=context,
                                     bootstrap_task=bootstrap_task, trial_log=trial_log)
    runtime = Runtime.open(
        method=METHOD, budget=Budget(max_rollouts=config.max_rollouts, max_cost_usd=config.max_cost_usd),
        max_concurrent=config.max_concurrent, checkpoint_dir=config.checkpoint_dir,
        fingerprint={"config": config.fingerprint_fields(), "initial": initial.to_dict(),
                     "components": list(components), "teacher": bootstrap_task is not None},
        context=context)
    shell = _Shell(task, proposer, initial, config, runtime, reporter, bootstrap_task)
    try:
        return await shell.run()
    finally:
        runtime.close()
        if trial_log is not None:
            trial_log.update(shell.engine.state.trials)


def _lost(rollout: Rollout) -> bool:
    """Unmeasured because the LLM call failed (not cached: trying again may measure it)."""
    return rollout.error is not None and rollout.error.kind == "llm"


class _Shell:
    def __init__(self, task: Task, proposer: LanguageModel, initial: Candidate, config: MIPROConfig,
                 runtime: Runtime, reporter: Reporter | None, teacher: Task | None) -> None:
        self.task, self.config, self.runtime, self.reporter = task, config, runtime, reporter
        self.engine = MiproEngine(config, task.components, initial, teacher=teacher is not None)
        self.evaluator = runtime.evaluator(task, on_rollout=self._on_rollout)
        self.bootstrapper = self.evaluator if teacher is None else runtime.evaluator(
            teacher, on_rollout=self._on_rollout, namespace=TEACHER)
        self.proposer = runtime.model(proposer, "proposer")
        self._background: set[asyncio.Future[Any]] = set()
        self._unreported = 0

    # -- plumbing ------------------------------------------------------------------------------------------------
    def _emit(self, event: Any) -> None:
        if self.reporter is not None:
            self.reporter(event)

    def _on_rollout(self, _candidate: Candidate, _rollout: Rollout) -> None:
        self._unreported += 1
        if self._unreported >= self.config.max_concurrent:  # live counters during long phases
            self._budget_update()

    def _budget_update(self) -> None:
        self._unreported = 0
        tokens = sum(u.prompt_tokens + u.completion_tokens for u in self.runtime.meter.roles.values())
        self._emit(BudgetUpdated(self.runtime.rollouts_used, self.config.max_rollouts, self.runtime.cost(), tokens))

    def _phase(self, name: str, planned: int | None) -> None:
        self._emit(PhaseStarted(METHOD, name, planned))

    def _launch(self, work: Awaitable[Any]) -> asyncio.Future[Any]:
        future = asyncio.ensure_future(work)
        self._background.add(future)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, future: asyncio.Future[Any]) -> None:
        self._background.discard(future)
        if not future.cancelled():
            # Seen here so a failure nobody awaits any more (the run already stopped) is not logged as lost; the
            # runner awaits every future whose result it needs and meets the error there.
            future.exception()

    async def _evaluate(self, evaluator: Evaluator, candidate: Candidate, indices: Sequence[int]) -> Results:
        """Rollouts of `candidate` on `indices`; ones lost to a failed LLM call are tried once more (a provider
        that is really down then reaches the outage threshold and stops the run)."""
        results = await evaluator.evaluate(candidate, indices)
        lost = [i for i, r in results.items() if _lost(r)]
        if lost and not self.runtime.ledger.exhausted:
            results.update(await evaluator.evaluate(candidate, lost))
        return results, len(lost)

    # -- the run -------------------------------------------------------------------------------------------------
    async def run(self) -> SearchOutcome:
        cfg, engine = self.config, self.engine
        self._emit(RunStarted(METHOD, cfg.num_trials, cfg.max_rollouts,
                              estimate_calls(cfg, len(engine.train), len(engine.val), len(engine.components))))
        overlap = sorted(set(engine.train) & set(engine.val))
        if overlap:
            self._emit(RunWarning(f"{len(overlap)} rows are in both train_seeds and val_seeds (e.g. {overlap[0]}): "
                                  "the validation score is optimistic"))
        try:
            await self._setup()
            await self._search()
            await self._validate()
        finally:
            await self._stop_background()
        self._budget_update()
        self.runtime.step(len(engine.state.trials), best=engine.best_marker(final=True))
        outcome = engine.outcome(rollouts_used=self.runtime.rollouts_used, cost_usd=self.runtime.cost(),
                                 usage=self.runtime.usage())
        self._emit(RunFinished(METHOD, outcome.record(outcome.best_id).score, outcome.stop_reason,
                               outcome.rollouts_used))
        return outcome

    async def _stop_background(self) -> None:
        """Cancel and await what is still running (after an error or Ctrl-C): no call keeps spending, and no
        rollout lands in the journal after it was closed."""
        pending = list(self._background)
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- setup: bootstrap, demo sets, proposals ------------------------------------------------------------------
    async def _setup(self) -> None:
        engine = self.engine
        labeled = {c: labeled_pool(self.task, engine.order, c, engine.labeled_limit()) for c in engine.components}
        first = [d for _, d in labeled[engine.components[0]]]
        request = engine.summary_request(first)
        summary = self._launch(ask_one(self.proposer, request)) if request is not None else None
        limit = engine.start_bootstrap()
        self._phase("bootstrap", limit)
        if limit == 0 and self.config.max_bootstrapped_demos > 0:
            self._emit(RunWarning("the budget leaves no rollouts for bootstrapping demos; demo sets use labeled "
                                  "examples only"))
        while chunk := engine.ask_bootstrap():
            results, lost = await self._evaluate(self.bootstrapper, self.engine.initial, chunk)
            engine.tell_bootstrap(chunk, results, lost)
        replies: list[Reply] = []
        if summary is not None:
            reply = await summary
            replies.append(reply)
            engine.tell_summary(reply.text)
            engine.tell_answer(reply.usage)
            if reply.text is None and not reply.budget:
                self._emit(RunWarning(f"dataset summary failed ({reply.error}); proposing without it"))
        engine.make_demo_sets(labeled)
        await self._propose(labeled, replies)

    async def _propose(self, labeled: Mapping[str, Any], replies: list[Reply]) -> None:
        cfg, engine = self.config, self.engine
        contexts = engine.proposal_contexts(labeled)
        requests = {c: proposal_requests(ctx, num_candidates=cfg.num_candidates, tips=cfg.tips if cfg.tip_aware
                                         else (), per_prompt=cfg.proposal_demos,
                                         failures_per_prompt=cfg.proposal_failures, seed=cfg.seed)
                    for c, ctx in contexts.items()}
        prefetch = engine.prefetch()
        self._phase("proposals", None if prefetch is None else len(prefetch[1]))
        if prefetch is not None:
            self._launch(self._evaluate(self.evaluator, *prefetch))  # trial 0 will be served from it
        answers = await ask_all(self.proposer, [m for c in engine.components for m in requests[c]])
        start = 0
        for c in engine.components:
            mine = answers[start:start + len(requests[c])]
            start += len(mine)
            result = collect_proposals(contexts[c].current, mine)
            engine.tell_proposals(c, result.instructions)
            for reason in result.dropped:
                self._emit(CandidateDropped(METHOD, 0, (f"{c}: {reason}" if len(engine.components) > 1 else reason,)))
        for reply in answers:
            engine.tell_answer(reply.usage)
        self._check_proposer([*replies, *answers])

    def _check_proposer(self, replies: Sequence[Reply]) -> None:
        """Every proposer request failed because the provider could not answer: the proposer is down, and a
        search that can propose nothing would only pretend to run. (Garbage replies, a broken proposer or a spent
        budget are not an outage; which failures are the provider's is the runtime's `counts_as_outage`.)"""
        failed = [r for r in replies if r.text is None and not r.budget]
        if replies and len(failed) == len(replies) and all(r.provider for r in failed):
            raise ProviderUnavailableError(len(failed), failed[-1].error, role="proposer", kind=failed[-1].kind,
                                           resume_hint=self.runtime.outage.resume_hint)

    # -- search --------------------------------------------------------------------------------------------------
    async def _search(self) -> None:
        cfg, engine = self.config, self.engine
        engine.start_search()
        width = sch.trials_in_flight(cfg.max_concurrent, cfg.minibatch_size, len(engine.train), cfg.trials_per_batch)
        self._phase("search", engine.room())
        running: dict[int, asyncio.Future[Results]] = {}
        full: dict[str, asyncio.Future[Results]] = {}
        self._ask_trials(running, width)
        n = 0
        while n in running:
            await self._tell_full(full, before=n)
            results, lost = await running.pop(n)
            self._step(engine.tell_trial(n, results, lost, self.runtime.meter.elapsed))
            self._ask_full(full, n)
            self._ask_trials(running, width)
            n += 1
        if n and engine.state.stop_reason == "budget":
            self._ask_full(full, n - 1, final=True)
        await self._tell_full(full, before=None)

    def _ask_trials(self, running: dict[int, asyncio.Future[Results]], width: int) -> None:
        while len(running) < width and (asked := self.engine.ask_trial()) is not None:
            entry, candidate = asked
            running[entry.number] = self._launch(self._evaluate(self.evaluator, candidate, entry.indices))

    def _ask_full(self, full: dict[str, asyncio.Future[Results]], after: int, *, final: bool = False) -> None:
        asked = self.engine.ask_full_evaluation(after, final=final)
        if asked is not None:
            entry, candidate, new = asked
            self._phase("full evaluation", new)
            full[entry.combo] = self._launch(self._evaluate(self.evaluator, candidate, self.engine.train))

    async def _tell_full(self, full: dict[str, asyncio.Future[Results]], *, before: int | None) -> None:
        """Tell the full evaluations due before trial `before` (all of them when None), in launch order."""
        for combo in list(full):
            due = self.engine.state.full[combo].tell_before
            if before is None or (due is not None and due <= before):
                results, lost = await full.pop(combo)
                self.engine.tell_full_evaluation(combo, results, lost)

    def _step(self, entry: TrialEntry) -> None:
        assert entry.stats is not None
        self.runtime.step(entry.number + 1, best=self.engine.best_marker())  # journaled before anyone hears of it
        self._emit(StepFinished(METHOD, entry.stats, self.engine.state.best_shown))
        self._budget_update()

    # -- validation ----------------------------------------------------------------------------------------------
    async def _validate(self) -> None:
        plan = self.engine.validation_plan()
        if not plan:
            return
        self._phase("validation", len(plan) * len(self.engine.val))
        done = await gather_all(self._evaluate(self.evaluator, candidate, self.engine.val) for _, candidate in plan)
        for (_, candidate), (results, lost) in zip(plan, done, strict=True):
            self.engine.tell_rollouts(candidate.key, results, lost)
