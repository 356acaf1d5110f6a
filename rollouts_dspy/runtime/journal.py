"""The checkpoint: an append-only journal of everything a run paid for.

One JSON object per line. The first line names the run (kind, version, method and the fingerprint of what must not
change between a run and its resume); then, in the order they happened: admissions of rollouts (written before the
calls start, so a killed run still counts them), finished rollouts, model answers, and step markers (progress,
elapsed time, the best so far, the session's counters). Appending one record costs the same at the 10,000th
rollout as at the first; a killed process loses only the calls in flight, and at most a torn last line, which is
dropped when the journal is read.

A resumed run replays the engine from the start against the journal: every rollout and answer it had paid for
comes back for free, so it makes exactly the same decisions (see docs/failures-and-budgets.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dtypes import Usage
from ..errors import CheckpointError
from ..prompt_optimization.protocols import Rollout

__all__ = ["JOURNAL_FILE", "Journal", "JournalContents", "read_journal"]

JOURNAL_FILE = "journal.jsonl"
KIND = "rollouts-dspy/journal"
VERSION = 1


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _usage(u: Usage) -> list[Any]:
    return [u.prompt_tokens, u.completion_tokens, u.cost_usd, u.calls]


@dataclass
class JournalContents:
    """What a journal holds, as the runtime of a resumed run needs it."""

    method: str = ""
    rollouts: dict[tuple[str, int], Rollout] = field(default_factory=dict)  # measured (the cache)
    answers: dict[str, tuple[str, Usage]] = field(default_factory=dict)  # model answers by request digest
    finished: list[tuple[str, Rollout]] = field(default_factory=list)  # every finished rollout, failed ones too
    calls: list[tuple[str, Usage, bool]] = field(default_factory=list)  # model calls: (role, usage, failed)
    admitted: int = 0  # rollouts admitted (provider called), including ones lost in flight
    elapsed: float = 0.0
    steps: int = 0
    best: Mapping[str, Any] | None = None
    counters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def read_journal(path: str | os.PathLike[str], *, method: str, fingerprint: Mapping[str, Any] | None
                 ) -> JournalContents | None:
    """The journal at `path` (None when there is none). A journal of another run setup, another method, a
    newer version or with a damaged line (other than a torn last line) is a CheckpointError saying what to do.
    `fingerprint=None` reads it without checking the setup (to show what a run found so far)."""
    target = Path(path)
    if not target.exists():
        return None
    try:
        lines = target.read_bytes().split(b"\n")
    except OSError as exc:
        raise CheckpointError(f"checkpoint {target} cannot be read ({exc})") from None
    if lines and lines[-1] == b"":
        lines.pop()
    records: list[dict[str, Any]] = []
    for n, raw in enumerate(lines):
        try:
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            if n == len(lines) - 1 and n > 0:
                break  # a torn last line: the process died while writing it
            raise CheckpointError(f"checkpoint {target} is damaged at line {n + 1} ({exc}); delete it to start "
                                  "over") from None
        records.append(record)
    if not records:
        return None
    _check_header(target, records[0], method, fingerprint)
    try:
        return _contents(records[0], records[1:])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {target} is damaged ({type(exc).__name__}: {exc}); delete it to start "
                              "over") from None


def _check_header(path: Path, head: Mapping[str, Any], method: str, fingerprint: Mapping[str, Any] | None) -> None:
    if head.get("kind") != KIND:
        raise CheckpointError(f"checkpoint {path} is not a rollouts-dspy journal; delete it to start over")
    version = head.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"checkpoint {path} has version {version!r}; this rollouts-dspy reads up to version "
                              f"{VERSION}: upgrade rollouts-dspy or start a fresh run")
    if head.get("method") != method:
        raise CheckpointError(f"checkpoint {path} belongs to a {head.get('method')} run, not {method}; use another "
                              "checkpoint directory")
    saved = head.get("fingerprint")
    wanted = json.loads(_dumps(dict(fingerprint or {})))
    if fingerprint is not None and saved != wanted:
        saved = saved if isinstance(saved, dict) else {}
        diff = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
        raise CheckpointError(
            f"checkpoint {path} was written by a run with different settings ({', '.join(diff)} differ); use the "
            "same config, dataset, models and initial prompt to resume, or another checkpoint directory to start over"
        )


def _contents(head: Mapping[str, Any], records: list[dict[str, Any]]) -> JournalContents:
    out = JournalContents(method=str(head["method"]))
    for rec in records:
        t = rec["t"]
        if t == "admit":
            out.admitted += int(rec["n"])
        elif t == "r":
            rollout = Rollout.from_dict(rec["r"])
            out.finished.append((rec["k"], rollout))
            if rec.get("cache", True):
                out.rollouts[(rec["k"], int(rollout.sample_index))] = rollout
        elif t == "a":
            p, c, cost, calls = rec["u"]
            out.calls.append((rec["role"], Usage(p, c, cost, calls), rec.get("text") is None))
            if rec.get("text") is not None:
                out.answers[rec["d"]] = (rec["text"], Usage(p, c, cost, calls))
        elif t == "s":
            out.steps = max(out.steps, int(rec.get("n", 0)))
            out.elapsed = float(rec.get("elapsed", out.elapsed))
            out.best = rec.get("best", out.best)
            out.counters = rec.get("counters", out.counters)
    return out


class Journal:
    """Appends records to a run's journal (created with its header when new)."""

    def __init__(self, path: str | os.PathLike[str], *, method: str, fingerprint: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        if not fresh:
            self._drop_torn_tail()
        else:
            self._write({"kind": KIND, "version": VERSION, "method": method, "fingerprint": dict(fingerprint)})
            self.sync()

    def _drop_torn_tail(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            self._fh.close()
            with open(self.path, "r+b") as fh:
                fh.truncate(keep)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def _write(self, record: Mapping[str, Any]) -> None:
        self._fh.write(_dumps(record) + "\n")
        self._fh.flush()  # in the OS's hands now: a killed process keeps it

    def admitted(self, n: int) -> None:
        if n:
            self._write({"t": "admit", "n": n})

    def rollout(self, key: str, rollout: Rollout, *, cached: bool) -> None:
        self._write({"t": "r", "k": key, "r": rollout.to_dict(), **({} if cached else {"cache": False})})

    def answer(self, digest: str, role: str, text: str | None, usage: Usage) -> None:
        """A model call of `role` answered `text` (None: it failed) at the cost of `usage`."""
        self._write({"t": "a", "d": digest, "role": role, "text": text, "u": _usage(usage)})

    def step(self, n: int, *, elapsed: float, best: Mapping[str, Any] | None = None,
             counters: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        record: dict[str, Any] = {"t": "s", "n": n, "elapsed": round(elapsed, 3)}
        if best is not None:
            record["best"] = dict(best)
        if counters is not None:
            record["counters"] = {k: dict(v) for k, v in counters.items()}
        self._write(record)
        self.sync()

    def sync(self) -> None:
        """fsync: survive a power cut too (done at step markers and on close, not per rollout)."""
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()
