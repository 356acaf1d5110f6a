"""The MIPRO engine: ask/tell over one MiproState. It decides, the runner (a thin async shell) runs.

Phases: bootstrap (the starting point -- or a teacher task -- on shuffled training rows until enough runs succeeded),
proposals (instruction candidates per component), search (Optuna trials on minibatches, full evaluations of the
best-looking combinations), validation (the top combinations and the starting point on `val_seeds`).

Every decision is a function of what the engine was *told*, in the order it was told, never of when work finished:
budget planning counts the (candidate, sample) pairs the engine asked for and the price of told rollouts, not the
physical ledger, so a run replayed against its journal (a resume) decides exactly as the run it continues.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from ...runtime import Budget, PriceBook, Spend, room
from ...runtime.ledger import ROLLOUT
from ..protocols import Rollout
from ..types import Candidate, CandidateRecord, GenerationStats, SearchOutcome, mean_of
from . import schedule as sch
from .config import MIPROConfig
from .demos import PoolDemo, bootstrap_limit, bootstrap_target, build_demo_sets, succeeded
from .proposals import ProposalContext, render_failure, summary_messages
from .search import Choice, Study, combination_id
from .settings import validation_reserve
from .state import FullEvaluation, MiproState, Pair, TrialEntry

__all__ = ["TEACHER", "MiproEngine"]

TEACHER = "teacher:"
"""Key prefix of a teacher task's rollouts: they are another program's runs, never the starting point's scores."""


class MiproEngine:
    """See the module doc. `teacher`: bootstrapping runs on another task (its rollouts are kept apart)."""

    def __init__(self, config: MIPROConfig, components: Sequence[str], initial: Candidate, *,
                 teacher: bool = False) -> None:
        self.config, self.components, self.initial = config, tuple(components), initial
        self.state = MiproState(self.components)
        self.train, self.val = list(config.train_seeds), list(config.val_seeds)
        self.budget = Budget(max_rollouts=config.max_rollouts, max_cost_usd=config.max_cost_usd)
        self.reserve = validation_reserve(len(self.val), config.num_top_for_validation) if self.val else 0
        self.per_trial = min(config.minibatch_size, len(self.train))
        self.initial_id = combination_id({c: (0, 0) for c in self.components}, self.components)
        self.bootstrap_key = (TEACHER if teacher else "") + initial.key
        self.spend = Spend()  # what told work cost (deterministic: counted in the order it was told)
        self.prices = PriceBook()
        self.study: Study | None = None
        self._planned: set[Pair] = set()
        self._told: set[Pair] = set()
        self._unmeasured: set[Pair] = set()
        self._lost = 0  # extra rollouts paid for pairs whose first call failed (retried)
        self.order = self.train[:]
        random.Random(f"mipro-order:{config.seed}").shuffle(self.order)
        self._bootstrap_limit = 0
        self._tried = 0
        self._found: list[Rollout] = []
        self._shortfalls: list[Rollout] = []
        self._stopped = False

    # -- budget --------------------------------------------------------------------------------------------------
    def room(self, reserve: int | None = None) -> int | None:
        """New rollouts that may still be planned, keeping `reserve` (default: the validation reserve)."""
        price = self.prices.estimate(ROLLOUT)
        untold = len(self._planned) - len(self._told)
        return room(self.budget, rollouts_used=len(self._planned) + self._lost, cost_usd=self.spend.cost_usd,
                    pending_usd=untold * (price or 0.0), reserve=self.reserve if reserve is None else reserve,
                    price=price)

    def _fits(self, n: int, reserve: int | None = None) -> bool:
        left = self.room(reserve)
        return left is None or n <= left

    def plan(self, key: str, indices: Sequence[int]) -> int:
        """Count the pairs of `key` x `indices` as asked for; how many were new."""
        new = [(key, i) for i in indices if (key, i) not in self._planned]
        self._planned.update(new)
        return len(new)

    def new_pairs(self, key: str, indices: Sequence[int]) -> int:
        return sum(1 for i in indices if (key, i) not in self._planned)

    def tell_rollouts(self, key: str, rollouts: Mapping[int, Rollout], lost: int = 0) -> dict[int, float]:
        """Record what `key` scored; each pair's usage is counted once. Returns the measured scores."""
        scores = self.state.scores.setdefault(key, {})
        for i in sorted(rollouts):
            r = rollouts[i]
            if (key, i) not in self._told:
                self._planned.add((key, i))
                self._told.add((key, i))
                self.spend.add(r.usage, rollouts=1)
                self.prices.observe(ROLLOUT, r.usage.cost_usd)
            if r.score is not None:
                scores[i] = r.score
                self._unmeasured.discard((key, i))
            elif i not in scores:
                self._unmeasured.add((key, i))
        self._lost += lost
        return {i: r.score for i, r in rollouts.items() if r.score is not None}

    def tell_answer(self, usage: Any) -> None:
        """A proposer answer's usage (counted once per request by the caller)."""
        self.spend.add(usage)

    # -- bootstrap -----------------------------------------------------------------------------------------------
    @property
    def bootstrap_wanted(self) -> int:
        return bootstrap_target(self.config.max_bootstrapped_demos, self.config.num_demo_sets)

    def start_bootstrap(self) -> int:
        """How many training rows bootstrapping may run: its own cap, within what the budget leaves after the
        validation reserve and two trials (the starting point's and one searched)."""
        cfg = self.config
        limit = bootstrap_limit(cfg.max_bootstrapped_demos, cfg.num_demo_sets, len(self.train),
                                cfg.max_bootstrap_rollouts)
        left = self.room(self.reserve + 2 * self.per_trial)
        self._bootstrap_limit = limit if left is None else min(limit, left)
        return self._bootstrap_limit

    def ask_bootstrap(self) -> list[int]:
        """The next rows to run (empty: bootstrapping is done). A chunk fills the concurrency limit once."""
        if len(self._found) >= self.bootstrap_wanted or self._tried >= self._bootstrap_limit:
            return []
        chunk = self.order[self._tried:min(self._tried + self.config.max_concurrent, self._bootstrap_limit)]
        self._tried += len(chunk)
        self.plan(self.bootstrap_key, chunk)
        return chunk

    def tell_bootstrap(self, chunk: Sequence[int], rollouts: Mapping[int, Rollout], lost: int = 0) -> None:
        self.tell_rollouts(self.bootstrap_key, rollouts, lost)
        threshold = self.config.bootstrap_threshold
        for i in chunk:
            r = rollouts.get(i)
            if r is not None and succeeded(r, threshold):
                self._found.append(r)
            elif r is not None and r.score is not None:
                self._shortfalls.append(r)
        if len(rollouts) < len(chunk):
            self._bootstrap_limit = self._tried  # the budget granted no more

    # -- demo sets and proposals ---------------------------------------------------------------------------------
    def labeled_limit(self) -> int:
        cfg = self.config
        return max(cfg.max_labeled_demos * cfg.num_demo_sets, cfg.summary_examples, 4 * cfg.proposal_demos)

    def summary_request(self, labeled: Sequence[Mapping[str, Any]]) -> list[Any] | None:
        """The dataset-summary request, or None when no summary is wanted (or nothing to summarize)."""
        if not self.config.data_aware or self.config.num_candidates == 1 or not labeled:
            return None
        return summary_messages(list(labeled[:self.config.summary_examples]))

    def tell_summary(self, text: str | None) -> None:
        self.state.summary = (text or "").replace("```", "").strip()[:2000]

    def make_demo_sets(self, labeled: Mapping[str, Sequence[PoolDemo]]) -> None:
        cfg = self.config
        found = self._found[:self.bootstrap_wanted]
        for c in self.components:
            boot = [(r.sample_index, dict(r.demos[c])) for r in found if c in r.demos]
            self.state.demo_sets[c] = build_demo_sets(
                tuple(self.initial.demos.get(c, ())), list(labeled.get(c, ())), boot, num_sets=cfg.num_demo_sets,
                max_labeled=cfg.max_labeled_demos, max_bootstrapped=cfg.max_bootstrapped_demos,
                seed=f"{cfg.seed}:{c}")
            self.state.instructions[c] = [self.initial.instructions[c]]

    def proposal_contexts(self, labeled: Mapping[str, Sequence[PoolDemo]]) -> dict[str, ProposalContext]:
        """What each component's proposal requests show (see ProposalContext), per the `*_aware` flags."""
        cfg = self.config
        found = self._found[:self.bootstrap_wanted]
        failures = tuple(render_failure(r) for r in self._shortfalls) if cfg.proposal_failures else ()
        out = {}
        for c in self.components:
            pool = [dict(r.demos[c]) for r in found if c in r.demos] + [d for _, d in labeled.get(c, ())]
            out[c] = ProposalContext(
                component=c if len(self.components) > 1 and cfg.program_aware else None,
                current=self.initial.instructions[c],
                summary=self.state.summary if cfg.data_aware else "",
                program=self._program(c) if cfg.program_aware else "",
                pool=tuple(pool) if cfg.fewshot_aware else (), failures=failures)
        return out

    def _program(self, component: str) -> str:
        inputs = sorted({k for r in (*self._found, *self._shortfalls) for k in r.inputs})
        text = f"the model reads the input field(s) {', '.join(inputs)}." if inputs else ""
        if len(self.components) > 1:
            others = "; ".join(f"`{c}`: {self.initial.instructions[c].strip()[:300]}"
                               for c in self.components if c != component)
            text = (f"It runs the steps {', '.join(self.components)} in order; {text} "
                    f"The other steps' current instructions: {others}").strip()
        return text

    def tell_proposals(self, component: str, instructions: Sequence[str]) -> None:
        self.state.instructions[component] = list(instructions)

    def prefetch(self) -> tuple[Candidate, tuple[int, ...]] | None:
        """The starting point's first trial, known before the proposals come back: run it meanwhile."""
        indices = sch.minibatch(self.train, self.config.minibatch_size, self.config.seed, 0)
        if not self._fits(self.new_pairs(self.initial.key, indices)):
            return None
        self.plan(self.initial.key, indices)
        return self.initial, indices

    # -- search --------------------------------------------------------------------------------------------------
    def start_search(self) -> None:
        sizes = {c: (len(self.state.instructions[c]), len(self.state.demo_sets[c])) for c in self.components}
        self.study = Study(sizes, self.config.seed, self.config.storage)

    def candidate(self, choice: Choice) -> Candidate:
        instructions, demos = dict(self.initial.instructions), dict(self.initial.demos)
        for c, (i, d) in choice.items():
            instructions[c] = self.state.instructions[c][i]
            demos[c] = tuple(self.state.demo_sets[c][d])
            if not demos[c]:
                del demos[c]  # no demos and an empty tuple are one candidate (same key, equal values)
        return Candidate(instructions, demos)

    def ask_trial(self) -> tuple[TrialEntry, Candidate] | None:
        """The next trial, or None: all `num_trials` asked, or the budget cannot pay for another minibatch."""
        assert self.study is not None
        n = len(self.state.trials)
        if self._stopped or n >= self.config.num_trials:
            return None
        if not self._fits(self.per_trial):
            self._stopped = True
            self.state.stop_reason = "budget"
            return None
        choice = self.study.ask(n)
        combo = combination_id(choice, self.components)
        candidate = self.candidate(choice)
        indices = sch.minibatch(self.train, self.config.minibatch_size, self.config.seed, n)
        self.plan(candidate.key, indices)
        entry = TrialEntry(n, combo, dict(choice), indices)
        self.state.trials[n] = entry
        self.state.choices.setdefault(combo, dict(choice))
        return entry, candidate

    def tell_trial(self, number: int, rollouts: Mapping[int, Rollout], lost: int, elapsed: float) -> TrialEntry:
        assert self.study is not None
        entry = self.state.trials[number]
        scores = self.tell_rollouts(self.candidate(entry.choice).key, rollouts, lost)
        entry.scores = {i: scores[i] for i in entry.indices if i in scores}
        entry.value = mean_of(entry.scores)
        entry.told = True
        self.study.tell(number, entry.value)
        if entry.value is not None and (self.state.best_shown is None or entry.value > self.state.best_shown):
            self.state.best_shown = entry.value
        shown = 0.0 if entry.value is None else entry.value
        entry.stats = GenerationStats(number, shown, shown, len(entry.scores), self.spend.rollouts,
                                      self.spend.tokens, self.spend.cost, elapsed)
        return entry

    def ask_full_evaluation(self, after_trial: int, *, final: bool = False
                            ) -> tuple[FullEvaluation, Candidate, int] | None:
        """The full evaluation due after trial `after_trial` (every `full_eval_every` trials, the last one, or
        `final`: the search stopped early): the best-looking combination not yet fully evaluated, if the budget
        pays for it, and how many of its rollouts are new. Told to the engine before trial
        `after_trial + full_eval_every` (at the end of the search when that trial will not run)."""
        cfg = self.config
        if not final and not sch.full_eval_due(after_trial, cfg.full_eval_every, cfg.num_trials):
            return None
        combo = sch.pick_for_full_eval(self._pooled(), list(self.state.choices), set(self.state.full))
        if combo is None:
            return None
        candidate = self.candidate(self.state.choices[combo])
        new = self.new_pairs(candidate.key, self.train)
        if not self._fits(new):
            return None
        self.plan(candidate.key, self.train)
        later = after_trial + cfg.full_eval_every
        entry = FullEvaluation(combo, after_trial, None if final or later >= cfg.num_trials else later)
        self.state.full[combo] = entry
        return entry, candidate, new

    def tell_full_evaluation(self, combo: str, rollouts: Mapping[int, Rollout], lost: int) -> float | None:
        assert self.study is not None
        choice = self.state.choices[combo]
        key = self.candidate(choice).key
        self.tell_rollouts(key, rollouts, lost)
        self.state.full[combo].told = True
        value = self._train_mean(key)
        if value is not None:
            self.study.add_full_evaluation(choice, value)
        return value

    def _pooled(self) -> dict[str, dict[int, float]]:
        """Each combination's minibatch scores, pooled over its told trials."""
        pooled: dict[str, dict[int, float]] = {}
        for _, t in sorted(self.state.trials.items()):
            if t.told:
                pooled.setdefault(t.combo, {}).update(t.scores)
        return pooled

    def _mean_on(self, key: str, indices: Sequence[int]) -> float | None:
        scores = self.state.scores.get(key, {})
        return mean_of({i: scores[i] for i in indices if i in scores})

    def _train_mean(self, key: str) -> float | None:
        return self._mean_on(key, self.train)

    def ranked(self) -> list[str]:
        """Combinations best first: fully evaluated ones by their full mean, then the rest by minibatch mean."""
        full = {c: self._train_mean(self.candidate(self.state.choices[c]).key)
                for c, f in self.state.full.items() if f.told}
        pooled = {c: mean_of(s) for c, s in self._pooled().items()}
        return sch.rank_combinations(pooled, full, list(self.state.choices))

    def best_marker(self, *, final: bool = False) -> dict[str, Any] | None:
        """The engine's best so far (`final`: its choice), as the journal's step markers keep it for
        rollouts_dspy.partial: id, candidate, score and what the score was measured on."""
        ranked = self.ranked()
        combo = self.best() if final else (ranked[0] if ranked else None)
        if combo is None:
            return None
        candidate = self.candidate(self.state.choices[combo])
        if combo in self.state.validated:
            score, on = self._mean_on(candidate.key, self.val), "val"
        elif combo in self.state.full and self.state.full[combo].told:
            score, on = self._mean_on(candidate.key, self.train), "train"
        else:
            score, on = mean_of(self._pooled().get(combo, {})), "minibatch"
        first = min((n for n, t in self.state.trials.items() if t.combo == combo), default=0)
        return {"id": combo, "candidate": candidate.to_dict(), "score": score, "scored_on": on, "generation": first}

    # -- validation and the result -------------------------------------------------------------------------------
    def validation_plan(self) -> list[tuple[str, Candidate]]:
        """The combinations to validate (the top ones and the starting point), already counted as planned."""
        self.state.choices.setdefault(self.initial_id, {c: (0, 0) for c in self.components})
        if not self.val:
            return []
        chosen = sch.validation_choices(self.ranked() or [self.initial_id], self.initial_id,
                                        self.config.num_top_for_validation)
        self.state.validated = chosen
        plan = [(c, self.candidate(self.state.choices[c])) for c in chosen]
        for _, candidate in plan:
            self.plan(candidate.key, self.val)
        return plan

    def best(self) -> str:
        if self.state.validated:
            val_means = {c: self._mean_on(self.candidate(self.state.choices[c]).key, self.val)
                         for c in self.state.validated}
            return sch.choose_best(val_means, self.state.validated)
        return (self.ranked() or [self.initial_id])[0]

    def outcome(self, *, rollouts_used: int, cost_usd: float | None, usage: Mapping[str, Any]) -> SearchOutcome:
        records = []
        failures: dict[str, int] = {}
        for key, _ in self._unmeasured:
            failures[key] = failures.get(key, 0) + 1
        self.state.failures = dict(sorted(failures.items()))
        for combo, choice in self.state.choices.items():
            candidate = self.candidate(choice)
            scores = self.state.scores.get(candidate.key, {})
            first = min((n for n, t in self.state.trials.items() if t.combo == combo), default=0)
            records.append(CandidateRecord(
                id=combo, candidate=candidate, generation=first,
                origin="initial" if combo == self.initial_id else "mipro",
                train_scores={i: scores[i] for i in self.train if i in scores},
                val_scores={i: scores[i] for i in self.val if i in scores},
                failures=self.state.failures.get(candidate.key, 0)))
        records.sort(key=lambda r: r.origin != "initial")  # the starting point first
        history = tuple(t.stats for _, t in sorted(self.state.trials.items()) if t.stats is not None)
        return SearchOutcome(tuple(records), history, self.best(), self.state.stop_reason, rollouts_used, cost_usd,
                             usage)
