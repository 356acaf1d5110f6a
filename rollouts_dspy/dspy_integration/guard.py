"""Stopping a DSPy program between LM calls: after cancellation, no new paid call starts.

DSPy programs are sync and run on worker threads, which asyncio cannot interrupt. Each rollout runs under a
`CancelFlag` in its context; a DSPy callback checks the flag right before every LM call and every adapter
format step (the step before each predictor's call, which covers LMs that override `__call__`), and raises
`RolloutCancelled` once it is set. `RolloutCancelled` is a BaseException so that DSPy's own `except Exception`
fallbacks (the chat adapter's JSON retry, callbacks' error logging) cannot swallow it.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any

from dspy.utils.callback import BaseCallback

__all__ = ["CANCEL_GUARD", "CancelFlag", "RolloutCancelled", "check_cancelled"]


class RolloutCancelled(BaseException):
    """The rollout was cancelled (Ctrl-C, an outage, a sibling's crash): its next LM call was not made."""


class CancelFlag:
    """Set once the rollout's awaiting coroutine was cancelled (thread-safe)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()


_FLAG: contextvars.ContextVar[CancelFlag | None] = contextvars.ContextVar("rollouts_dspy_cancel", default=None)


def check_cancelled() -> None:
    flag = _FLAG.get()
    if flag is not None and flag.is_set:
        raise RolloutCancelled("cancelled before the next LM call")


def bind(flag: CancelFlag) -> None:
    """Make `flag` the current rollout's flag (call inside the rollout's own context copy)."""
    _FLAG.set(flag)


class _Guard(BaseCallback):
    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        check_cancelled()

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        check_cancelled()


CANCEL_GUARD = _Guard()
