"""The GEPA search as one value: every candidate entry (content, lineage, per-sample scores), the steps told, the
engine's spend, the history. Changed only by the engine's `tell`, in step order.

Nothing random is stored: every random decision derives from (seed, step), and a resumed run rebuilds this state
by replaying the engine against the journal (runtime/journal.py). `to_dict` is a snapshot for reading (the best so
far, reports), not the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ...dtypes import Usage
from ..protocols import Rollout
from ..types import Candidate, CandidateRecord, GenerationStats, mean_of

__all__ = ["Entry", "GEPAState"]


@dataclass
class Entry:
    """One distinct candidate (identical content shares one entry). `full` once it was scored on the whole Pareto
    set: only full entries are compared (Pareto front, parents, best)."""

    id: str
    candidate: Candidate
    generation: int
    origin: str
    parents: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    train: dict[int, float] = field(default_factory=dict)
    val: dict[int, float] = field(default_factory=dict)
    objectives: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    tokens: dict[int, int] = field(default_factory=dict)  # tokens of each measured rollout (the cost objective)
    failed: int = 0
    full: bool = False
    compared_at: int | None = None  # rollouts used when it became full (before its Pareto-set evaluation)

    def absorb(self, rollouts: Mapping[int, Rollout], split: str) -> None:
        scores = self.train if split == "train" else self.val
        for i, r in rollouts.items():
            if r.score is None:
                self.failed += 1
            else:
                scores[i] = float(r.score)
                self.tokens[i] = r.usage.total_tokens
                if r.objectives:
                    self.objectives.setdefault(split, {})[i] = dict(r.objectives)

    def scores(self, split: str) -> dict[int, float]:
        return self.train if split == "train" else self.val

    def to_record(self) -> CandidateRecord:
        return CandidateRecord(
            id=self.id, candidate=self.candidate, generation=self.generation, origin=self.origin,
            parents=self.parents, train_scores=dict(sorted(self.train.items())),
            val_scores=dict(sorted(self.val.items())), failures=self.failed,
            train_objectives=dict(sorted(self.objectives.get("train", {}).items())),
            val_objectives=dict(sorted(self.objectives.get("val", {}).items())),
            compared_at=self.compared_at,
        )


@dataclass
class Spend:
    """What the told steps used, each (candidate, sample) rollout and each answer counted once (deterministic)."""

    rollouts: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True

    def add(self, usage: Usage, rollouts: int = 0) -> None:
        self.rollouts += rollouts
        self.tokens += usage.total_tokens
        if usage.cost_usd is None:
            self.cost_known = self.cost_known and not usage.calls
        else:
            self.cost_usd += usage.cost_usd

    @property
    def cost(self) -> float | None:
        return self.cost_usd if self.cost_known else None


@dataclass
class GEPAState:
    entries: dict[str, Entry] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    told: int = 0  # steps told so far (the next step to tell)
    history: list[GenerationStats] = field(default_factory=list)
    spend: Spend = field(default_factory=Spend)
    charged: set[tuple[str, int]] = field(default_factory=set)
    stale: int = 0  # generations in a row without a new fully scored candidate
    reflection_requests: int = 0
    merges: int = 0
    stop_reason: str = ""
    generation_new: int = 0  # new full entries in the generation being told
    generation_made: int = 0  # new entries (full or not) in the generation being told

    def add(self, candidate: Candidate, generation: int, origin: str, parents: Sequence[str] = (),
            components: Sequence[str] = ()) -> tuple[Entry, bool]:
        """The entry for `candidate` (an existing one when the content is already known) and whether it is new."""
        known = self.by_key.get(candidate.key)
        if known is not None:
            return self.entries[known], False
        entry = Entry(f"c{len(self.entries)}", candidate, generation, origin, tuple(parents), tuple(components))
        self.entries[entry.id] = entry
        self.by_key[candidate.key] = entry.id
        return entry, True

    def charge(self, key: str, rollouts: Mapping[int, Rollout]) -> list[Rollout]:
        """Count the rollouts of `key` the engine had not been handed before; returns them."""
        new = []
        for i, r in rollouts.items():
            if (key, i) not in self.charged:
                self.charged.add((key, i))
                self.spend.add(r.usage, rollouts=1)
                new.append(r)
        return new

    def full_entries(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.full]

    def records(self) -> tuple[CandidateRecord, ...]:
        return tuple(e.to_record() for e in self.entries.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": [asdict(e.to_record()) | {"candidate": e.candidate.to_dict(), "full": e.full}
                        for e in self.entries.values()],
            "told": self.told, "history": [asdict(h) for h in self.history], "stale": self.stale,
            "reflection_requests": self.reflection_requests, "merges": self.merges, "stop_reason": self.stop_reason,
            "spend": asdict(self.spend),
        }


def mean_on(entry: Entry, split: str, indices: Sequence[int]) -> float | None:
    """The entry's mean on `indices` of `split` (over the measured ones)."""
    scores = entry.scores(split)
    return mean_of([scores[i] for i in indices if i in scores])
