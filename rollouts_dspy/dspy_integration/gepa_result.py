"""`detailed_results` of RolloutsGEPA: a `DspyGEPAResult` (dspy.GEPA's own result class) filled field by field
as dspy.GEPA fills it, plus the engine's candidate ids, the instances candidates were compared on and the
engine's choice.

Every field is about the pool of compared candidates (`gepa_view.Pool`): the seed program is `candidates[0]`
with `parents[0] == [None]`, and scores cover the samples candidates were compared on -- the whole valset when
it has at most `pareto_size` examples (60 by default), else a seeded sample of it (`compared_ids` lists them;
`config={"pareto_size": len(valset)}` compares on all of it). Scores are the metric's, on its own scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.teleprompt.gepa.gepa import DspyGEPAResult

from ..prompt_optimization.types import SearchOutcome
from .candidates import apply_candidate
from .gepa_view import Pool
from .inputs import Split
from .run_memory import RunMemory

__all__ = ["RolloutsGEPAResult", "detailed_results"]


@dataclass(frozen=True)
class RolloutsGEPAResult(DspyGEPAResult):
    """dspy.GEPA's result, plus `candidate_ids` (the engine's record ids, aligned with `candidates`),
    `compared_ids` (the instance ids candidates were compared on: valset positions, or trainset positions when
    compile got no valset) and `chosen_idx`: the candidate `compile` returned. `best_idx` is that choice (the
    engine breaks ties in aggregate score by age, as dspy.GEPA takes the first maximum)."""

    candidate_ids: list[str] = field(default_factory=list)
    compared_ids: list[int] = field(default_factory=list)
    chosen_idx: int | None = None

    @property
    def best_idx(self) -> int:
        if self.chosen_idx is not None:
            return self.chosen_idx
        return super().best_idx


def _best_outputs(pool: Pool, fronts: Mapping[int, set[int]], split: Split, compared: list[int],
                  memory: RunMemory) -> dict[int, list[tuple[int, dspy.Prediction]]]:
    """For each compared instance, (candidate, Prediction) of the candidates with its best score, oldest first
    (as dspy.GEPA appends them); a candidate whose Prediction was never kept (its run failed) is left out."""
    out: dict[int, list[tuple[int, dspy.Prediction]]] = {}
    for index in compared:
        vid = split.instance_id(index)
        found = [(k, memory.prediction(pool.records[k].candidate.key, index)) for k in sorted(fronts.get(vid, ()))]
        out[vid] = [(k, pred) for k, pred in found if pred is not None]
    return out


def detailed_results(student: dspy.Module, outcome: SearchOutcome, split: Split, config: Any,
                     outputs: RunMemory | None) -> RolloutsGEPAResult:
    """The DspyGEPAResult of `outcome`; `outputs` (holding the kept Predictions) with track_best_outputs."""
    compared = sorted(outcome.compared_on)
    pool = Pool.of(outcome.records, compared, outcome.compared_split, split.instance_id)
    fronts = pool.instance_fronts()
    objectives = pool.objective_aggregates()
    has_objectives = any(objectives)
    per_objective, objective_front = pool.objective_fronts()
    return RolloutsGEPAResult(
        candidates=[apply_candidate(student, r.candidate) for r in pool.records],
        parents=pool.parents(),
        val_aggregate_scores=pool.aggregate_scores(),
        val_subscores=list(pool.subscores),
        per_val_instance_best_candidates=fronts,
        discovery_eval_counts=pool.discovery_counts(),
        best_outputs_valset=None if outputs is None else _best_outputs(pool, fronts, split, compared, outputs),
        total_metric_calls=outcome.rollouts_used,
        num_full_val_evals=len(pool.records),
        log_dir=config.checkpoint_dir,
        seed=config.seed,
        val_aggregate_subscores=objectives if has_objectives else None,
        per_objective_best_candidates=per_objective if has_objectives else None,
        objective_pareto_front=objective_front if has_objectives else None,
        candidate_ids=[r.id for r in pool.records],
        compared_ids=[split.instance_id(i) for i in compared],
        chosen_idx=pool.index(outcome.best_id),
    )
