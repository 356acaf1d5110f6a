"""The best candidate found so far by an interrupted run, read from its checkpoint (used by the CLI on Ctrl-C).

GEPA writes its checkpoint after every generation and once more when interrupted; the states are read with the
engine's own classes. MIPRO journals its own best so far at every trial (a step marker of the run's journal), so
this module reads that choice instead of making one.
"""

from __future__ import annotations

from pathlib import Path

from .prompt_optimization.checkpoint import read_json_state
from .prompt_optimization.types import Candidate, PromptTemplate

__all__ = ["best_so_far", "state_exists"]


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
    from .prompt_optimization.gepa.state import CHECKPOINT_FILE, KIND, VERSION, GEPAState

    data = read_json_state(state_dir / CHECKPOINT_FILE, kind=KIND, version=VERSION)
    if data is None:
        return None
    state = GEPAState.from_dict(data["state"])
    entries = state.full_entries()
    # Validation scores decide when the checkpoint has them (pareto_split "val", or validated candidates);
    # ranking a mix of validation and training means would compare different samples.
    validated = [e for e in entries if e.val]
    if validated:
        scored = [(sum(e.val.values()) / len(e.val), -e.generation, e.id, e) for e in validated]
    else:
        scored = [(e.train_mean, -e.generation, e.id, e) for e in entries if e.train_mean is not None]
    if not scored:
        return None
    mean, _, _, entry = max(scored, key=lambda t: (t[0], t[1], t[2]))
    return entry.candidate.to_template(base, score=mean, generation=entry.generation, id=entry.id)


def _mipro(state_dir: Path, base: PromptTemplate) -> PromptTemplate | None:
    """The engine's own best so far, as its last step marker in the run's journal recorded it."""
    from .runtime import JOURNAL_FILE, read_journal

    contents = read_journal(state_dir / JOURNAL_FILE, method="mipro", fingerprint=None)
    best = None if contents is None else contents.best
    if not best:
        return None
    return Candidate.from_dict(best["candidate"]).to_template(base, score=best["score"],
                                                              generation=int(best["generation"]), id=best["id"])
