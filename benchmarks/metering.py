"""Counting by one rule for every contender: a metric call is a rollout, and every candidate prompt a contender
evaluates is logged with the number of rollouts spent before it was first run.

The meter is process-wide (one contender run per worker process) and thread-safe: DSPy and gepa score on worker
threads. The server's own request counters (`scripted-task` vs `scripted-reflect`) are read separately by the
worker and reported next to the meter's counts.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CandidateLog", "Meter", "METER", "spec_key"]


def spec_key(spec: dict[str, Any]) -> str:
    """A content hash of a candidate spec (identical prompts share one key and one held-out evaluation)."""
    blob = json.dumps(spec, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class CandidateLog:
    """Candidate specs in order of first sight, each with the rollouts spent when it was first seen."""

    first_seen: dict[str, int] = field(default_factory=dict)
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_list(self) -> list[dict[str, Any]]:
        return [{"key": k, "rollouts": r, "spec": self.specs[k]} for k, r in self.first_seen.items()]


class Meter:
    """Metric calls and the candidate log of the current run.

    `position` says how many rollouts have been spent, for the log: by default the metric calls; for single-call
    worlds the worker sets it to the server's task-model request count (DSPy's GEPA scores some rollouts twice,
    once for the score and once for feedback, so metric calls would overstate its spending).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.position: Callable[[], int] | None = None
        self.started: Callable[[], bool] | None = None
        self.reset()

    def reset(self) -> None:
        self.metric_calls = 0
        self.probes = 0
        self._running = False
        self.log = CandidateLog()

    def count(self) -> int:
        """Book one metric call; returns the total. A call made before the run's first task-model request is a
        probe, not a rollout (the rollouts front door calls the score_fn once on an empty answer to check its
        return type before any LLM call), so it is booked as `probes` instead; `started` says whether the server
        has seen a task request yet."""
        if not self._running and self.started is not None:
            if not self.started():
                with self._lock:
                    self.probes += 1
                    return self.metric_calls
            self._running = True
        with self._lock:
            self.metric_calls += 1
            return self.metric_calls

    def see(self, spec: dict[str, Any]) -> str:
        """Log `spec` as evaluated now (first sight wins)."""
        key = spec_key(spec)
        if key in self.log.first_seen:
            return key
        position = self.position() if self.position is not None else self.metric_calls
        with self._lock:
            if key not in self.log.first_seen:
                self.log.first_seen[key] = position
                self.log.specs[key] = spec
        return key


METER = Meter()
