"""What RolloutsMIPRO attaches to the optimized program, as MIPROv2 writes it (with `track_stats=True`, its
default): `trial_logs`, `score`, `candidate_programs`, `mb_candidate_programs`, `total_calls`,
`prompt_model_total_calls`. Scores are percentages (0-100), as `dspy.Evaluate` reports them.

MIPROv2 numbers its trial logs from 1: trial 1 is the default program's full evaluation, then one entry per
minibatch trial (`mb_score`, `mb_program`, the chosen instruction and demo-set index per predictor), then the
full (validation-set) evaluations (`full_eval_score`, `full_eval_program`). `total_eval_calls_so_far` counts
rollouts; the validation-set evaluations happen at the end of the run here, so theirs is the run's total.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dspy

from ..prompt_optimization.types import CandidateRecord, SearchOutcome
from .candidates import apply_candidate

__all__ = ["attach_mipro_results"]


def _pct(scores: Mapping[int, float]) -> float:
    return 100 * sum(scores.values()) / len(scores)


def _save(program: dspy.Module, log_dir: str | None, trial_num: int, note: str = "") -> str | None:
    """MIPROv2's `<log_dir>/evaluated_programs/program_<n>[_note].json`, or None without a log_dir."""
    if log_dir is None:
        return None
    folder = os.path.join(log_dir, "evaluated_programs")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"program_{trial_num}{'_' + note if note else ''}.json")
    program.save(path)
    return path


def _choice_keys(components: list[str], choice: Mapping[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, name in enumerate(components):
        instruction, demos = choice[name]
        out[f"{i}_predictor_instruction"] = int(instruction)
        out[f"{i}_predictor_demos"] = int(demos)
    return out


def attach_mipro_results(best: dspy.Module, student: dspy.Module, outcome: SearchOutcome, config: Any,
                         trials: Mapping[int, Any], *, total_calls: int, prompt_calls: int,
                         log_dir: str | None) -> None:
    """Set MIPROv2's attributes on `best`. `trials` are the engine's trials by number (choice, minibatch
    scores, mean, stats); validation-set means are the full evaluations."""
    components = [name for name, _ in student.named_predictors()]
    val = set(config.val_seeds)
    records = {r.id: r for r in outcome.records}
    initial = outcome.records[0] if outcome.records else None
    programs: dict[str, dspy.Module] = {}

    def program(record: CandidateRecord) -> dspy.Module:
        if record.id not in programs:
            programs[record.id] = apply_candidate(student, record.candidate)
        return programs[record.id]

    full = [r for r in outcome.records if val and val <= set(r.val_scores)]
    logs: dict[int, dict[str, Any]] = {}
    n = 1
    if initial is not None and initial in full:
        logs[n] = {"full_eval_program_path": _save(program(initial), log_dir, -1),
                   "full_eval_score": _pct(initial.val_scores), "total_eval_calls_so_far": outcome.rollouts_used,
                   "full_eval_program": program(initial).deepcopy()}
    minibatch = min(config.minibatch_size, len(config.train_seeds)) < len(config.train_seeds)
    kind = "mb" if minibatch else "full_eval"
    mb_entries = []
    for number, trial in sorted(trials.items()):
        n += 1
        record = records.get(trial.combo)
        if record is None or trial.value is None:
            continue
        logs[n] = {**_choice_keys(components, trial.choice),
                   f"{kind}_program_path": _save(program(record), log_dir, n),
                   f"{kind}_score": 100 * trial.value, "total_eval_calls_so_far": trial.stats.rollouts_used,
                   f"{kind}_program": program(record).deepcopy()}
        mb_entries.append({"score": 100 * trial.value, "program": program(record), "full_eval": not minibatch,
                           "id": record.id, "trial": number})
    for record in full:
        if record is initial:
            continue
        n += 1
        logs[n] = {"total_eval_calls_so_far": outcome.rollouts_used,
                   "full_eval_program_path": _save(program(record), log_dir, n, "full_eval"),
                   "full_eval_program": program(record), "full_eval_score": _pct(record.val_scores)}
    candidates = [{"score": _pct(r.val_scores), "program": program(r), "full_eval": True, "id": r.id}
                  for r in full]
    # Stable sorts: among equal scores the engine's choice comes first, so candidate_programs[0] is `best`.
    candidates.sort(key=lambda e: e["id"] != outcome.best_id)
    candidates.sort(key=lambda e: -e["score"])
    mb_entries.sort(key=lambda e: -e["score"])
    chosen = records[outcome.best_id]
    best.trial_logs = logs
    best.score = _pct(chosen.val_scores) if chosen.val_scores else (
        _pct(chosen.train_scores) if chosen.train_scores else 0.0)
    best.candidate_programs = candidates
    best.mb_candidate_programs = mb_entries
    best.total_calls = total_calls
    best.prompt_model_total_calls = prompt_calls
