"""The MIPRO run's state as one serializable value: proposals, demo sets, every trial, every combination's
scores source (the rollout cache). Saved as JSON next to the Optuna SQLite study so a run can resume."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import CheckpointError
from ..checkpoint import read_json_state, write_json_atomic
from ..protocols import Rollout
from ..types import GenerationStats

__all__ = ["KIND", "VERSION", "MiproState", "TrialEntry", "fingerprint", "state_path"]

KIND = "mipro"
VERSION = 1


def state_path(storage: str) -> Path:
    """The JSON state that sits beside the SQLite study."""
    return Path(f"{storage}.state.json")


def fingerprint(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class TrialEntry:
    """One finished trial: which combination, on which samples, what it scored, and the run's stats then."""

    number: int
    combo: str
    choice: dict[str, tuple[int, int]]
    scores: dict[int, float]
    value: float | None
    stats: GenerationStats

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "combo": self.combo, "choice": {c: list(v) for c, v in self.choice.items()},
                "scores": {str(k): v for k, v in self.scores.items()}, "value": self.value,
                "stats": vars(self.stats)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialEntry:
        return cls(int(d["number"]), d["combo"], {c: (int(v[0]), int(v[1])) for c, v in d["choice"].items()},
                   {int(k): float(v) for k, v in d["scores"].items()}, d["value"], GenerationStats(**d["stats"]))


@dataclass
class MiproState:
    fingerprint: str
    instructions: dict[str, list[str]]
    demo_sets: dict[str, list[tuple[dict[str, Any], ...]]]
    summary: str = ""
    trials: dict[int, TrialEntry] = field(default_factory=dict)
    full_evaluated: list[str] = field(default_factory=list)
    cache: dict[tuple[str, int], Rollout] = field(default_factory=dict)
    rollouts_used: int = 0
    cost_usd: float = 0.0
    tokens: int = 0
    stage: str = "setup"  # "setup" until demo sets and proposals exist, then "search"
    pending_full_eval: bool = False  # a batch finished that owes a full evaluation (done before the next batch)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND, "version": VERSION, "fingerprint": self.fingerprint, "summary": self.summary,
            "instructions": self.instructions,
            "demo_sets": {c: [[dict(d) for d in s] for s in sets] for c, sets in self.demo_sets.items()},
            "trials": [t.to_dict() for _, t in sorted(self.trials.items())],
            "full_evaluated": list(self.full_evaluated),
            "cache": [[key, index, r.to_dict()] for (key, index), r in sorted(self.cache.items())],
            "rollouts_used": self.rollouts_used, "cost_usd": self.cost_usd, "tokens": self.tokens,
            "stage": self.stage, "pending_full_eval": self.pending_full_eval,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MiproState:
        trials = [TrialEntry.from_dict(t) for t in d["trials"]]
        return cls(
            fingerprint=d["fingerprint"], summary=d.get("summary", ""),
            instructions={c: list(v) for c, v in d["instructions"].items()},
            demo_sets={c: [tuple(dict(x) for x in s) for s in sets] for c, sets in d["demo_sets"].items()},
            trials={t.number: t for t in trials}, full_evaluated=list(d.get("full_evaluated", [])),
            cache={(key, int(index)): Rollout.from_dict(r) for key, index, r in d.get("cache", [])},
            rollouts_used=int(d.get("rollouts_used", 0)), cost_usd=float(d.get("cost_usd", 0.0)),
            tokens=int(d.get("tokens", 0)), stage=str(d.get("stage", "search")),
            pending_full_eval=bool(d.get("pending_full_eval", False)),
        )

    def save(self, storage: str | None) -> None:
        if storage is not None:
            write_json_atomic(state_path(storage), self.to_dict())

    @classmethod
    def load(cls, storage: str | None, expected_fingerprint: str) -> MiproState | None:
        """The saved state of this run, None for a fresh run. A state of another run (different config, task
        or initial candidate) is a CheckpointError: resuming it would mix two experiments."""
        if storage is None:
            return None
        data = read_json_state(state_path(storage), kind=KIND, version=VERSION)
        if data is None:
            if Path(storage).exists() and Path(storage).stat().st_size > 0:
                raise CheckpointError(f"the study {storage} exists but its state {state_path(storage)} is missing; "
                                      "delete the study to start over")
            return None
        if not isinstance(data, dict) or data.get("fingerprint") != expected_fingerprint:
            raise CheckpointError(
                f"the MIPRO state {state_path(storage)} belongs to a different run (config, initial candidate or "
                "components differ; only num_trials, the budget, concurrency and num_top_for_validation may "
                "change on resume); use another storage path or delete it to start over"
            )
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise CheckpointError(f"the MIPRO state {state_path(storage)} is corrupted ({exc}); "
                                  "delete it and the study to start over") from None
