"""The GEPA engine's decisions: pure functions of (config, seed, generation, state).

`plan_generation` is the "ask": which children to make (parents, crossover or copy, mutate or not, which component,
which rollouts the reflection sees). The shell (runner.py) carries the plans out and hands the measured results
back to `finish_generation`, the "tell". Nothing here awaits, prints or reads the clock, so replaying a
generation from a checkpoint makes exactly the same decisions.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..types import Candidate, GenerationStats
from .config import GEPAConfig
from .merge import crossover_candidates
from .pareto import TIE, complementary_parent, frontier, sample_parent
from .selection import rank_by_mean
from .state import Entry, GEPAState

__all__ = [
    "ChildPlan",
    "batch_size",
    "selection_mean",
    "selection_scores",
    "accepts",
    "full_evaluation_order",
    "choose_best",
    "gating_minibatch",
    "is_perfect",
    "plan_generation",
    "rng_for",
    "validation_order",
    "validation_reserve",
]


def rng_for(config: GEPAConfig, generation: int, purpose: str) -> random.Random:
    """The RNG of one decision: derived from (seed, generation, purpose) only, so nothing needs saving."""
    return random.Random(f"gepa:{config.seed}:{generation}:{purpose}")


@dataclass(frozen=True)
class ChildPlan:
    """One child to make. `base` is the copy of the first parent or the section-wise merge of both; `mutate`
    says whether the rate asked for a reflective mutation of `component` (the shell also mutates whenever the
    child would equal a known candidate); the reflection is shown the rollouts of `reflect_on` on `shown`."""

    slot: int
    parents: tuple[str, ...]
    base: Candidate
    mutate: bool
    component: str
    reflect_on: str
    shown: tuple[int, ...]

    @property
    def crossover(self) -> bool:
        return len(self.parents) == 2


def selection_scores(entry: Entry, config: GEPAConfig) -> dict[int, float]:
    """The per-sample scores candidates are compared on: validation scores with pareto_split "val", else training."""
    return entry.val if config.split == "val" else entry.train


def selection_mean(entry: Entry, config: GEPAConfig) -> float | None:
    scores = selection_scores(entry, config)
    return sum(scores.values()) / len(scores) if scores else None


def _shown(entry: Entry, config: GEPAConfig, rng: random.Random,
           batch: Sequence[int] | None = None) -> tuple[int, ...]:
    """Training samples to show the reflection: failures first (where there is most to learn), seeded. With
    pareto_split "val" they come from the generation's gating minibatch (the parent is run there first)."""
    order = list(config.train_seeds if batch is None else batch)
    rng.shuffle(order)
    top = config.perfect_score

    def failed(i: int) -> bool:
        score = entry.train.get(i)
        return score is None or (top is not None and score < top - TIE) or (top is None and score <= 0)

    ranked = [i for i in order if failed(i)] + [i for i in order if not failed(i)]
    return tuple(ranked[: config.reflection_minibatch_size])


def _scores(state: GEPAState, config: GEPAConfig) -> dict[str, dict[int, float]]:
    return {e.id: selection_scores(e, config) for e in state.full_entries() if selection_scores(e, config)}


def _means(state: GEPAState, config: GEPAConfig, ids: Sequence[str]) -> dict[str, float | None]:
    return {cid: selection_mean(state.entries[cid], config) for cid in ids}


def plan_generation(state: GEPAState, config: GEPAConfig, components: Sequence[str]) -> list[ChildPlan]:
    """The children of generation `state.generation`. Generation 0: population_size - 1 reflective mutations of
    the initial candidate. Later: population_size - elite_size children of parents drawn from the Pareto
    frontier of every fully evaluated candidate, each a merge of two complementary parents with probability
    crossover_rate, else a copy of one, mutated with probability mutation_rate."""
    g = state.generation
    rng = rng_for(config, g, "plan")
    entries = state.entries
    batch = gating_minibatch(state, config) if config.split == "val" else None
    if g == 0:
        root = next(iter(entries.values()))
        return [
            ChildPlan(s, (root.id,), root.candidate, True, components[s % len(components)], root.id,
                      _shown(root, config, rng, batch))
            for s in range(config.population_size - 1)
        ]
    scores = _scores(state, config)
    if not scores:
        return []
    wins = frontier(scores, config.selection_seeds)
    ranked = rank_by_mean(_means(state, config, list(scores)))
    plans = []
    for s in range(config.population_size - config.elite_size):
        first = sample_parent(rng, wins)
        parents: tuple[str, ...] = (first,)
        base = entries[first].candidate
        if rng.random() < config.crossover_rate:
            second = complementary_parent(rng, wins, first, ranked)
            if second is not None:
                parents = (first, second)
                base = crossover_candidates(base, entries[second].candidate, rng)
        mutate = rng.random() < config.mutation_rate
        component = components[(g + s) % len(components)]
        plans.append(ChildPlan(s, parents, base, mutate, component, first,
                               _shown(entries[first], config, rng, batch)))
    return plans


def batch_size(config: GEPAConfig) -> int | None:
    """The gating minibatch's size: minibatch_size; with pareto_split "val" there is always one (default: the
    reflection_minibatch_size), since children are never run on all of train_seeds there."""
    if config.minibatch_size is None and config.split == "val":
        return config.reflection_minibatch_size
    return config.minibatch_size


def gating_minibatch(state: GEPAState, config: GEPAConfig) -> tuple[int, ...] | None:
    """The seeded training subset this generation's children must improve on before a full evaluation
    (shared by all children, so they are compared on equal terms); None without minibatch gating. With
    pareto_split "val" always a batch (all of train_seeds when they are fewer than its size)."""
    size = batch_size(config)
    if size is not None and size >= len(config.train_seeds) and config.split == "val":
        return tuple(config.train_seeds)
    if size is None or size >= len(config.train_seeds):
        return None
    return tuple(sorted(rng_for(config, state.generation, "minibatch").sample(config.train_seeds, size)))


def _batch_total(entry: Entry, batch: Sequence[int]) -> float:
    return sum(entry.train.get(i, 0.0) for i in batch)


def accepts(child: Entry, parents: Sequence[Entry], batch: Sequence[int]) -> bool:
    """A child earns a full evaluation when its total on the minibatch beats its best parent's (strictly)."""
    measured = [i for i in batch if i in child.train]
    if not measured:
        return False
    own = sum(child.train[i] for i in measured)
    best = max(sum(p.train.get(i, 0.0) for i in measured) for p in parents)
    return own > best + TIE


def full_evaluation_order(accepted: Sequence[Entry], batch: Sequence[int] | None) -> list[Entry]:
    """The accepted children in the order their full evaluations are paid for: best on the gating minibatch
    first (ties: slot order), so when the budget cannot pay for all of them it is the most promising that run.
    Without gating, slot order."""
    if batch is None:
        return list(accepted)
    ranked = sorted(enumerate(accepted), key=lambda e: (-_batch_total(e[1], batch), e[0]))
    return [e for _, e in ranked]


def is_perfect(entry: Entry, config: GEPAConfig) -> bool:
    top = config.perfect_score
    scores = selection_scores(entry, config)
    if top is None or not entry.full or len(scores) < len(config.selection_seeds):
        return False
    return min(scores.values()) >= top - TIE


def population_stats(state: GEPAState, config: GEPAConfig, g: int, evaluated: int, rollouts: int,
                     elapsed: float) -> GenerationStats:
    """The population's best and mean score on the selection split (training, or validation with "val")."""
    means = [m for cid in state.population if (m := selection_mean(state.entries[cid], config)) is not None
             and state.entries[cid].full]
    return GenerationStats(
        generation=g, best_score=max(means, default=0.0), mean_score=sum(means) / len(means) if means else 0.0,
        num_evaluated=evaluated, rollouts_used=rollouts, tokens=state.tokens, cost_usd=state.cost_usd,
        elapsed_seconds=elapsed,
    )


def next_population(state: GEPAState, config: GEPAConfig, children: Sequence[str]) -> list[str]:
    """Elites (the elite_size best of the current population by training mean, unchanged) plus the children
    that were fully evaluated; generation 0 keeps the initial candidate and its children."""
    full = [cid for cid in state.population if state.entries[cid].full]
    keep = full if state.generation == 0 else rank_by_mean(_means(state, config, full))[: config.elite_size]
    out = list(keep)
    for cid in children:
        if cid not in out and state.entries[cid].full:
            out.append(cid)
    return out


def validation_order(state: GEPAState, config: GEPAConfig) -> list[str]:
    """The candidates to score on val_seeds, most promising first: the best by training mean, then every Pareto
    survivor (most wins first, ties by mean), then the rest by mean up to val_candidates in all. The shell
    validates them in this order as long as the budget pays for a full validation."""
    if config.split == "val":  # every accepted candidate was already scored on val_seeds
        return []
    scores = _scores(state, config)
    if not scores:
        return [next(iter(state.entries))] if state.entries else []
    ranked = rank_by_mean(_means(state, config, list(scores)))
    wins = frontier(scores, config.train_seeds)
    front = sorted(wins, key=lambda c: (-len(wins[c]), ranked.index(c)))
    top = list(dict.fromkeys([ranked[0], *front]))
    rest = [c for c in ranked if c not in top]
    return top + rest[: max(0, config.val_candidates - len(top))]


def validation_reserve(config: GEPAConfig) -> int:
    """Rollouts kept back from the search for validation: val_candidates x len(val_seeds), reduced (down to no
    reserve) when the budget could not then pay for one full training evaluation."""
    if config.max_rollouts is None or not config.val_seeds or config.split == "val":
        return 0
    n = config.val_candidates
    while n > 0 and config.max_rollouts - n * len(config.val_seeds) < len(config.train_seeds):
        n -= 1
    return n * len(config.val_seeds)


def choose_best(state: GEPAState, config: GEPAConfig, validated: Sequence[str]) -> str:
    """The best candidate: highest validation mean among those validated on every val sample (ties: training
    mean, then age); without validation results, the best by training mean; else the initial candidate."""
    if config.split == "val":
        validated = [e.id for e in state.full_entries()]
    complete = [cid for cid in validated if len(state.entries[cid].val) == len(config.val_seeds) and config.val_seeds]
    if complete:
        def key(cid: str) -> tuple[float, float]:
            e = state.entries[cid]
            return (sum(e.val.values()) / len(e.val), e.train_mean or 0.0)

        best = max(key(c) for c in complete)
        return next(c for c in state.entries if c in complete and key(c) == best)
    scores = _scores(state, config)
    if scores:
        return rank_by_mean(_means(state, config, list(scores)))[0]
    return next(iter(state.entries))
