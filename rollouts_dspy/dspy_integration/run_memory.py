"""What the DSPy side of a GEPA run learns about its runs that the engine's journal does not hold.

A resumed run replays its rollouts from the journal without running the program again, so it has no traces and
no Predictions for them. Three things depend on those and must come back the same for the resumed run to replay
itself exactly (and to report the same result):

- each predictor's feedback on a run (the metric called with `pred_name`; it is in the reflection requests and
  proposals, which the journal replays by request),
- a custom component selector's choice for a step (it reads the runs' traces),
- the Predictions of runs on the compared samples (`detailed_results.best_outputs_valset`).

`RunMemory` keeps them in memory and, with a checkpoint directory, appends each to `<log_dir>/dspy_memory.jsonl`
before the engine can act on it. The file belongs to the journal beside it: a directory without a journal starts
a new run, and the memory starts empty. Predictions read back have JSON-safe values (text, numbers, lists,
dicts).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import dspy

from ..runtime import JOURNAL_FILE
from .candidates import json_safe

__all__ = ["MEMORY_FILE", "RunMemory"]

MEMORY_FILE = "dspy_memory.jsonl"
_MISSING = object()


class RunMemory:
    """Feedback by (candidate key, sample, predictor), selections by (step, candidate key) and Predictions by
    (candidate key, sample) for the samples in `predictions_for` (thread-safe; see the module doc)."""

    def __init__(self, log_dir: str | None = None, predictions_for: Iterable[int] = ()) -> None:
        self.predictions_for = frozenset(predictions_for)
        self._items: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()
        self._path = None if log_dir is None else Path(log_dir) / MEMORY_FILE
        if self._path is not None:
            self._load(self._path)

    def _load(self, path: Path) -> None:
        if not (path.parent / JOURNAL_FILE).exists():
            path.unlink(missing_ok=True)  # the memory of a run whose journal is gone: not this run's
            return
        if not path.exists():
            return
        for line in path.read_bytes().split(b"\n"):
            try:
                data = json.loads(line)
                key, value = tuple(data["key"]), data["value"]
            except (ValueError, KeyError, TypeError):
                continue  # an empty or torn line (a process killed while writing it)
            if key[0] == "prediction":
                value = dspy.Prediction(**value)
            self._items.setdefault(key, value)

    def _remember(self, key: tuple[Any, ...], value: Any, stored: Any) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            if self._path is not None:
                line = json.dumps({"key": list(key), "value": stored}, ensure_ascii=False)
                self._path.parent.mkdir(parents=True, exist_ok=True)
                with self._path.open("a", encoding="utf-8") as f:
                    f.write(line + "\n")

    def _recall(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            return self._items.get(key, _MISSING)

    # -- per-predictor feedback ----------------------------------------------------------------------------
    def add_feedback(self, key: str, index: int, component: str, feedback: str | None) -> None:
        """`feedback` for `component` on the run of candidate `key` on sample `index`; None: left out."""
        self._remember(("feedback", key, index, component), feedback, feedback)

    def feedback(self, key: str, index: int, component: str) -> tuple[bool, str | None]:
        """(known, feedback): whether it was remembered, and the feedback (None: left out)."""
        value = self._recall(("feedback", key, index, component))
        return (False, None) if value is _MISSING else (True, value)

    # -- component selections ------------------------------------------------------------------------------
    def add_selection(self, step: int, key: str, components: Sequence[str]) -> None:
        self._remember(("selection", step, key), list(components), list(components))

    def selection(self, step: int, key: str) -> list[str] | None:
        value = self._recall(("selection", step, key))
        return None if value is _MISSING else list(value)

    # -- predictions ---------------------------------------------------------------------------------------
    def add_prediction(self, key: str, index: int, prediction: Any) -> None:
        """Keep the Prediction of candidate `key` on sample `index` when the sample is one to keep."""
        if index not in self.predictions_for or prediction is None:
            return
        items = prediction.items() if hasattr(prediction, "items") else {"output": prediction}.items()
        self._remember(("prediction", key, index), prediction, {str(k): json_safe(v) for k, v in items})

    def prediction(self, key: str, index: int) -> Any:
        """The kept Prediction, or None."""
        value = self._recall(("prediction", key, index))
        return None if value is _MISSING else value
