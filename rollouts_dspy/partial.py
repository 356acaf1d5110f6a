"""The best candidate found so far by an interrupted run, read from its checkpoint (used by the CLI on Ctrl-C).

Both engines journal their own best so far at every step (a step marker of the run's journal: GEPA per
generation, MIPRO per trial), so this module reads the engine's choice instead of making one.
"""

from __future__ import annotations

from pathlib import Path

from .prompt_optimization.types import Candidate, PromptTemplate

__all__ = ["best_so_far", "state_exists"]

METHODS = ("gepa", "mipro")


def state_exists(state_dir: Path) -> bool:
    return state_dir.is_dir() and any(state_dir.iterdir())


def best_so_far(method: str, state_dir: Path, base: PromptTemplate) -> PromptTemplate | None:
    """The engine's best so far in the checkpoint as a template (with the score the engine recorded for it), or
    None when no step has finished."""
    from .runtime import JOURNAL_FILE, read_journal

    if method not in METHODS:
        raise ValueError(f"method must be 'gepa' or 'mipro', but got {method!r}")
    contents = read_journal(state_dir / JOURNAL_FILE, method=method, fingerprint=None)
    best = None if contents is None else contents.best
    if not best:
        return None
    return Candidate.from_dict(best["candidate"]).to_template(base, score=best.get("score"),
                                                              generation=int(best.get("generation", 0)),
                                                              id=best["id"])
