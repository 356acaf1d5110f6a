"""dspy.GEPA's strategy callables as the GEPA engine's strategies.

- `component_selector=<callable>`: gepa's `ReflectionComponentSelector` protocol, `selector(state, trajectories,
  subsample_scores, candidate_idx, candidate) -> list[str]`, becomes a `ComponentSelector`. `state` is a
  `SelectorState` (below), the pool as it was when the step was planned; `trajectories` are DSPy's TraceData of
  the runs the reflection will be shown and `subsample_scores` their scores.
- `instruction_proposer=<callable>`: gepa's `ProposalFn`, `proposer(candidate, reflective_dataset,
  components_to_update) -> {component: new instruction}`, becomes a `Proposer`. The reflective dataset is built
  as dspy.GEPA builds it (`reflective.py`); the proposer runs inside `dspy.context(lm=reflection_lm)`, as in
  dspy.GEPA. The engine journals its answers by request, so a resumed run replays them.

Both run on the ProgramTask's worker threads (they may call LMs) under the run's concurrency limit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dspy

from ..dtypes import Usage
from ..prompt_optimization.gepa import ComponentContext, ProposalRequest, ProposalResult
from .gepa_view import Pool, instance_fronts, mean_scores
from .inputs import Split
from .program_task import ProgramTask
from .providers import as_provider_failure, usage_of
from .reflective import component_call, reflective_example, trajectory

__all__ = ["DSPyComponentSelector", "DSPyProposer", "SelectorState"]


@dataclass
class SelectorState:
    """What a `ReflectionComponentSelector` reads of gepa's GEPAState, as of the step's plan (the comparable
    candidates in pool order, their scores keyed by instance id). A fresh copy per call: changes a selector
    makes are not kept. Every candidate's round-robin pointer is the step number modulo the number of
    predictors, so gepa's `RoundRobinReflectionComponentSelector` cycles through the predictors step by step."""

    i: int
    list_of_named_predictors: list[str]
    program_candidates: list[dict[str, str]]
    parent_program_for_candidate: list[list[int | None]]
    prog_candidate_val_subscores: list[dict[int, float]]
    prog_candidate_objective_scores: list[dict[str, float]]
    num_metric_calls_by_discovery: list[int]
    named_predictor_id_to_update_next_for_program_candidate: list[int]

    @classmethod
    def of(cls, pool: Pool, step: int, components: Sequence[str]) -> SelectorState:
        return cls(
            i=step, list_of_named_predictors=list(components),
            program_candidates=[dict(r.candidate.instructions) for r in pool.records],
            parent_program_for_candidate=pool.parents(),
            prog_candidate_val_subscores=[dict(s) for s in pool.subscores],
            prog_candidate_objective_scores=pool.objective_aggregates(),
            num_metric_calls_by_discovery=pool.discovery_counts(),
            named_predictor_id_to_update_next_for_program_candidate=[step % len(components)] * len(pool.records),
        )

    @property
    def program_full_scores_val_set(self) -> list[float]:
        return mean_scores(self.prog_candidate_val_subscores)

    @property
    def per_program_tracked_scores(self) -> list[float]:
        return self.program_full_scores_val_set

    @property
    def pareto_front_valset(self) -> dict[int, float]:
        fronts = instance_fronts(self.prog_candidate_val_subscores)
        return {i: self.prog_candidate_val_subscores[next(iter(ks))][i] for i, ks in fronts.items()}

    @property
    def program_at_pareto_front_valset(self) -> dict[int, set[int]]:
        return instance_fronts(self.prog_candidate_val_subscores)

    def get_pareto_front_mapping(self) -> dict[int, set[int]]:
        return self.program_at_pareto_front_valset

    def get_program_average_val_subset(self, program_idx: int) -> tuple[float, int]:
        scores = self.prog_candidate_val_subscores[program_idx]
        return mean_scores([scores])[0], len(scores)


class DSPyComponentSelector:
    """A DSPy/gepa `ReflectionComponentSelector` callable as the engine's ComponentSelector (module doc).
    For a merge step, `candidate` is the merged candidate and `candidate_idx` its first parent."""

    def __init__(self, selector: Callable[..., Any], task: ProgramTask, split: Split, compared_split: str) -> None:
        self.selector, self.task, self.split, self.compared_split = selector, task, split, compared_split

    async def select(self, context: ComponentContext) -> Sequence[str]:
        key = context.candidate.key
        remembered = self.task.memory.selection(context.step, key)
        if remembered is not None:  # a resumed run: the choice made from the traces it no longer has
            return remembered
        pool = Pool.of(context.population, _compared(context, self.compared_split), self.compared_split,
                       self.split.instance_id)
        state = SelectorState.of(pool, context.step, context.components)
        runs = [trajectory(n, self.task.run_record(key, r.sample_index), r, self.task.examples[r.sample_index])
                for n, r in enumerate(context.rollouts)]
        scores = [r.score for r in context.rollouts]
        picked = await self.task.call_in_thread(self.selector, state, runs, scores,
                                                pool.index(context.candidate_id),
                                                dict(context.candidate.instructions))
        if isinstance(picked, str) or not isinstance(picked, Sequence):
            raise TypeError(f"component_selector must return a list of predictor names, but returned {picked!r}")
        self.task.memory.add_selection(context.step, key, [str(c) for c in picked])
        return list(picked)


def _compared(context: ComponentContext, split: str) -> list[int]:
    return sorted({i for r in context.population for i in (r.val_scores if split == "val" else r.train_scores)})


class DSPyProposer:
    """A DSPy/gepa `ProposalFn` as the engine's Proposer (module doc). `raw`: hand the reflective dataset's
    values over unconverted (DSPy does that for its built-in InstructionProposer)."""

    def __init__(self, proposer: Callable[..., Any], task: ProgramTask, reflection_lm: Any) -> None:
        from dspy.teleprompt.gepa.instruction_proposal import InstructionProposer

        self.proposer, self.task, self.reflection_lm = proposer, task, reflection_lm
        self.raw = isinstance(proposer, InstructionProposer)

    async def propose(self, request: ProposalRequest) -> ProposalResult:
        dataset = {c: self._examples(request, c) for c in request.components}
        dataset = {c: items for c, items in dataset.items() if items}  # dspy.GEPA leaves empty ones out
        if not dataset:
            return ProposalResult(rejected=("no reflective example for "
                                            f"{list(request.components)} (every run failed or was left out)",))
        texts, usage = await self.task.call_in_thread(self._call, dict(request.candidate.instructions), dataset,
                                                      list(request.components))
        if not isinstance(texts, Mapping) or not all(isinstance(v, str) for v in texts.values()):
            raise TypeError(f"instruction_proposer must return a dict of component name -> instruction text, but "
                            f"returned {texts!r:.200}")
        return ProposalResult({str(k): v for k, v in texts.items()}, usage=usage, requests=usage.calls)

    def _examples(self, request: ProposalRequest, component: str) -> list[dict[str, Any]]:
        key, out = request.candidate.key, []
        for rollout in request.evidence.get(component, ()):
            record = self.task.run_record(key, rollout.sample_index)
            call = None if record is None else component_call(
                record, key, rollout.sample_index, component,
                failures=self.task.options.add_format_failure_as_feedback)
            if record is not None and call is None:
                continue  # the predictor made no usable call in this run
            out.append(reflective_example(call, rollout, raw=self.raw))
        return out

    def _call(self, candidate: dict[str, str], dataset: dict[str, list[dict[str, Any]]], components: list[str]
              ) -> tuple[Any, Usage]:
        context = dspy.context(lm=self.reflection_lm) if self.reflection_lm is not None else contextlib.nullcontext()
        try:
            with context, dspy.track_usage() as tracker:
                texts = self.proposer(candidate=candidate, reflective_dataset=dataset,
                                      components_to_update=components)
        except Exception as exc:
            raise as_provider_failure(exc, self.reflection_lm) from None  # an outage counts; a bug is itself
        return texts, usage_of(tracker, [self.reflection_lm])
