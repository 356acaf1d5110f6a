"""Seeded fault injection for the scripted server.

Request numbers count chat-completion requests from 1. Each request draws one number from `random.Random(seed)`
under a lock whatever happens, so which request numbers fault depends only on the seed, the rate and the order in
which requests arrive, not on timing. Forced faults (`schedule`, `fail_next`) take precedence and do not consume
extra draws.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["FAULT_KINDS", "TRANSIENT_FAULTS", "FaultConfig", "FaultPlan"]

FAULT_KINDS: tuple[str, ...] = ("429", "500", "timeout", "malformed", "empty", "400", "context_length", "401")
"""Every fault the server can inject. The default mix (TRANSIENT_FAULTS) holds the ones a client should retry;
"400", "context_length" and "401" are permanent errors (a bad request, a prompt over the context window, a
rejected API key)."""
TRANSIENT_FAULTS: tuple[str, ...] = ("429", "500", "timeout", "malformed", "empty")


@dataclass(frozen=True, kw_only=True)
class FaultConfig:
    """rate: probability a request faults; kinds: which faults to choose from (uniformly); seed: RNG seed;
    timeout_seconds: how long a "timeout" fault stalls before answering; retry_after_seconds: the Retry-After
    a 429 advertises; schedule: {request number: kind} forced faults; models: only requests for these models can
    fault (empty: every model) -- so a test can aim faults at the task model's rollouts."""

    rate: float = 0.0
    kinds: tuple[str, ...] = TRANSIENT_FAULTS
    seed: int = 0
    timeout_seconds: float = 3.0
    retry_after_seconds: float = 0.05
    schedule: Mapping[int, str] = field(default_factory=dict)
    models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"FaultConfig.rate must be in [0, 1], but got {self.rate!r}")
        if not self.kinds:
            raise ValueError("FaultConfig.kinds must not be empty, but got ()")
        unknown = [k for k in (*self.kinds, *self.schedule.values()) if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"FaultConfig kinds must be among {FAULT_KINDS}, but got {unknown!r}")
        if self.timeout_seconds < 0:
            raise ValueError(f"FaultConfig.timeout_seconds must be >= 0, but got {self.timeout_seconds!r}")
        if self.retry_after_seconds < 0:
            raise ValueError(f"FaultConfig.retry_after_seconds must be >= 0, but got {self.retry_after_seconds!r}")


class FaultPlan:
    """The mutable side of a FaultConfig: the RNG and the queue of forced faults. Thread-safe."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._rng = random.Random(config.seed)
        self._forced: deque[str] = deque()
        self._count = 0

    def fail_next(self, n: int, kind: str) -> None:
        """Force the next `n` requests to fault with `kind`."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}, but got {kind!r}")
        with self._lock:
            self._forced.extend([kind] * n)

    def next_fault(self, model: str = "") -> tuple[int, str | None]:
        """(request number, fault kind or None) for the next request (to `model`)."""
        if self.config.models and model not in self.config.models:
            return self._count, None
        with self._lock:
            self._count += 1
            draw = self._rng.random()
            choice = self._rng.choice(self.config.kinds) if draw < self.config.rate else None
            if self._forced:
                return self._count, self._forced.popleft()
            scheduled = self.config.schedule.get(self._count)
            return self._count, scheduled if scheduled is not None else choice

    def reset(self) -> None:
        """Back to request number 0 and a fresh RNG; forced faults are dropped."""
        with self._lock:
            self._rng = random.Random(self.config.seed)
            self._forced.clear()
            self._count = 0
