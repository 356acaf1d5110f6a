"""The MIPRO engine's state as one serializable value: proposals, demo sets, every trial, every full evaluation
and validation, and every score the engine was told, per candidate and sample.

Nothing here is written to disk: the run's journal (rollouts_dspy.runtime) is the checkpoint, and a resumed run
rebuilds this state by replaying the engine against it. `to_dict`/`from_dict` exist so the state can be shown,
compared and tested as one value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..types import GenerationStats

__all__ = ["FullEvaluation", "MiproState", "TrialEntry"]

Pair = tuple[str, int]


@dataclass
class TrialEntry:
    """One trial: which combination, on which samples; once told, what it scored and the run's stats then."""

    number: int
    combo: str
    choice: dict[str, tuple[int, int]]
    indices: tuple[int, ...]
    scores: dict[int, float] = field(default_factory=dict)
    value: float | None = None
    told: bool = False
    stats: GenerationStats | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "combo": self.combo, "choice": {c: list(v) for c, v in self.choice.items()},
                "indices": list(self.indices), "scores": {str(k): v for k, v in self.scores.items()},
                "value": self.value, "told": self.told, "stats": None if self.stats is None else vars(self.stats)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialEntry:
        return cls(int(d["number"]), d["combo"], {c: (int(v[0]), int(v[1])) for c, v in d["choice"].items()},
                   tuple(int(i) for i in d["indices"]), {int(k): float(v) for k, v in d["scores"].items()},
                   d["value"], bool(d["told"]), None if d["stats"] is None else GenerationStats(**d["stats"]))


@dataclass
class FullEvaluation:
    """A combination scored on every training sample, launched after trial `after_trial` was told and told to the
    engine before trial `tell_before` (None: at the end of the search)."""

    combo: str
    after_trial: int
    tell_before: int | None
    told: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class MiproState:
    components: tuple[str, ...]
    instructions: dict[str, list[str]] = field(default_factory=dict)
    demo_sets: dict[str, list[tuple[dict[str, Any], ...]]] = field(default_factory=dict)
    summary: str = ""
    trials: dict[int, TrialEntry] = field(default_factory=dict)
    full: dict[str, FullEvaluation] = field(default_factory=dict)  # by combo, in launch order
    validated: list[str] = field(default_factory=list)
    choices: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)  # combo -> choice, first-seen order
    scores: dict[str, dict[int, float]] = field(default_factory=dict)  # candidate key -> sample -> told score
    failures: dict[str, int] = field(default_factory=dict)  # candidate key -> told rollouts without a score
    stop_reason: str = "num_trials"
    best_shown: float | None = None  # the best trial score shown so far (StepFinished.best_so_far)

    def to_dict(self) -> dict[str, Any]:
        return {
            "components": list(self.components), "instructions": self.instructions,
            "demo_sets": {c: [[dict(d) for d in s] for s in sets] for c, sets in self.demo_sets.items()},
            "summary": self.summary, "trials": [t.to_dict() for _, t in sorted(self.trials.items())],
            "full": [f.to_dict() for f in self.full.values()], "validated": list(self.validated),
            "choices": {k: {c: list(v) for c, v in ch.items()} for k, ch in self.choices.items()},
            "scores": {k: {str(i): s for i, s in sorted(v.items())} for k, v in sorted(self.scores.items())},
            "failures": dict(sorted(self.failures.items())), "stop_reason": self.stop_reason,
            "best_shown": self.best_shown,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MiproState:
        return cls(
            components=tuple(d["components"]), instructions={c: list(v) for c, v in d["instructions"].items()},
            demo_sets={c: [tuple(dict(x) for x in s) for s in sets] for c, sets in d["demo_sets"].items()},
            summary=d["summary"], trials={t["number"]: TrialEntry.from_dict(t) for t in d["trials"]},
            full={f["combo"]: FullEvaluation(**f) for f in d["full"]}, validated=list(d["validated"]),
            choices={k: {c: (int(v[0]), int(v[1])) for c, v in ch.items()} for k, ch in d["choices"].items()},
            scores={k: {int(i): float(s) for i, s in v.items()} for k, v in d["scores"].items()},
            failures={k: int(v) for k, v in d["failures"].items()}, stop_reason=d["stop_reason"],
            best_shown=d["best_shown"],
        )
