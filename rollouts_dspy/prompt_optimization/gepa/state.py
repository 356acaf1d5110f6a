"""The GEPA engine's state as one serializable value, and its JSON checkpoint.

Everything a resumed run needs is here: the candidate entries (content, lineage, per-sample scores), the current
population, the number of finished generations, the history, the rollout cache (every paid-for task rollout) and
the reflection answers already received. No RNG state is saved: every random decision derives from
(seed, generation), so replaying from a generation boundary makes the same decisions.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...dtypes import Message
from ...errors import CheckpointError
from ..checkpoint import read_json_state, write_json_atomic
from ..protocols import Rollout
from ..types import Candidate, CandidateRecord, GenerationStats

__all__ = ["CHECKPOINT_FILE", "Entry", "GEPAState", "load_checkpoint", "message_digest", "save_checkpoint",
           "write_text_checkpoint"]

CHECKPOINT_FILE = "gepa_state.json"
KIND = "rollouts-dspy/gepa-state"
VERSION = 1


@dataclass
class Entry:
    """One distinct candidate (identical content shares one entry). `full` is True once it was evaluated on every
    sample of the selection split (all train_seeds, or all val_seeds with pareto_split "val"); only full entries
    compete for Pareto wins, elites and best."""

    id: str
    candidate: Candidate
    generation: int
    origin: str
    parents: tuple[str, ...] = ()
    component: str = ""
    train: dict[int, float] = field(default_factory=dict)
    val: dict[int, float] = field(default_factory=dict)
    failed: set[tuple[str, int]] = field(default_factory=set)
    full: bool = False

    def absorb(self, rollouts: Mapping[int, Rollout], split: str) -> None:
        scores = self.train if split == "train" else self.val
        for i, r in rollouts.items():
            if r.score is None:
                self.failed.add((split, i))
            else:
                scores[i] = float(r.score)

    @property
    def train_mean(self) -> float | None:
        return sum(self.train.values()) / len(self.train) if self.train else None

    def to_record(self) -> CandidateRecord:
        return CandidateRecord(
            id=self.id, candidate=self.candidate, generation=self.generation, origin=self.origin,
            parents=self.parents, train_scores=dict(sorted(self.train.items())),
            val_scores=dict(sorted(self.val.items())), failures=len(self.failed),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "candidate": self.candidate.to_dict(), "generation": self.generation,
            "origin": self.origin, "parents": list(self.parents), "component": self.component,
            "train": [[i, s] for i, s in sorted(self.train.items())],
            "val": [[i, s] for i, s in sorted(self.val.items())],
            "failed": sorted([split, i] for split, i in self.failed), "full": self.full,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Entry:
        return cls(
            id=d["id"], candidate=Candidate.from_dict(d["candidate"]), generation=int(d["generation"]),
            origin=d["origin"], parents=tuple(d["parents"]), component=d.get("component", ""),
            train={int(i): float(s) for i, s in d["train"]}, val={int(i): float(s) for i, s in d["val"]},
            failed={(str(split), int(i)) for split, i in d["failed"]}, full=bool(d["full"]),
        )


@dataclass
class GEPAState:
    """The whole search: entries in creation order, the population (entry ids), finished generations, history,
    usage totals, the rollout cache {(candidate key, sample index): Rollout} and reflection answers by request."""

    entries: dict[str, Entry] = field(default_factory=dict)
    population: list[str] = field(default_factory=list)
    generation: int = 0
    history: list[GenerationStats] = field(default_factory=list)
    tokens: int = 0
    cost_usd: float = 0.0
    stop_reason: str = ""
    stale: int = 0  # generations in a row without a new evaluated child
    reflection_requests: int = 0  # reflection/merge requests made by finished generations
    rollouts: dict[tuple[str, int], Rollout] = field(default_factory=dict)
    reflections: dict[str, str] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)

    def add(self, candidate: Candidate, generation: int, origin: str, parents: Sequence[str] = (),
            component: str = "") -> tuple[Entry, bool]:
        """The entry for `candidate` (an existing one when the content is already known) and whether it is new."""
        known = self.by_key.get(candidate.key)
        if known is not None:
            return self.entries[known], False
        entry = Entry(f"c{len(self.entries)}", candidate, generation, origin, tuple(parents), component)
        self.entries[entry.id] = entry
        self.by_key[candidate.key] = entry.id
        return entry, True

    def full_entries(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.full and (e.train or e.val)]

    def to_dict(self, *, caches: bool = True) -> dict[str, Any]:
        """The JSON-safe state; `caches=False` leaves out the rollouts and reflection answers."""
        out = {
            "entries": [e.to_dict() for e in self.entries.values()],
            "population": list(self.population),
            "generation": self.generation,
            "history": [asdict(h) for h in self.history],
            "tokens": self.tokens,
            "cost_usd": self.cost_usd,
            "stop_reason": self.stop_reason,
            "stale": self.stale,
            "reflection_requests": self.reflection_requests,
        }
        if caches:
            out["rollouts"] = [[k, i, r.to_dict()] for (k, i), r in self.rollouts.items()]
            out["reflections"] = dict(self.reflections)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GEPAState:
        state = cls(
            population=list(d["population"]), generation=int(d["generation"]),
            history=[GenerationStats(**h) for h in d["history"]], tokens=int(d["tokens"]),
            cost_usd=float(d["cost_usd"]), stop_reason=d.get("stop_reason", ""),
            stale=int(d.get("stale", 0)), reflection_requests=int(d.get("reflection_requests", 0)),
            rollouts={(k, int(i)): Rollout.from_dict(r) for k, i, r in d["rollouts"]},
            reflections=dict(d.get("reflections", {})),
        )
        for raw in d["entries"]:
            entry = Entry.from_dict(raw)
            state.entries[entry.id] = entry
            state.by_key[entry.candidate.key] = entry.id
        return state


def message_digest(messages: Sequence[Message]) -> str:
    """A stable key for one reflection request (for replaying answers on resume)."""
    blob = json.dumps([m.to_openai() for m in messages], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def save_checkpoint(directory: str, fingerprint: Mapping[str, Any], state: GEPAState | Mapping[str, Any], *,
                    sync: bool = True) -> None:
    """Write the state (a GEPAState or its dict), atomically and fsynced unless `sync=False`."""
    body = state.to_dict() if isinstance(state, GEPAState) else dict(state)
    data = {"kind": KIND, "version": VERSION, "fingerprint": dict(fingerprint), "state": body}
    if sync:
        write_json_atomic(Path(directory) / CHECKPOINT_FILE, data)
        return
    write_text_checkpoint(directory, json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False),
                          sync=False)


def write_text_checkpoint(directory: str, text: str, *, sync: bool) -> None:
    """Write an already-encoded checkpoint atomically (temp file + rename). `sync=False` skips the fsync: still
    atomic against a killed process (the rename is), only not against a power cut; used for the frequent
    mid-generation saves."""
    path = Path(directory) / CHECKPOINT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(directory: str, fingerprint: Mapping[str, Any]) -> GEPAState | None:
    """The saved state, None when there is none; CheckpointError when it belongs to another run setup."""
    path = Path(directory) / CHECKPOINT_FILE
    data = read_json_state(path, kind=KIND, version=VERSION)
    if data is None:
        return None
    saved = data.get("fingerprint", {})
    wanted = json.loads(json.dumps(dict(fingerprint)))
    if not isinstance(saved, dict):
        raise CheckpointError(f"checkpoint {path} is damaged (its fingerprint is not an object); delete it to "
                              "start over")
    if saved != wanted:
        diff = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
        raise CheckpointError(
            f"checkpoint {path} was written by a run with different settings ({', '.join(diff)} differ); "
            "use the same config, dataset and initial prompt to resume, or another checkpoint_dir to start over"
        )
    try:
        return GEPAState.from_dict(data["state"])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"checkpoint {path} is damaged ({type(exc).__name__}: {exc}); delete it to start "
                              "over") from None
