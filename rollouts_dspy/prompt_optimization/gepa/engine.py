"""The GEPA engine's decisions, as ask/tell over one GEPAState. Pure: nothing here awaits, prints or reads the
clock, and every random choice derives from (seed, step), so the same results told in the same order give the
same search -- which is what lets a resumed run replay itself exactly.

A step (`ask`) starts from a candidate of the Pareto front (or merges two that are best on different samples),
runs it and a reflective child on a fresh training minibatch, and scores the child on the Pareto set when it wins
there (`accepts`). The shell runs up to `children_per_generation` steps at once; it tells their results back in
step order, and each step is planned from the state after the tells before it (never from a race).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ...dtypes import Usage
from ...runtime import PriceBook, room
from ...runtime.ledger import ROLLOUT, Budget
from ..objectives import ObjectiveFront
from ..protocols import Rollout
from ..types import Candidate, GenerationStats, mean_of
from .config import GEPAConfig
from .merge import crossover_candidates
from .pareto import TIE, complementary_parent, frontier
from .selection import rank_by_mean
from .state import Entry, GEPAState
from .strategies import CandidateSelector

__all__ = ["GEPAEngine", "StepPlan", "StepResult", "accepts", "rng_for"]


def rng_for(config: GEPAConfig, step: int, purpose: str) -> random.Random:
    """The RNG of one decision: derived from (seed, step, purpose) only, so nothing needs saving."""
    return random.Random(f"gepa:{config.seed}:{step}:{purpose}")


@dataclass(frozen=True)
class StepPlan:
    """One step to carry out. `base` is the parent's candidate, or for a merge the section-wise merge of both
    parents (`mutate`: reflect on the merged candidate too). `reserve` is the most rollouts it may use."""

    step: int
    generation: int
    kind: str  # "mutation" | "merge"
    parents: tuple[str, ...]
    base: Candidate
    minibatch: tuple[int, ...]
    mutate: bool
    reserve: int
    compared: Mapping[str, Mapping[int, float]] = field(default_factory=dict)
    """The comparable candidates' Pareto-set scores the step was planned from (oldest first): what a
    component selector is shown, as of the plan (never of whatever was told while the step ran)."""


@dataclass(frozen=True)
class StepResult:
    """What the shell measured for a step. `entering` is the candidate scored on the Pareto set (the child that
    won its minibatch, or an unmutated merge), None when no candidate entered. `stop` is "budget" when the budget
    refused work midway."""

    step: int
    base_rollouts: Mapping[int, Rollout] = field(default_factory=dict)
    child: Candidate | None = None
    components: tuple[str, ...] = ()
    child_rollouts: Mapping[int, Rollout] = field(default_factory=dict)
    entering: Candidate | None = None
    pareto_rollouts: Mapping[int, Rollout] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    requests: int = 0
    rejected: tuple[str, ...] = ()
    stop: str = ""
    skipped: str = ""


def accepts(base: Mapping[int, Rollout], child: Mapping[int, Rollout]) -> bool:
    """A child earns a Pareto-set evaluation when its total on the minibatch beats its parent's there (strictly),
    compared on the samples both were measured on."""
    both = [i for i in child if child[i].score is not None and i in base and base[i].score is not None]
    if not both:
        return False
    return sum(child[i].score for i in both) > sum(base[i].score for i in both) + TIE  # type: ignore[misc]


def _sample(items: Sequence[int], size: int, rng: random.Random) -> tuple[int, ...]:
    return tuple(items) if size >= len(items) else tuple(sorted(rng.sample(list(items), size)))


class GEPAEngine:
    """ask/tell over a GEPAState (see the module doc)."""

    def __init__(self, config: GEPAConfig, components: Sequence[str], initial: Candidate,
                 selector: CandidateSelector) -> None:
        self.config, self.components, self.selector = config, tuple(components), selector
        self.state = GEPAState()
        self.root, _ = self.state.add(initial, 0, "initial")
        self.split = config.pareto_split
        pool = config.val_seeds if self.split == "val" else config.train_seeds
        self.pareto_set = _sample(pool, config.pareto_size or len(pool), rng_for(config, -1, "pareto-set"))
        self.val_set = self._val_set()
        self.feedback_pool = self._feedback_pool()
        self.budget = Budget(max_rollouts=config.max_rollouts, max_cost_usd=config.max_cost_usd)
        self.prices = PriceBook()  # fed at tell, in step order: deterministic estimates for planning
        self.validation_reserve = self._validation_reserve()

    def _val_set(self) -> tuple[int, ...]:
        """The samples the best candidates are validated on at the end (split "train"): val_seeds, or without
        them a holdout of `holdout_size` training samples that neither the reflections nor the Pareto set ever
        use -- the search picks among many candidates by their Pareto score, which flatters the lucky ones."""
        if self.split == "val":
            return ()
        if self.config.val_seeds:
            return tuple(self.config.val_seeds)
        rest = [i for i in self.config.train_seeds if i not in set(self.pareto_set)]
        return _sample(rest, self.config.holdout_size or 0, rng_for(self.config, -1, "holdout")) \
            if self.config.holdout_size else ()

    def _feedback_pool(self) -> tuple[int, ...]:
        """The training samples minibatches are drawn from: the ones outside the Pareto set (and the holdout) when
        enough remain, so a candidate is compared on samples its reflection never saw (its Pareto score measures
        what generalizes, not what was memorized); all of train_seeds when the split is too small to hold both."""
        held = set(self.pareto_set) | set(self.val_set)
        rest = tuple(i for i in self.config.train_seeds if i not in held)
        return rest if len(rest) >= 2 * (self.config.minibatch_size or 1) else tuple(self.config.train_seeds)

    # -- comparing candidates ------------------------------------------------------------------------------
    def pareto_mean(self, entry: Entry) -> float | None:
        scores = entry.scores(self.split)
        return mean_of([scores[i] for i in self.pareto_set if i in scores])

    def _table(self) -> dict[str, dict[int, float]]:
        """Per-sample Pareto-set scores of the comparable candidates (fully scored, something measured)."""
        table = {e.id: {i: e.scores(self.split)[i] for i in self.pareto_set if i in e.scores(self.split)}
                 for e in self.state.full_entries()}
        return {cid: scores for cid, scores in table.items() if scores}

    def objective_front(self) -> ObjectiveFront:
        """Every comparable candidate's objectives on the Pareto set, and their front (see objectives.py)."""
        points = {}
        for cid, scores in self._table().items():
            entry = self.state.entries[cid]
            point = {"score": mean_of(scores) or 0.0,
                     "prompt_length": float(sum(len(t) for t in entry.candidate.instructions.values())),
                     "tokens": float(mean_of([entry.tokens[i] for i in scores if i in entry.tokens]) or 0.0)}
            per_sample = entry.objectives.get(self.split, {})
            for name in self.config.objectives:
                values = [per_sample[i][name] for i in scores if name in per_sample.get(i, {})]
                if values:
                    point[name] = sum(values) / len(values)
            points[cid] = point
        return ObjectiveFront.of(points, self.config.objectives)

    def ranked(self) -> list[str]:
        """Comparable candidates, best Pareto mean first (ties: oldest)."""
        return rank_by_mean({cid: mean_of(scores) for cid, scores in self._table().items()})

    # -- ask -----------------------------------------------------------------------------------------------
    def ask(self, step: int, pending: Sequence[StepPlan] = ()) -> StepPlan | None:
        """The plan of `step`, from the state as told so far and the steps still in flight (`pending`); None
        when no candidate can be a parent."""
        table = self._table()
        if not table:
            return None
        rng = rng_for(self.config, step, "plan")
        front = frontier(table, self.pareto_set)
        if self.config.objectives:  # the best trade-offs on the other objectives stay parents too
            front = {**front, **{c: frozenset() for c in self.objective_front().front if c not in front}}
        means = {cid: mean_of(s) or 0.0 for cid, s in table.items()}
        first = self.selector.select(front, means, rng)
        minibatch = _sample(self.feedback_pool, self.config.minibatch_size or 1, rng_for(self.config, step, "mb"))
        generation = step // self.config.children_per_generation
        if self._merge_allowed(pending) and rng.random() < self.config.crossover_rate:
            second = complementary_parent(rng, front, first, self.ranked())
            if second is not None:
                a, b = self.state.entries[first].candidate, self.state.entries[second].candidate
                merged = crossover_candidates(a, b, rng)
                if merged.key not in self.state.by_key:
                    mutate = rng.random() < self.config.mutation_rate
                    return self._plan(step, generation, "merge", (first, second), merged, minibatch, mutate, table)
        return self._plan(step, generation, "mutation", (first,), self.state.entries[first].candidate, minibatch,
                          True, table)

    def _merge_allowed(self, pending: Sequence[StepPlan]) -> bool:
        """Merges planned so far (told or still in flight) are under `max_merges`, and two candidates exist."""
        limit = self.config.max_merges
        planned = self.state.merges + sum(p.kind == "merge" for p in pending)
        return (limit is None or planned < limit) and len(self.state.full_entries()) >= 2

    def _plan(self, step: int, generation: int, kind: str, parents: tuple[str, ...], base: Candidate,
              minibatch: tuple[int, ...], mutate: bool, compared: Mapping[str, Mapping[int, float]]) -> StepPlan:
        new_base = sum(1 for i in minibatch if (base.key, i) not in self.state.charged)
        reserve = len(self.pareto_set) + (new_base + len(minibatch) if mutate else 0)
        return StepPlan(step, generation, kind, parents, base, minibatch, mutate, reserve, compared)

    def shown(self, plan: StepPlan, rollouts: Mapping[int, Rollout]) -> tuple[Rollout, ...]:
        """The rollouts a reflection is shown: failures first (where there is most to learn), seeded order."""
        order = sorted(rollouts)
        rng_for(self.config, plan.step, "shown").shuffle(order)
        ranked = [i for i in order if self._failed(rollouts[i])] + [i for i in order if not self._failed(rollouts[i])]
        return tuple(rollouts[i] for i in ranked[: self.config.reflection_minibatch_size])

    def _failed(self, rollout: Rollout) -> bool:
        top = self.config.perfect_score
        if rollout.score is None:
            return True
        return rollout.score < top - TIE if top is not None else rollout.score <= 0

    def all_perfect(self, rollouts: Sequence[Rollout]) -> bool:
        """Nothing to learn from these (skip_perfect_score)."""
        top = self.config.perfect_score
        return bool(rollouts) and top is not None and all(r.score is not None and r.score >= top - TIE
                                                          for r in rollouts)

    # -- budget --------------------------------------------------------------------------------------------
    def _validation_reserve(self) -> int:
        """Rollouts kept back for validating the best candidates (val_candidates x val_seeds), fewer when the
        rollout budget could not then pay for the start and a step."""
        if not self.val_set:
            return 0
        n, val = self.config.val_candidates + 1, len(self.val_set)  # + the start, validated too
        if self.config.max_rollouts is not None:
            floor = 2 * len(self.pareto_set) + 2 * (self.config.minibatch_size or 0)
            while n > 0 and self.config.max_rollouts - n * val < floor:
                n -= 1
        return n * val

    def room(self, reserved: int = 0, in_flight: int = 0, *, reserve: int | None = None) -> int | None:
        """Rollouts the search may still plan for, with `reserved` rollouts held by `in_flight` steps and `reserve`
        kept back for validation (default: the full validation reserve). Plans at the average price so far (the
        ledger's admission of each call is the cautious guard that keeps the cap hard)."""
        price = self.prices.average(ROLLOUT)
        calls = (self.prices.average("reflection") or 0.0) * in_flight
        return room(self.budget, rollouts_used=self.state.spend.rollouts, cost_usd=self.state.spend.cost_usd,
                    pending_rollouts=reserved, pending_usd=reserved * (price or 0.0) + calls,
                    reserve=self.validation_reserve if reserve is None else reserve, price=price)

    # -- tell ----------------------------------------------------------------------------------------------
    def tell_initial(self, rollouts: Mapping[int, Rollout]) -> None:
        before = self.state.spend.rollouts
        self._charge(self.root.candidate, rollouts)
        self.root.absorb(rollouts, self.split)
        self.root.full = bool(rollouts) and len(rollouts) == len(self.pareto_set)
        self.root.compared_at = before if self.root.full else None
        self._check_perfect(self.root)

    def tell(self, plan: StepPlan, result: StepResult) -> None:
        """Take a step's measurements into the state (called in step order)."""
        state = self.state
        assert result.step == state.told, "steps must be told in order"
        state.told += 1
        state.reflection_requests += result.requests
        state.spend.add(result.usage)
        self.prices.observe("reflection", result.usage.cost_usd if result.requests else None)
        if plan.kind == "merge":
            state.merges += 1
        self._charge(plan.base, result.base_rollouts)
        if plan.kind == "mutation":
            state.entries[plan.parents[0]].absorb(result.base_rollouts, "train")
        if result.child is not None:
            self._charge(result.child, result.child_rollouts)
        if result.entering is not None:
            self._enter(plan, result)
        elif result.child is not None:
            child, new = state.add(result.child, plan.generation, _origin(plan), plan.parents, result.components)
            child.absorb(result.child_rollouts, "train")
            state.generation_made += int(new)
        if result.stop:
            state.stop_reason = state.stop_reason or result.stop

    def _enter(self, plan: StepPlan, result: StepResult) -> None:
        state, entering = self.state, result.entering
        assert entering is not None
        mutated = result.child is not None and entering.key == result.child.key
        origin = _origin(plan) if mutated or plan.kind == "mutation" else "merge"
        entry, new = state.add(entering, plan.generation, origin, plan.parents, result.components if mutated else ())
        before = state.spend.rollouts
        self._charge(entering, result.pareto_rollouts)
        entry.absorb(result.child_rollouts if mutated else result.base_rollouts, "train")
        entry.absorb(result.pareto_rollouts, self.split)
        complete = len(result.pareto_rollouts) == len(self.pareto_set)
        if complete and not entry.full:
            entry.full = True
            entry.compared_at = before
            state.generation_new += 1
        state.generation_made += int(new)
        self._check_perfect(entry)

    def _charge(self, candidate: Candidate, rollouts: Mapping[int, Rollout]) -> None:
        for r in self.state.charge(candidate.key, rollouts):
            self.prices.observe(ROLLOUT, r.usage.cost_usd)

    def _check_perfect(self, entry: Entry) -> None:
        top = self.config.perfect_score
        scores = entry.scores(self.split)
        if top is not None and entry.full and all(i in scores and scores[i] >= top - TIE for i in self.pareto_set):
            self.state.stop_reason = "perfect_score"

    def end_generation(self, generation: int, elapsed: float) -> GenerationStats:
        """Close `generation` (all its steps told): the stalled count and its stats."""
        state = self.state
        state.stale = 0 if state.generation_made else state.stale + 1
        elites = self.ranked()[: self.config.elite_size]
        newest = [e.id for e in state.full_entries() if e.generation == generation and e.id not in elites]
        population = [cid for cid in [*elites, *newest] if cid in state.entries]
        means = [m for cid in population if (m := self.pareto_mean(state.entries[cid])) is not None]
        stats = GenerationStats(
            generation=generation, best_score=max(means, default=0.0),
            mean_score=sum(means) / len(means) if means else 0.0, num_evaluated=state.generation_made,
            rollouts_used=state.spend.rollouts, tokens=state.spend.tokens, cost_usd=state.spend.cost,
            elapsed_seconds=elapsed,
        )
        state.history.append(stats)
        state.generation_new = state.generation_made = 0
        return stats

    # -- stopping ------------------------------------------------------------------------------------------
    def stop_reason(self, step: int) -> str:
        """Why step `step` must not start ('' when it may), budget aside (see `fits`)."""
        state, config = self.state, self.config
        if state.stop_reason:
            return state.stop_reason
        if step >= config.generations * config.children_per_generation:  # type: ignore[operator]
            return "generations"
        if config.max_stale_generations is not None and state.stale >= config.max_stale_generations:
            return "stalled"
        if config.max_reflection_calls is not None and state.reflection_requests >= config.max_reflection_calls:
            return "reflection_calls"
        return ""

    def fits(self, plan: StepPlan, reserved: int, in_flight: int) -> bool:
        """Can the budget pay for `plan` now (keeping the validation reserve)? A budget too small to pay for even a
        first step beside the full reserve keeps less (the best candidate and the start, then the best alone)
        rather than not searching at all."""
        full, val = self.validation_reserve, len(self.val_set)
        first = self.state.told == 0 and not in_flight
        for reserve in (full, min(full, 2 * val), min(full, val)) if first else (full,):
            left = self.room(reserved, in_flight, reserve=reserve)
            if left is None or left >= plan.reserve:
                return True
        return False

    # -- the end -------------------------------------------------------------------------------------------
    def validation_order(self) -> list[str]:
        """Candidates to score on the validation set, most promising first: the best by Pareto mean, every Pareto
        survivor (most wins first), then the rest by mean, up to val_candidates; then the start, so the result
        is never worse on validation than where the search began (train split only)."""
        if not self.val_set:
            return []
        table = self._table()
        if not table:
            return [self.root.id]
        ranked = self.ranked()
        wins = frontier(table, self.pareto_set)
        front = sorted(wins, key=lambda c: (-len(wins[c]), ranked.index(c)))
        top = list(dict.fromkeys([ranked[0], *front]))
        rest = [c for c in ranked if c not in top]
        chosen = (top + rest)[: max(self.config.val_candidates, 1)]
        # The start right after the best: when the budget pays for only two validations, these are the two.
        return list(dict.fromkeys([chosen[0], self.root.id, *chosen[1:]]))

    def choose_best(self, validated: Sequence[str]) -> str:
        """The highest validation mean among candidates validated on every val sample (ties: Pareto mean, age);
        without them the best Pareto mean; else the initial candidate."""
        val = self.val_set
        complete = [c for c in validated if val and len(self.state.entries[c].val) == len(val)]
        if complete:
            def key(cid: str) -> tuple[float, float]:
                e = self.state.entries[cid]
                return (mean_of(e.val) or 0.0, self.pareto_mean(e) or 0.0)

            best = max(key(c) for c in complete)
            return next(c for c in self.state.entries if c in complete and key(c) == best)
        ranked = self.ranked()
        return ranked[0] if ranked else self.root.id

    def best_so_far(self) -> tuple[str, float | None]:
        ranked = self.ranked()
        if not ranked:
            return self.root.id, None
        return ranked[0], self.pareto_mean(self.state.entries[ranked[0]])


def _origin(plan: StepPlan) -> str:
    return "mutation" if plan.kind == "mutation" else "merge+mutation"
