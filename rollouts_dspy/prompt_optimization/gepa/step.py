"""Carrying out one GEPA step (the async part of a step; every decision in it is the engine's).

A mutation step runs the parent on the step's minibatch, shows the reflection its failures, runs the child on the
same minibatch and, when the child wins there, scores it on the Pareto set. A merge step scores the merged
candidate on the Pareto set; with `mutate` it is first run on the minibatch and reflected on -- on its OWN
rollouts, never a parent's (the evidence must show how the instructions being rewritten did).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ...dtypes import Usage
from ...runtime import BudgetExhausted, Evaluator, ProviderUnavailableError, RecordedModel
from ..protocols import ComponentFeedback, InstructionCheck, Rollout, Task
from ..types import Candidate, CandidateRecord
from .engine import GEPAEngine, StepPlan, StepResult, accepts, rng_for
from .merge import merge_with_llm
from .strategies import ComponentContext, ComponentSelector, ProposalRequest, ProposalResult, Proposer

__all__ = ["RecordedProposer", "StepRunner"]


class RecordedProposer:
    """A custom proposer under the run's ledger and journal: its results are remembered by request, so a resumed
    run replays them and pays once (its own model calls are its business)."""

    def __init__(self, proposer: Proposer, recorder: RecordedModel) -> None:
        self.proposer, self.recorder = proposer, recorder

    async def propose(self, request: ProposalRequest) -> ProposalResult:
        blob = json.dumps([request.candidate.to_dict(), list(request.components),
                           {c: [r.to_dict() for r in rs] for c, rs in sorted(request.evidence.items())}],
                          sort_keys=True, default=str)
        digest = "proposal:" + hashlib.sha256(blob.encode()).hexdigest()[:24]

        async def call() -> tuple[str, Usage]:
            result = await self.proposer.propose(request)
            return json.dumps({"instructions": dict(result.instructions), "rejected": list(result.rejected),
                               "requests": result.requests}), result.usage

        text, usage = await self.recorder.recorded(digest, call)
        data = json.loads(text)
        return ProposalResult({str(k): str(v) for k, v in data["instructions"].items()}, tuple(data["rejected"]),
                              usage, int(data.get("requests", 1)))


@dataclass
class StepRunner:
    """What a step needs from the run: the engine (read-only here), the evaluator, the strategies."""

    engine: GEPAEngine
    evaluator: Evaluator
    task: Task
    proposer: Proposer
    components: ComponentSelector
    merger: RecordedModel | None  # the reflection model, for LLM merges (None: section-wise merges only)

    async def run(self, plan: StepPlan) -> StepResult:
        result = StepResult(plan.step)
        try:
            base = await self._merged(plan) if plan.kind == "merge" and self.merger is not None else plan.base
            if not plan.mutate:
                return await self._enter(result, base)
            base_rollouts = await self._evaluate(base, plan.minibatch)
            result = replace(result, base_rollouts=base_rollouts)
            if len(base_rollouts) < len(plan.minibatch):
                return replace(result, stop="budget")
            return await self._mutate(plan, result, base)
        except BudgetExhausted:
            return replace(result, stop="budget")

    async def _merged(self, plan: StepPlan) -> Candidate:
        """The LLM's merge of the parents' differing components (falling back to the section-wise merge)."""
        a, b = (self.engine.state.entries[p].candidate for p in plan.parents)
        merged = plan.base
        for name, text in a.instructions.items():
            other = b.instructions.get(name, text)
            if other != text:
                rng = _rng(self.engine, plan, f"merge:{name}")
                new, _ = await merge_with_llm(self.merger, text, other, rng,  # type: ignore[arg-type]
                                              attempts=self.engine.config.mutation_attempts)
                merged = merged.with_instruction(name, new)
        return merged

    async def _mutate(self, plan: StepPlan, result: StepResult, base: Candidate) -> StepResult:
        shown = self.engine.shown(plan, result.base_rollouts)
        if self.engine.config.skip_perfect_score and self.engine.all_perfect(shown):
            return replace(result, skipped="perfect")
        components = await self._components(plan, base, shown)
        evidence = {c: await self._feedback(base, shown, c) for c in components}
        try:
            proposal = await self.proposer.propose(ProposalRequest(base, components, evidence))
        except (ProviderUnavailableError, BudgetExhausted):
            raise
        except Exception as exc:  # noqa: BLE001 - a failed proposer drops this child, never the run
            proposal = ProposalResult(rejected=(f"proposer error: {type(exc).__name__}: {exc}"[:300],))
        result = replace(result, usage=proposal.usage, requests=proposal.requests, rejected=proposal.rejected,
                         components=tuple(c for c in components if c in proposal.instructions))
        new = {c: t for c, t in proposal.instructions.items() if c in base.instructions and t != base.instructions[c]}
        problems = self._unusable(new)
        new = {c: t for c, t in new.items() if c not in problems}
        if not new:
            reasons = (*result.rejected, *problems.values()) or ("the proposal changed nothing",)
            return replace(result, rejected=reasons, components=())
        child = base
        for name, text in new.items():
            child = child.with_instruction(name, text)
        child_rollouts = await self._evaluate(child, plan.minibatch)
        result = replace(result, child=child, child_rollouts=child_rollouts)
        if len(child_rollouts) < len(plan.minibatch):
            return replace(result, stop="budget")
        if accepts(result.base_rollouts, child_rollouts):
            return await self._enter(result, child)
        if plan.kind == "merge":
            return await self._enter(result, base)  # the merge itself still enters; its mutation lost
        return result

    def _unusable(self, texts: Mapping[str, str]) -> dict[str, str]:
        """Proposed texts the task cannot use (e.g. a user_template that lost a placeholder), with why."""
        if not isinstance(self.task, InstructionCheck):
            return {}
        problems = {c: self.task.check_instruction(c, t) for c, t in texts.items()}
        return {c: why for c, why in problems.items() if why}

    async def _components(self, plan: StepPlan, base: Candidate, shown: Sequence[Rollout]) -> tuple[str, ...]:
        components = tuple(self.engine.components)
        context = ComponentContext(plan.step, plan.parents[0], base, components, tuple(shown),
                                   self._population(plan))
        answer = self.components.select(context)
        picked = tuple(await answer if inspect.isawaitable(answer) else answer)
        unknown = [c for c in picked if c not in components]
        if not picked or unknown:
            raise ValueError(f"the component selector must return a non-empty subset of {list(components)}, "
                             f"but returned {list(picked)}")
        return tuple(dict.fromkeys(picked))

    def _population(self, plan: StepPlan) -> tuple[CandidateRecord, ...]:
        """The candidates compared when `plan` was made, with the scores it was made from (content and lineage
        never change once an entry exists)."""
        split = "val" if self.engine.split == "val" else "train"
        out = []
        for cid, scores in plan.compared.items():
            entry = self.engine.state.entries[cid]
            record = CandidateRecord(cid, entry.candidate, entry.generation, entry.origin, entry.parents,
                                     compared_at=entry.compared_at)
            out.append(replace(record, **{f"{split}_scores": dict(scores)}))
        return tuple(out)

    async def _feedback(self, base: Candidate, shown: Sequence[Rollout], component: str) -> tuple[Rollout, ...]:
        if isinstance(self.task, ComponentFeedback):
            return tuple(await self.task.component_feedback(base, shown, component))
        return tuple(shown)

    async def _enter(self, result: StepResult, candidate: Candidate) -> StepResult:
        pareto = self.engine.pareto_set
        rollouts = await self._evaluate(candidate, pareto)
        result = replace(result, entering=candidate, pareto_rollouts=rollouts)
        return replace(result, stop="budget") if len(rollouts) < len(pareto) else result

    async def _evaluate(self, candidate: Candidate, indices: Sequence[int]) -> Mapping[int, Rollout]:
        return await self.evaluator.evaluate(candidate, indices)


def _rng(engine: GEPAEngine, plan: StepPlan, purpose: str) -> random.Random:
    return rng_for(engine.config, plan.step, purpose)
