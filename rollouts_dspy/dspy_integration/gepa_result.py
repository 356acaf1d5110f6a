"""`detailed_results` of RolloutsGEPA: a `DspyGEPAResult` (dspy.GEPA's own result class) filled field by field
as dspy.GEPA fills it, plus the engine's candidate ids and its choice.

The candidate pool is every candidate with a full validation evaluation, in discovery order, so the seed
program is `candidates[0]` with `parents[0] == [None]`. Validation ids are positions in the valset (in the
trainset when compile got no valset: dspy.GEPA then validates on the trainset). Scores are the metric's, on its
own scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.teleprompt.gepa.gepa import DspyGEPAResult

from ..prompt_optimization.types import CandidateRecord, SearchOutcome
from .candidates import apply_candidate
from .inputs import Split
from .program_task import ProgramTask

__all__ = ["RolloutsGEPAResult", "detailed_results"]


@dataclass(frozen=True)
class RolloutsGEPAResult(DspyGEPAResult):
    """dspy.GEPA's result, plus `candidate_ids` (the engine's record ids, aligned with `candidates`) and
    `chosen_idx`: the candidate `compile` returned. `best_idx` is that choice (the engine breaks ties in
    validation score by training score, then age; dspy.GEPA takes the first maximum)."""

    candidate_ids: list[str] = field(default_factory=list)
    chosen_idx: int | None = None

    @property
    def best_idx(self) -> int:
        if self.chosen_idx is not None:
            return self.chosen_idx
        return super().best_idx


def _mean(scores: Mapping[int, float]) -> float:
    return sum(scores.values()) / len(scores)


def _pool(outcome: SearchOutcome, val: Sequence[int]) -> list[CandidateRecord]:
    """The fully validated candidates in discovery order (the seed first)."""
    wanted = set(val)
    return [r for r in outcome.records if wanted and wanted <= set(r.val_scores)]


def _fronts(subscores: Sequence[Mapping[int, float]], ids: Sequence[int]) -> dict[int, set[int]]:
    """For each validation id, the candidates with the highest score there."""
    fronts: dict[int, set[int]] = {}
    for i in ids:
        top = max(s[i] for s in subscores)
        fronts[i] = {k for k, s in enumerate(subscores) if s[i] == top}
    return fronts


def _best_outputs(task: ProgramTask, pool: Sequence[CandidateRecord], fronts: Mapping[int, set[int]],
                  val: Sequence[int], offset: int) -> dict[int, list[tuple[int, dspy.Prediction]]]:
    """The outputs of the best candidates on each validation example (runs restored from a checkpoint have no
    Prediction in memory and are left out)."""
    out: dict[int, list[tuple[int, dspy.Prediction]]] = {}
    for index in val:
        vid = index - offset
        found = [(k, task.predictions[(pool[k].candidate.key, index)]) for k in sorted(fronts[vid])
                 if (pool[k].candidate.key, index) in task.predictions]
        out[vid] = found
    return out


def detailed_results(student: dspy.Module, outcome: SearchOutcome, split: Split, config: Any, task: ProgramTask,
                     track_best_outputs: bool) -> RolloutsGEPAResult:
    val = list(config.val_seeds)
    offset = len(split.train_seeds) if split.val_seeds else 0
    pool = _pool(outcome, val)
    index = {r.id: k for k, r in enumerate(pool)}
    subscores = [{i - offset: r.val_scores[i] for i in val} for r in pool]
    fronts = _fronts(subscores, [i - offset for i in val]) if pool else {}
    by_generation = {s.generation: s.rollouts_used for s in outcome.history}
    return RolloutsGEPAResult(
        candidates=[apply_candidate(student, r.candidate) for r in pool],
        parents=[[index.get(p) for p in r.parents] or [None] for r in pool],
        val_aggregate_scores=[_mean(r.val_scores) for r in pool],
        val_subscores=subscores,
        per_val_instance_best_candidates=fronts,
        discovery_eval_counts=[0 if r.origin == "initial" else by_generation.get(r.generation, 0) for r in pool],
        best_outputs_valset=_best_outputs(task, pool, fronts, val, offset) if track_best_outputs else None,
        total_metric_calls=outcome.rollouts_used,
        num_full_val_evals=len(pool),
        log_dir=config.checkpoint_dir,
        seed=config.seed,
        candidate_ids=[r.id for r in pool],
        chosen_idx=index.get(outcome.best_id),
    )
