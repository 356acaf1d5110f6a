"""`optimize_mipro`: the thin async shell of the MIPRO engine. It bootstraps demos, proposes instructions, runs
the Optuna study in ask/tell batches through the run's Evaluator (cache + budget), gives the best combinations
full evaluations, validates the top ones and returns a SearchOutcome. Decisions live in `schedule`, Optuna in
`search`, prompts in `proposals`, demo sets in `demos`; this module only sequences them and emits events."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence

from ...dtypes import Usage
from ...errors import ConfigError
from ..budget import Budget, BudgetLedger
from ..evaluation import Evaluator, ProviderUnavailableError
from ..events import Reporter, RunFinished, RunStarted, RunWarning, StepFinished
from ..protocols import LanguageModel, Rollout, Task
from ..types import Candidate, CandidateRecord, GenerationStats, SearchOutcome
from . import schedule as sch
from .config import MIPROConfig
from .demos import build_demo_sets, collect_bootstrapped, labeled_pool
from .estimate import bootstrap_limit, bootstrap_target, estimate_calls
from .proposals import ProposalResult, propose_for_component, summarize_dataset
from .search import Study, combination_id
from .state import MiproState, TrialEntry, fingerprint

__all__ = ["optimize_mipro"]

METHOD = "mipro"
SAVE_EVERY_ROLLOUT_UP_TO = 5000
SAVE_INTERVAL = 2.0
PRICE_MARGIN = 1.25
Choice = Mapping[str, tuple[int, int]]


async def optimize_mipro(
    task: Task, proposer: LanguageModel, initial: Candidate, config: MIPROConfig, *, reporter: Reporter | None = None,
    bootstrap_task: Task | None = None, trial_log: dict[int, TrialEntry] | None = None,
) -> SearchOutcome:
    """Search (instruction, demo set) per component of `initial` with MIPROv2's recipe (README, "MIPRO").

    `bootstrap_task` (a Task over the same dataset, e.g. a teacher program, or one that scores runs the way
    demo bootstrapping should) runs the bootstrap rollouts instead of `task`, under the same budget; its
    rollouts are kept apart from the search's (they are not evaluations of the candidates). `trial_log`, when
    given, receives every trial by number (its combination, choice, minibatch scores and stats)."""
    run = _Run(task, proposer, initial, config, reporter, bootstrap_task)
    try:
        return await run.execute()
    finally:
        if trial_log is not None:
            trial_log.update(run.state.trials)


def _lost(rollout: Rollout) -> bool:
    """Unmeasured because the LLM call failed transiently (not cached: trying again may measure it)."""
    return rollout.error is not None and rollout.error.kind == "llm"


class _Run:
    def __init__(self, task: Task, proposer: LanguageModel, initial: Candidate, config: MIPROConfig,
                 reporter: Reporter | None, bootstrap_task: Task | None = None) -> None:
        self.components = tuple(task.components)
        missing = [c for c in self.components if c not in initial.instructions]
        if missing:
            raise ConfigError(f"the initial candidate has no instruction for component {missing[0]!r} "
                              f"(task components: {list(self.components)})")
        self.task, self.proposer, self.initial, self.config, self.reporter = task, proposer, initial, config, reporter
        self.train, self.val = list(config.train_seeds), list(config.val_seeds)
        self.fingerprint = fingerprint([config.fingerprint_fields(), initial.to_dict(), self.components])
        loaded = MiproState.load(config.storage, self.fingerprint)
        self.state = loaded or MiproState(self.fingerprint, {}, {})
        self.resumed = loaded is not None
        self.ledger = BudgetLedger(Budget(max_rollouts=config.max_rollouts, max_cost_usd=config.max_cost_usd),
                                   rollouts_used=self.state.rollouts_used, cost_usd=self.state.cost_usd)
        self.base_rollouts = self.state.rollouts_used
        self.evaluator = Evaluator(task, self.ledger, self.state.cache, on_rollout=self._on_rollout)
        # Bootstrap rollouts of a separate task share the ledger but not the search's cache.
        self.bootstrapper = self.evaluator if bootstrap_task is None else \
            Evaluator(bootstrap_task, self.ledger, {}, on_rollout=self._on_rollout)
        self.reserve = sch.validation_reserve(len(self.val), config.num_top_for_validation) if self.val else 0
        self.initial_id = combination_id({c: (0, 0) for c in self.components}, self.components)
        self.stop_reason = "num_trials"
        self.started = self.last_save = time.monotonic()
        self.committed = 0.0  # dollars of rollouts started under the dollar guard and not yet settled

    # ------------------------------------------------------------------ plumbing
    def _emit(self, event: object) -> None:
        if self.reporter is not None:
            self.reporter(event)  # type: ignore[arg-type]

    def _on_rollout(self, _candidate: Candidate, rollout: Rollout) -> None:
        self.state.tokens += rollout.usage.total_tokens
        # Every finished rollout is checkpointed, so a killed run loses only the rollouts in flight. Large
        # states are written at most every SAVE_INTERVAL seconds (rewriting megabytes per rollout costs more
        # than the rollouts it could save).
        now = time.monotonic()
        if len(self.state.cache) <= SAVE_EVERY_ROLLOUT_UP_TO or now - self.last_save >= SAVE_INTERVAL:
            self._save()

    def _price(self) -> float:
        """A cautious price of one rollout: the dearest seen so far, plus a margin (prompts with more demos
        cost more than the cheap zero-shot runs that dominate an average)."""
        return PRICE_MARGIN * max((r.usage.cost_usd or 0.0 for r in self.state.cache.values()), default=0.0)

    async def evaluate(self, candidate: Candidate, indices: Sequence[int]) -> dict[int, Rollout]:
        return await self._evaluate(candidate, indices)

    async def _evaluate(self, candidate: Candidate, indices: Sequence[int]) -> dict[int, Rollout]:
        """The Evaluator under a dollar guard: with `max_cost_usd`, only as many new rollouts start as the
        remaining dollars pay for at the cautious price, counting what other evaluations have committed."""
        limit, price = self.config.max_cost_usd, self._price()
        if limit is None or price <= 0:
            return await self.evaluator.evaluate(candidate, indices)
        cached = self.evaluator.cached(candidate, indices)
        todo = [i for i in indices if i not in cached]
        todo = todo[:max(0, int((limit - self.ledger.cost_usd - self.committed) // price))]
        allowed = set(todo) | set(cached)
        self.committed += len(todo) * price
        try:
            return await self.evaluator.evaluate(candidate, [i for i in indices if i in allowed])
        finally:
            self.committed -= len(todo) * price

    def _room(self) -> int | None:
        costs = [r.usage.cost_usd or 0.0 for r in self.state.cache.values()]
        return sch.room_for_search(
            max_rollouts=self.config.max_rollouts, rollouts_used=self.ledger.rollouts_used,
            max_cost_usd=self.config.max_cost_usd, cost_usd=self.ledger.cost_usd,
            avg_rollout_cost=sum(costs) / len(costs) if costs else 0.0, reserve=self.reserve)

    def _save(self) -> None:
        # Finished rollouts only: reservations still in flight are re-run (and re-counted) after a resume.
        extra = 0 if self.bootstrapper is self.evaluator else self.bootstrapper.rollouts_run
        self.state.rollouts_used = self.base_rollouts + self.evaluator.rollouts_run + extra
        self.state.cost_usd = self.ledger.cost_usd
        self.state.save(self.config.storage)
        self.last_save = time.monotonic()

    def _candidate(self, choice: Choice) -> Candidate:
        instructions, demos = dict(self.initial.instructions), dict(self.initial.demos)
        for c, (i, d) in choice.items():
            instructions[c] = self.state.instructions[c][i]
            demos[c] = tuple(self.state.demo_sets[c][d])
            if not demos[c]:
                del demos[c]  # no demos and an empty tuple are one candidate (same key, equal values)
        return Candidate(instructions, demos)

    def _scores(self, candidate: Candidate, indices: Sequence[int]) -> dict[int, float]:
        return {i: r.score for i, r in self.evaluator.cached(candidate, indices).items() if r.score is not None}

    def _stats(self, number: int, value: float | None, measured: int) -> GenerationStats:
        score = 0.0 if value is None else value
        return GenerationStats(number, score, score, measured, self.ledger.rollouts_used, self.state.tokens,
                               self.ledger.cost_usd, time.monotonic() - self.started)

    # ------------------------------------------------------------------ the run
    async def execute(self) -> SearchOutcome:
        cfg = self.config
        self._emit(RunStarted(METHOD, cfg.num_trials, cfg.max_rollouts,
                              estimate_calls(cfg, len(self.train), len(self.val), len(self.components))))
        overlap = sorted(set(self.train) & set(self.val))
        if overlap:
            self._emit(RunWarning(f"{len(overlap)} rows are in both train_seeds and val_seeds (e.g. {overlap[0]}): "
                                  "the validation score is optimistic"))
        if cfg.max_rollouts is not None and cfg.max_rollouts < self.reserve + min(cfg.minibatch_size, len(self.train)):
            self._emit(RunWarning(f"max_rollouts={cfg.max_rollouts} barely covers the validation reserve of "
                                  f"{self.reserve} rollouts: the search will be short or empty"))
        try:
            if self.state.stage == "setup":
                await self._setup()
            await self._search()
            return await self._finish()
        except BaseException:
            # An outage (ProviderUnavailableError), Ctrl-C or a bug: keep the paid work for a resume.
            self._save()
            raise

    async def _setup(self) -> None:
        cfg = self.config
        order = self.train[:]
        random.Random(f"mipro-order:{cfg.seed}").shuffle(order)
        found: list[Rollout] = []
        if cfg.max_bootstrapped_demos > 0:
            room = self._room()
            limit = bootstrap_limit(cfg, len(order)) if room is None else min(room, bootstrap_limit(cfg, len(order)))
            source = self if self.bootstrapper is self.evaluator else self.bootstrapper
            found = await collect_bootstrapped(source, self.initial, order, target=bootstrap_target(cfg),
                                               threshold=cfg.bootstrap_threshold, limit=limit,
                                               chunk=cfg.max_concurrent)
        pools: dict[str, list[Mapping]] = {}
        examples: list[Mapping] = []
        labeled_limit = max(cfg.max_labeled_demos * cfg.num_demo_sets, cfg.summary_examples, 4 * cfg.proposal_demos)
        for c in self.components:
            labeled = labeled_pool(self.task, order, c, labeled_limit)
            boot = [(r.sample_index, dict(r.demos[c])) for r in found if c in r.demos]
            self.state.demo_sets[c] = build_demo_sets(
                tuple(self.initial.demos.get(c, ())), labeled, boot, num_sets=cfg.num_demo_sets,
                max_labeled=cfg.max_labeled_demos, max_bootstrapped=cfg.max_bootstrapped_demos, seed=f"{cfg.seed}:{c}")
            pools[c] = [d for _, d in boot] + [d for _, d in labeled]
            examples = examples or [d for _, d in labeled[:cfg.summary_examples]]
        await self._propose(pools, examples)
        self.state.stage = "search"
        self._save()

    async def _propose(self, pools: Mapping[str, list[Mapping]], labeled_examples: list[Mapping]) -> None:
        cfg = self.config
        self.state.instructions = {c: [self.initial.instructions[c]] for c in self.components}
        if cfg.num_candidates == 1:
            return
        summary = await summarize_dataset(self.proposer, labeled_examples if cfg.data_aware else [])
        self._charge(summary.usage, summary.warnings)
        self.state.summary = summary.instructions[0]
        named = len(self.components) > 1 and cfg.program_aware
        results = await asyncio.gather(*(
            propose_for_component(self.proposer, current=self.initial.instructions[c], summary=self.state.summary,
                                  pool=pools[c], num_candidates=cfg.num_candidates,
                                  tips=cfg.tips if cfg.tip_aware else ("",),
                                  per_prompt=cfg.proposal_demos if cfg.fewshot_aware else 0, seed=cfg.seed,
                                  component=c if named else None)
            for c in self.components))
        self._check_outage([summary, *results])
        for c, result in zip(self.components, results, strict=True):
            self.state.instructions[c] = list(result.instructions)
            lost = len(result.warnings)
            note = (f"{lost} of {cfg.num_candidates - 1} proposals for {c!r} were lost (first: "
                    f"{result.warnings[0]}); {len(result.instructions) - 1} new instructions remain",) if lost else ()
            self._charge(result.usage, note)

    @staticmethod
    def _check_outage(results: Sequence[ProposalResult]) -> None:
        """Every proposer call failed on a transient provider error: the proposer is down, and a search that
        can propose nothing would only pretend to run. Garbage replies or a proposer bug are not an outage."""
        calls = sum(r.calls for r in results)
        errors = [e for r in results for e in r.errors]
        if calls and len(errors) == calls and any(getattr(e, "retryable", False) for e in errors):
            raise ProviderUnavailableError(len(errors), f"proposer: {errors[-1]}")

    def _charge(self, usage: Usage, warnings: Sequence[str]) -> None:
        self.ledger.charge(usage.cost_usd)
        self.state.tokens += usage.total_tokens
        for w in warnings:
            self._emit(RunWarning(w))

    # ------------------------------------------------------------------ search
    def _combos(self) -> tuple[list[str], dict[str, dict[int, float]], dict[str, Choice]]:
        """Combinations in order of first trial, their pooled minibatch scores, their choices."""
        order: list[str] = []
        scores: dict[str, dict[int, float]] = {}
        choices: dict[str, Choice] = {}
        for _, t in sorted(self.state.trials.items()):
            if t.combo not in choices:
                order.append(t.combo)
                choices[t.combo] = t.choice
            scores.setdefault(t.combo, {}).update(t.scores)
        return order, scores, choices

    def _full_means(self, choices: Mapping[str, Choice]) -> dict[str, float | None]:
        return {c: sch.mean(self._scores(self._candidate(choices[c]), self.train))
                for c in self.state.full_evaluated if c in choices}

    def _best_so_far(self) -> float | None:
        _, scores, choices = self._combos()
        full = [m for m in self._full_means(choices).values() if m is not None]
        if full:
            return max(full)
        means = [m for m in map(sch.mean, scores.values()) if m is not None]
        return max(means) if means else None

    async def _recover(self, study: Study) -> None:
        """Trials a crash left RUNNING are finished as the batch they belonged to: told from the saved state
        when their results were saved, else run now with their own number and parameters (same minibatch;
        their finished rollouts come from the saved cache), so the run continues exactly where it stopped."""
        orphans = [(n, c) for n, c in study.running() if n not in self.state.trials]
        for number, _ in study.running():
            if number in self.state.trials:
                study.tell(number, self.state.trials[number].value)
        if orphans:
            await self._finish_batch(study, orphans)
        if self.state.pending_full_eval:
            await self._full_eval()

    async def _trial(self, number: int, choice: Choice) -> TrialEntry:
        indices = sch.minibatch(self.train, self.config.minibatch_size, self.config.seed, number)
        candidate = self._candidate(choice)
        results = await self._evaluate(candidate, indices)
        missing = [i for i in indices if i not in results or _lost(results[i])]
        if missing and not self.ledger.exhausted:
            # Rollouts lost to a transient LLM failure are tried once more (a provider that is really down
            # then reaches the outage threshold and stops the run): a trial is recorded on its whole minibatch.
            results.update(await self._evaluate(candidate, missing))
        scores = {i: r.score for i, r in results.items() if r.score is not None}
        return TrialEntry(number, combination_id(choice, self.components), dict(choice), scores, sch.mean(scores),
                          self._stats(number, None, 0))

    async def _search(self) -> None:
        cfg = self.config
        sizes = {c: (len(self.state.instructions[c]), len(self.state.demo_sets[c])) for c in self.components}
        study = Study(sizes, cfg.seed, cfg.storage)
        await self._recover(study)
        per_batch = sch.trials_per_batch(cfg.max_concurrent, cfg.minibatch_size, len(self.train), cfg.trials_per_batch)
        per_trial = min(cfg.minibatch_size, len(self.train))
        while len(self.state.trials) < cfg.num_trials:
            room = self._room()
            n = min(per_batch, cfg.num_trials - len(self.state.trials))
            if room is not None:
                n = min(n, room // per_trial)
            if n < 1:
                self.stop_reason = "budget"
                self._emit(RunWarning(f"budget reached after {len(self.state.trials)} trials; the rest of the "
                                      "budget is kept for the final validation"))
                break
            await self._finish_batch(study, study.ask(n))

    async def _finish_batch(self, study: Study, asked: Sequence[tuple[int, Choice]]) -> None:
        """Run a batch of asked trials concurrently, save, tell Optuna in trial-number order, report, and give
        the full evaluation the batch may owe."""
        cfg = self.config
        done_before = len(self.state.trials)
        entries = await asyncio.gather(*(self._trial(number, choice) for number, choice in asked))
        for e in entries:
            # Stats after the whole batch: the numbers do not depend on which trial finished first.
            e.stats = self._stats(e.number, e.value, len(e.scores))
            self.state.trials[e.number] = e
        self.state.pending_full_eval = sch.full_eval_due(done_before, len(self.state.trials), cfg.full_eval_every,
                                                         cfg.num_trials)
        self._save()  # before telling Optuna: a crash in between is recovered from the saved trials
        for e in sorted(entries, key=lambda e: e.number):
            study.tell(e.number, e.value)
        best = self._best_so_far()
        for e in sorted(entries, key=lambda e: e.number):
            self._emit(StepFinished(METHOD, e.stats, best))
        if self.state.pending_full_eval:
            await self._full_eval()

    async def _full_eval(self) -> None:
        order, scores, choices = self._combos()
        combo = sch.pick_for_full_eval(scores, order, set(self.state.full_evaluated))
        if combo is not None:
            candidate = self._candidate(choices[combo])
            need = len(self.train) - len(self.evaluator.cached(candidate, self.train))
            room = self._room()
            if room is None or need <= room:
                await self._evaluate(candidate, self.train)
                self.state.full_evaluated.append(combo)
        self.state.pending_full_eval = False
        self._save()

    # ------------------------------------------------------------------ result
    async def _finish(self) -> SearchOutcome:
        order, scores, choices = self._combos()
        if self.initial_id not in choices:
            order.append(self.initial_id)
            choices[self.initial_id] = {c: (0, 0) for c in self.components}
        ranked = sch.rank_combinations({c: sch.mean(s) for c, s in scores.items()}, self._full_means(choices), order)
        ranked = ranked or [self.initial_id]
        if self.val:
            chosen = sch.validation_choices(ranked, self.initial_id, self.config.num_top_for_validation)
            await asyncio.gather(*(self._evaluate(self._candidate(choices[c]), self.val) for c in chosen))
            val_means = {c: sch.mean(self._scores(self._candidate(choices[c]), self.val)) for c in chosen}
            best = sch.choose_best(val_means, chosen)
        else:
            best = ranked[0]
        self._save()
        first_trial = {c: min((n for n, t in self.state.trials.items() if t.combo == c), default=0) for c in order}
        records = tuple(self._record(c, choices[c], first_trial[c]) for c in order)
        history = tuple(t.stats for _, t in sorted(self.state.trials.items()))
        outcome = SearchOutcome(records, history, best, self.stop_reason, self.ledger.rollouts_used,
                                self.ledger.cost_usd)
        chosen_record = outcome.record(best)
        score = chosen_record.val_mean if chosen_record.val_mean is not None else chosen_record.train_mean
        self._emit(RunFinished(METHOD, score, self.stop_reason, self.ledger.rollouts_used))
        return outcome

    def _record(self, combo: str, choice: Choice, generation: int) -> CandidateRecord:
        candidate = self._candidate(choice)
        cached = self.evaluator.cached(candidate, [*self.train, *self.val])
        failures = sum(1 for r in cached.values() if r.score is None)
        return CandidateRecord(
            id=combo, candidate=candidate, generation=generation,
            origin="initial" if combo == self.initial_id else "mipro",
            train_scores=self._scores(candidate, self.train), val_scores=self._scores(candidate, self.val),
            failures=failures,
        )
