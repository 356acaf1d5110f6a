"""GEPA's strategies as objects behind small protocols: which candidate a step starts from, which components it
changes, and who proposes the new instructions. The config names the built-in ones ("pareto", "round_robin", ...);
`GEPAStrategies` passes your own (the DSPy bridge passes DSPy's `component_selector` callables and
`instruction_proposer` functions this way). Names are resolved once, here."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ...dtypes import Usage
from ...errors import ConfigError
from ...runtime import ProviderUnavailableError
from ..protocols import LanguageModel, Rollout
from ..types import Candidate, CandidateRecord
from .pareto import sample_parent
from .reflection import reflect, reflection_messages

__all__ = [
    "AllComponents",
    "CandidateSelector",
    "ComponentContext",
    "ComponentSelector",
    "CurrentBest",
    "GEPAStrategies",
    "ParetoSampler",
    "ProposalRequest",
    "ProposalResult",
    "Proposer",
    "ReflectiveProposer",
    "RoundRobin",
    "candidate_selector",
    "component_selector",
]


class CandidateSelector(Protocol):
    """Picks the candidate a step starts from. `front` maps each Pareto survivor to the samples it wins, `means`
    every comparable candidate's mean on the Pareto set (oldest first). Deterministic given `rng`."""

    def select(self, front: Mapping[str, frozenset[int]], means: Mapping[str, float], rng: random.Random) -> str: ...


class ParetoSampler:
    """GEPA's rule: a Pareto survivor, drawn in proportion to the samples it is best on."""

    def select(self, front: Mapping[str, frozenset[int]], means: Mapping[str, float], rng: random.Random) -> str:
        return sample_parent(rng, front)


class CurrentBest:
    """Always the best mean (ties: the oldest): greedy hill-climbing."""

    def select(self, front: Mapping[str, frozenset[int]], means: Mapping[str, float], rng: random.Random) -> str:
        best = max(means.values())
        return next(cid for cid, m in means.items() if m == best)


@dataclass(frozen=True)
class ComponentContext:
    """What a component selector sees: the step, the candidate it starts from (for a merge step, the merged
    candidate and its first parent's id) and its rollouts the reflection will be shown; `population`: the
    candidates compared when the step was planned, oldest first, with their scores on the Pareto set (under
    `val_scores` when candidates are compared on validation samples, else `train_scores`)."""

    step: int
    candidate_id: str
    candidate: Candidate
    components: tuple[str, ...]
    rollouts: tuple[Rollout, ...]
    population: tuple[CandidateRecord, ...] = ()


class ComponentSelector(Protocol):
    """Which components a step rewrites; a non-empty subset of `context.components`. `select` may return an
    awaitable of the names instead (a selector that asks a model must not block the event loop). Steps run
    concurrently, so a selector's calls for different steps may come in any order: for a reproducible run its
    answer must depend on `context` only."""

    def select(self, context: ComponentContext) -> Sequence[str] | Awaitable[Sequence[str]]: ...


class RoundRobin:
    """One component per step, in turn."""

    def select(self, context: ComponentContext) -> Sequence[str]:
        return (context.components[context.step % len(context.components)],)


class AllComponents:
    """Every component at once."""

    def select(self, context: ComponentContext) -> Sequence[str]:
        return context.components


@dataclass(frozen=True)
class ProposalRequest:
    """New instructions wanted for `components` of `candidate`; `evidence` holds, per component, the rollouts
    (with that component's feedback) the proposal should learn from."""

    candidate: Candidate
    components: tuple[str, ...]
    evidence: Mapping[str, tuple[Rollout, ...]]


@dataclass(frozen=True)
class ProposalResult:
    """New text per updated component (a subset is fine; empty: nothing usable), why attempts were rejected,
    what the calls cost and how many model requests were made."""

    instructions: Mapping[str, str] = field(default_factory=dict)
    rejected: tuple[str, ...] = ()
    usage: Usage = field(default_factory=Usage)
    requests: int = 0


class Proposer(Protocol):
    async def propose(self, request: ProposalRequest) -> ProposalResult: ...


class ReflectiveProposer:
    """GEPA's reflective mutation: one request per component showing its instruction and the evidence, parsed
    robustly (docs/gepa.md). A one-component task is not told about "steps", so both front doors send the same
    request."""

    def __init__(self, model: LanguageModel, *, attempts: int) -> None:
        self.model, self.attempts = model, attempts

    async def propose(self, request: ProposalRequest) -> ProposalResult:
        named = len(request.candidate.instructions) > 1
        out: dict[str, str] = {}
        rejected: list[str] = []
        usage, requests = Usage(), 0
        for component in request.components:
            current = request.candidate.instructions[component]
            messages = reflection_messages(current, request.evidence.get(component, ()),
                                           component if named else None)
            outcome = await reflect(self.model, messages, current, attempts=self.attempts)
            usage, requests = usage + outcome.usage, requests + outcome.requests
            rejected.extend(outcome.rejected)
            if outcome.instruction is not None:
                out[component] = outcome.instruction
        return ProposalResult(out, tuple(rejected), usage, requests)


@dataclass(frozen=True)
class GEPAStrategies:
    """Strategies that override the config's named ones (None: use the config's)."""

    candidate_selector: CandidateSelector | None = None
    component_selector: ComponentSelector | None = None
    proposer: Proposer | None = None


def candidate_selector(name: str) -> CandidateSelector:
    table: dict[str, CandidateSelector] = {"pareto": ParetoSampler(), "current_best": CurrentBest()}
    if name not in table:
        raise ConfigError(f"candidate_selection must be one of {sorted(table)}, but got {name!r}")
    return table[name]


def component_selector(name: str) -> ComponentSelector:
    table: dict[str, ComponentSelector] = {"round_robin": RoundRobin(), "all": AllComponents()}
    if name not in table:
        raise ConfigError(f"component_selection must be one of {sorted(table)}, but got {name!r}")
    return table[name]


def is_outage(exc: BaseException) -> bool:
    """An exception that must stop the run rather than drop one candidate."""
    return isinstance(exc, ProviderUnavailableError)
