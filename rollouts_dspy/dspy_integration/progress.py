"""What a DSPy user sees while a teleprompter runs, by DSPy's conventions: lines on a logger under `dspy` (so
DSPy's handler prints them at INFO by default, `dspy.disable_logging()` or a higher level on the "dspy"
logger silences them) and a tqdm progress bar over the rollouts, as dspy.GEPA and dspy.Evaluate show.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..prompt_optimization.events import BudgetUpdated, Event, LinePrinter, Reporter, StepFinished
from ..prompt_optimization.protocols import Rollout

__all__ = ["LOGGER_NAME", "Progress", "logger", "shown"]

LOGGER_NAME = "dspy.teleprompt.rollouts_dspy"
logger = logging.getLogger(LOGGER_NAME)


def shown() -> bool:
    """Whether progress is on: the logger prints INFO and DSPy's logging stream is enabled."""
    try:
        from dspy.utils.logging_utils import DSPY_LOGGING_STREAM

        enabled = DSPY_LOGGING_STREAM.enabled
    except ImportError:
        enabled = True
    return enabled and logger.isEnabledFor(logging.INFO)


class _LogStream:
    def __init__(self) -> None:
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            if line:
                logger.info(line)
        return len(text)

    def flush(self) -> None:
        pass


class Progress:
    """The run's reporter (one line per step on the logger, then the user's reporter) and its progress bar,
    advanced by every finished rollout. `close()` ends the bar."""

    def __init__(self, method: str, total: int | None, then: Reporter | None = None) -> None:
        self._printer = LinePrinter(_LogStream())  # type: ignore[arg-type]
        self._then = then
        self._lock = threading.Lock()
        self._bar: Any = None
        if shown():
            from tqdm.auto import tqdm

            name = "GEPA" if method == "gepa" else "MIPRO"
            self._bar = tqdm(total=total, desc=f"{name} Optimization (rollouts-dspy)", unit="rollouts",
                             dynamic_ncols=True)

    def __call__(self, event: Event) -> None:
        if shown():
            self._printer(event)
        if self._bar is not None and isinstance(event, StepFinished) and event.best_so_far is not None:
            with self._lock:
                self._bar.set_postfix(best=f"{event.best_so_far:.3f}", refresh=False)
        if self._bar is not None and isinstance(event, BudgetUpdated) and event.max_rollouts:
            with self._lock:
                self._bar.total = event.max_rollouts
        if self._then is not None:
            self._then(event)

    def on_rollout(self, rollout: Rollout) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
