"""The thin async shell: `optimize_gepa` carries out the engine's plans with an Evaluator (cache + budget) and the
reflection LanguageModel, one generation at a time, every call of a generation in flight together.

Phases of a generation: make every child (merges and reflective mutations, concurrently), evaluate every new child
on the gating minibatch (concurrently), then fully evaluate the ones that improved (concurrently). Each phase
launches its evaluations in slot order, so budget reservations -- and therefore results -- never depend on which
call happens to finish first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...dtypes import Usage
from ...errors import ConfigError
from ..budget import Budget, BudgetLedger
from ..evaluation import Evaluator, ProviderUnavailableError
from ..events import BudgetUpdated, Reporter, RunFinished, RunStarted, RunWarning, StepFinished
from ..protocols import LanguageModel, Rollout, Task
from ..types import Candidate, GenerationStats, SearchOutcome
from . import engine
from .autosave import Autosave
from .config import GEPAConfig
from .merge import merge_with_llm
from .reflection import Reflection, reflect, reflection_messages
from .replay import ReplayModel, gather_all
from .state import Entry, GEPAState, load_checkpoint, save_checkpoint

__all__ = ["optimize_gepa"]


class _LimitedTask:
    """The task with at most `limit` rollouts in flight (the run's max_concurrent)."""

    def __init__(self, task: Task, limit: asyncio.Semaphore) -> None:
        self.task, self.limit = task, limit
        self.components = tuple(task.components)

    async def run(self, candidate: Candidate, index: int) -> Rollout:
        async with self.limit:
            return await self.task.run(candidate, index)

    def labeled_demo(self, index: int, component: str) -> Mapping[str, Any] | None:
        return self.task.labeled_demo(index, component)


@dataclass
class _Made:
    candidate: Candidate | None
    origin: str
    component: str
    rejected: tuple[str, ...] = ()


class _Shell:
    def __init__(self, task: Task, reflection: LanguageModel, config: GEPAConfig, state: GEPAState,
                 reporter: Reporter | None) -> None:
        self.config, self.state, self.reporter = config, state, reporter
        limit = asyncio.Semaphore(config.max_concurrent)
        self.components = tuple(task.components)
        search = Budget(max_rollouts=None if config.max_rollouts is None
                        else config.max_rollouts - engine.validation_reserve(config),
                        max_cost_usd=config.max_cost_usd)
        self.ledger = BudgetLedger(search, rollouts_used=len(state.rollouts), cost_usd=state.cost_usd)
        self.evaluator = Evaluator(_LimitedTask(task, limit), self.ledger, state.rollouts, self._on_rollout)
        self.model = ReplayModel(reflection, state.reflections, limit, self.ledger)
        self.started = time.monotonic()
        self.starved = False
        self.autosave: Autosave | None = None
        self._spent, self._count = 0.0, 0
        self._by_key: dict[str, tuple[float, int]] = {}
        for (key, _), r in state.rollouts.items():
            cost = r.usage.cost_usd or 0.0
            self._spent, self._count = self._spent + cost, self._count + 1
            spent, count = self._by_key.get(key, (0.0, 0))
            self._by_key[key] = (spent + cost, count + 1)

    def emit(self, event: Any) -> None:
        if self.reporter is not None:
            self.reporter(event)

    def _on_rollout(self, candidate: Candidate, rollout: Rollout) -> None:
        cost = rollout.usage.cost_usd or 0.0
        self._spent += cost
        self._count += 1
        spent, count = self._by_key.get(candidate.key, (0.0, 0))
        self._by_key[candidate.key] = (spent + cost, count + 1)
        if self.autosave is not None:
            self.autosave.progress()
        self.state.tokens += rollout.usage.total_tokens
        self.state.cost_usd = self.ledger.cost_usd

    def _charge(self, usage: Usage) -> None:
        """Count a reflection's tokens (its dollars were charged to the ledger call by call)."""
        self.state.tokens += usage.total_tokens
        self.state.cost_usd = self.ledger.cost_usd

    def _price(self, entry: Entry) -> float:
        """Expected dollars of one rollout of `entry`: its own average when it has run before, else the run's
        average with a margin (a child's prompt is usually longer than its parents')."""
        spent, count = self._by_key.get(entry.candidate.key, (0.0, 0))
        if count:
            return spent / count
        return 1.25 * self._spent / self._count if self._count else 0.0

    def _plan_spend(self, work: Sequence[tuple[Entry, Sequence[int]]], partial_ok: bool) -> list[int]:
        """Which work items the remaining budget can pay for in full, in slot order."""
        rollouts = self.ledger.remaining_rollouts()
        limit = self.ledger.budget.max_cost_usd
        dollars = None if limit is None else limit - self.ledger.cost_usd
        chosen = []
        for n, (entry, indices) in enumerate(work):
            need = len([i for i in indices if (entry.candidate.key, i) not in self.state.rollouts])
            cost = need * self._price(entry) if dollars is not None else 0.0
            if not partial_ok and ((rollouts is not None and need > rollouts)
                                   or (dollars is not None and cost > dollars)):
                self.starved = True  # the budget now binds: this generation is the search's last
                continue
            if rollouts is not None:
                rollouts -= min(need, rollouts)
            if dollars is not None:
                dollars -= cost
            chosen.append(n)
        return chosen

    async def evaluate_all(self, work: Sequence[tuple[Entry, Sequence[int]]], split: str, *,
                           partial_ok: bool = False) -> None:
        """Evaluate each (entry, indices) concurrently; work the remaining budget cannot fully pay for is skipped
        (in slot order) rather than started and left half-measured, unless `partial_ok`."""
        launched = [work[n] for n in self._plan_spend(work, partial_ok)]
        results = await gather_all([self.evaluator.evaluate(e.candidate, ix) for e, ix in launched])
        selection = self.config.split
        for (entry, indices), rollouts in zip(launched, results, strict=True):
            entry.absorb(rollouts, split)
            if split == selection and len(indices) == len(self.config.selection_seeds):
                scores = entry.train if split == "train" else entry.val
                entry.full = bool(scores) and len(rollouts) == len(indices)

    async def make_child(self, plan: engine.ChildPlan) -> _Made:
        state, config = self.state, self.config
        base, origin = plan.base, ("crossover" if plan.crossover else "copy")
        if plan.crossover and config.llm_merge and not self.ledger.exhausted:
            base, origin = await self._llm_merge(plan), "merge"
        if not plan.mutate and base.key not in state.by_key:
            return _Made(base, origin, "")
        if self.ledger.exhausted:
            return _Made(None, origin, plan.component, ("budget exhausted",))
        parent = state.entries[plan.reflect_on]
        shown = [state.rollouts[(parent.candidate.key, i)] for i in plan.shown
                 if (parent.candidate.key, i) in state.rollouts]
        current = base.instructions[plan.component]
        # A one-component task is not told about "steps": both front doors send the same request.
        named = plan.component if len(self.components) > 1 else None
        outcome: Reflection = await reflect(self.model, reflection_messages(current, shown, named),
                                            current, attempts=config.mutation_attempts)
        self._charge(outcome.usage)
        if outcome.instruction is None:
            return _Made(None, origin, plan.component, outcome.rejected)
        label = "mutation" if origin == "copy" else f"{origin}+mutation"
        return _Made(base.with_instruction(plan.component, outcome.instruction), label, plan.component)

    async def _llm_merge(self, plan: engine.ChildPlan) -> Candidate:
        a = self.state.entries[plan.parents[0]]
        b = self.state.entries[plan.parents[1]]
        rng = engine.rng_for(self.config, self.state.generation, f"merge:{plan.slot}")
        merged = a.candidate
        for name, text in a.candidate.instructions.items():
            other = b.candidate.instructions.get(name, text)
            if other != text:
                new, outcome = await merge_with_llm(self.model, text, other, rng,
                                                    attempts=self.config.mutation_attempts)
                self._charge(outcome.usage)
                merged = merged.with_instruction(name, new)
        return merged

    async def generation(self) -> GenerationStats:
        state, config = self.state, self.config
        g = state.generation
        if g == 0:
            root = next(iter(state.entries.values()))
            await self.evaluate_all([(root, config.selection_seeds)], config.split, partial_ok=True)
            root.full = bool(engine.selection_scores(root, config))
            state.population = [root.id]
        plans = engine.plan_generation(state, config, self.components)
        await self._run_parents(plans)
        self.model.answered = self.model.unreachable = self.model.requests = 0
        made = await gather_all([self.make_child(p) for p in plans])
        if self.model.unreachable and not self.model.answered:
            # Every reflection call failed to reach the model: an outage, not a generation without ideas.
            # Stop before committing the generation, so a resumed run replays it once the model is back.
            raise ProviderUnavailableError(self.model.unreachable, self.model.last_error)
        new: list[tuple[Entry, engine.ChildPlan]] = []
        known: list[str] = []
        rejected: list[str] = []
        dropped = 0
        for plan, child in zip(plans, made, strict=True):
            if child.candidate is None:
                rejected.extend(child.rejected)
                dropped += 1
                continue
            entry, is_new = state.add(child.candidate, g, child.origin, plan.parents, child.component)
            (new.append((entry, plan)) if is_new else known.append(entry.id))
        if plans and dropped == len(plans):
            self.emit(RunWarning(f"generation {g}: no usable child; the reflection model's answers were "
                                 f"rejected ({'; '.join(dict.fromkeys(rejected))[:300]})"))
        accepted = await self._gate(new)
        await self.evaluate_all([(e, config.selection_seeds) for e in accepted], config.split)
        # A generation whose reflections yield nothing new to evaluate makes no progress; enough of them in a
        # row end the run ("stalled") instead of asking the reflection model forever.
        state.stale = 0 if any(e.train or e.failed for e, _ in new) else state.stale + 1
        state.reflection_requests += self.model.requests
        children = [e.id for e in accepted] + [c for c in known if state.entries[c].full]
        state.population = engine.next_population(state, config, children)
        stats = engine.population_stats(state, config, g, len(new) + (1 if g == 0 else 0), self.ledger.rollouts_used,
                                        time.monotonic() - self.started)
        state.history.append(stats)
        state.generation = g + 1
        return stats

    async def _run_parents(self, plans: Sequence[engine.ChildPlan]) -> None:
        """With pareto_split "val", parents were never run on training samples: run each (in plan order) on the
        generation's gating minibatch, whose rollouts the reflection sees and whose scores the children must
        beat. Already-paid rollouts come from the cache."""
        batch = engine.gating_minibatch(self.state, self.config)
        if self.config.split != "val" or batch is None:
            return
        ids = dict.fromkeys(p for plan in plans for p in plan.parents)
        await self.evaluate_all([(self.state.entries[p], batch) for p in ids], "train")

    async def _gate(self, new: Sequence[tuple[Entry, engine.ChildPlan]]) -> list[Entry]:
        batch = engine.gating_minibatch(self.state, self.config)
        if batch is None:
            return [e for e, _ in new]
        await self.evaluate_all([(e, batch) for e, _ in new], "train")
        accepted = [e for e, plan in new
                    if engine.accepts(e, [self.state.entries[p] for p in plan.parents], batch)]
        return engine.full_evaluation_order(accepted, batch)

    async def validate(self) -> list[str]:
        config, state = self.config, self.state
        ids = engine.validation_order(state, config)
        if not config.val_seeds or not ids:
            return []
        # Validation spends the rollouts the search kept back: the same ledger (its price history) gets the
        # run's whole budget.
        self.ledger.budget = Budget(max_rollouts=config.max_rollouts, max_cost_usd=config.max_cost_usd)
        await self.evaluate_all([(state.entries[c], config.val_seeds) for c in ids], "val")
        return ids



def _check(task: Task, initial: Candidate, config: GEPAConfig) -> tuple[str, ...]:
    if not isinstance(config, GEPAConfig):
        raise ConfigError(f"config must be a GEPAConfig, but got {type(config).__name__}")
    components = tuple(task.components)
    missing = [c for c in components if c not in initial.instructions]
    if not components or missing:
        raise ConfigError(f"the initial candidate must have an instruction for every component of the task "
                          f"{components}, but lacks {missing}")
    return components


def _stop_reason(shell: _Shell) -> str:
    """Why the search must not start another generation ('' when it may)."""
    state, config = shell.state, shell.config
    if state.stop_reason:
        return state.stop_reason
    if state.generation >= config.generations:
        return "generations"
    if config.max_stale_generations is not None and state.stale >= config.max_stale_generations:
        return "stalled"
    if config.max_reflection_calls is not None and state.reflection_requests >= config.max_reflection_calls:
        return "reflection_calls"
    if shell.ledger.exhausted or shell.starved:
        return "budget"
    room = shell.ledger.remaining_rollouts()
    need = len(engine.gating_minibatch(state, config) or config.train_seeds)
    if config.split == "val":  # at least a child's minibatch and its validation must fit
        need += len(config.val_seeds)
    if room is not None and state.generation > 0 and room < need:
        return "budget"
    return ""


async def optimize_gepa(
    task: Task,
    reflection: LanguageModel,
    initial: Candidate,
    config: GEPAConfig,
    *,
    reporter: Reporter | None = None,
    fingerprint: Mapping[str, Any] | None = None,
) -> SearchOutcome:
    """Run GEPA on `task` from `initial`: reflective mutation by `reflection`, Pareto-aware parent sampling,
    section-wise merges, elites; then score the top candidates on `config.val_seeds` and pick the best.

    `fingerprint` adds what identifies the run's world to the checkpoint check (e.g. a dataset hash): resuming
    from a checkpoint written with other settings raises CheckpointError. Events go to `reporter`.
    """
    components = _check(task, initial, config)
    run_key = {**config.fingerprint(), "initial": initial.key, "components": list(components),
                 **dict(fingerprint or {})}
    state = load_checkpoint(config.checkpoint_dir, run_key) if config.checkpoint_dir else None
    state = state or GEPAState()
    if not state.entries:
        state.add(initial, 0, "initial")
    shell = _Shell(task, reflection, config, state, reporter)
    autosave = Autosave(config.checkpoint_dir, run_key, state)
    shell.autosave = autosave
    shell.emit(RunStarted("gepa", config.generations, config.max_rollouts, _estimate(config)))
    if config.overlap:
        shell.emit(RunWarning(f"train_seeds and val_seeds share {len(config.overlap)} indices "
                              f"(e.g. {list(config.overlap[:5])}): validation is not held out"))
    autosave.at_boundary()
    try:
        while not (reason := _stop_reason(shell)):
            stats = await shell.generation()
            best = max((m for e in state.full_entries() if (m := engine.selection_mean(e, config)) is not None),
                       default=None)
            if any(engine.is_perfect(e, config) for e in state.full_entries()):
                state.stop_reason = "perfect_score"
            autosave.at_boundary()
            shell.emit(StepFinished("gepa", stats, best))
            shell.emit(BudgetUpdated(shell.ledger.rollouts_used, config.max_rollouts, shell.ledger.cost_usd))
        validated = await shell.validate()
    except BaseException:
        # Keep every rollout and reflection answer paid for in the unfinished generation: the resumed run
        # replays that generation from the boundary and finds them all in the cache.
        autosave.progress(force=True)
        raise
    if config.checkpoint_dir:
        save_checkpoint(config.checkpoint_dir, run_key, state)
    best_id = engine.choose_best(state, config, validated)
    best_entry = state.entries[best_id]
    best_score = (sum(best_entry.val.values()) / len(best_entry.val)) if best_entry.val else best_entry.train_mean
    shell.emit(RunFinished("gepa", best_score, reason, shell.ledger.rollouts_used))
    return SearchOutcome(
        records=tuple(e.to_record() for e in state.entries.values()),
        history=tuple(state.history), best_id=best_id, stop_reason=reason,
        rollouts_used=shell.ledger.rollouts_used, cost_usd=shell.ledger.cost_usd,
    )


def _estimate(config: GEPAConfig) -> dict[str, int]:
    """Planned calls at most (before minibatch gating and deduplication save some)."""
    t, n, e, g = len(config.train_seeds), config.population_size, config.elite_size, config.generations
    children = (n - 1) + (g - 1) * (n - e)
    if config.split == "val":
        v = len(config.val_seeds)
        return {"task": v + children * (2 * (engine.batch_size(config) or t) + v),
                "reflection": children * config.mutation_attempts}
    per_child = t + (config.minibatch_size or 0)
    return {"task": t + children * per_child + config.val_candidates * len(config.val_seeds),
            "reflection": children * config.mutation_attempts}
