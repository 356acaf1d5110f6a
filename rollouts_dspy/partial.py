"""The best candidate found so far by an interrupted run, read from its checkpoint (used by the CLI on Ctrl-C).

The engines write their checkpoint after every generation (GEPA) or batch of trials (MIPRO) and once more when
interrupted, so the best template so far can be recovered without the run's return value. The states are read
with the engines' own classes, so this module follows their formats.
"""

from __future__ import annotations

from pathlib import Path

from .prompt_optimization.checkpoint import read_json_state
from .prompt_optimization.types import Candidate, PromptTemplate

__all__ = ["best_so_far", "mipro_storage", "state_exists"]

MIPRO_STUDY = "mipro_study.db"


def mipro_storage(state_dir: Path) -> Path:
    """Where the CLI keeps a MIPRO run's Optuna study (its JSON state sits beside it)."""
    return state_dir / MIPRO_STUDY


def state_exists(state_dir: Path) -> bool:
    return state_dir.is_dir() and any(state_dir.iterdir())


def best_so_far(method: str, state_dir: Path, base: PromptTemplate) -> PromptTemplate | None:
    """The best measured candidate in the checkpoint as a template (score = its validation mean when the
    checkpoint has validation scores, else its training mean), or None."""
    if method == "gepa":
        return _gepa(state_dir, base)
    if method == "mipro":
        return _mipro(state_dir, base)
    raise ValueError(f"method must be 'gepa' or 'mipro', but got {method!r}")


def _gepa(state_dir: Path, base: PromptTemplate) -> PromptTemplate | None:
    """The engine's own best so far, as its last step marker in the journal recorded it."""
    from .runtime import JOURNAL_FILE, read_journal

    contents = read_journal(state_dir / JOURNAL_FILE, method="gepa", fingerprint=None)
    if contents is None or not contents.best:
        return None
    best = contents.best
    return Candidate.from_dict(best["candidate"]).to_template(base, score=best.get("score"), id=best["id"])


def _mipro(state_dir: Path, base: PromptTemplate) -> PromptTemplate | None:
    from .prompt_optimization.mipro.state import KIND, VERSION, MiproState, state_path

    data = read_json_state(state_path(str(mipro_storage(state_dir))), kind=KIND, version=VERSION)
    if data is None:
        return None
    state = MiproState.from_dict(data)
    pooled: dict[str, dict[int, float]] = {}
    choices = {}
    for _, trial in sorted(state.trials.items()):
        pooled.setdefault(trial.combo, {}).update(trial.scores)
        choices.setdefault(trial.combo, (trial.number, trial.choice))
    ranked = [(sum(s.values()) / len(s), -choices[c][0], c) for c, s in pooled.items() if s]
    if not ranked:
        return None
    mean, _, combo = max(ranked)
    number, choice = choices[combo]
    candidate = Candidate.from_template(base)
    for component, (i, d) in choice.items():
        candidate = candidate.with_instruction(component, state.instructions[component][i])
        candidate = candidate.with_demos(component, state.demo_sets[component][d])
    return candidate.to_template(base, score=mean, generation=number, id=combo)
