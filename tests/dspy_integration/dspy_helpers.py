"""Helpers shared by the DSPy bridge's tests (imported as `dspy_helpers`)."""

from __future__ import annotations

import threading

import dspy


class CountingMetric:
    """A feedback metric (DSPy's five-argument form) on the `intent` label that counts the program runs it
    scores; feedback requests (`pred_name` set) are not runs."""

    def __init__(self):
        self.runs = 0
        self._lock = threading.Lock()

    def __call__(self, gold, pred, trace=None, pred_name=None, pred_trace=None):
        if pred_name is None:
            with self._lock:
                self.runs += 1
        ok = str(pred.intent).strip().lower() == gold.intent.lower()
        return dspy.Prediction(score=float(ok), feedback="Correct." if ok else f"Wrong: expected {gold.intent}")


class TwoStep(dspy.Module):
    """Two predictors, each with its own instructions: a draft answer, then a check of it."""

    def __init__(self):
        super().__init__()
        self.draft = dspy.Predict("query -> intent")
        self.check = dspy.Predict("query, draft -> intent")

    def forward(self, query):
        return self.check(query=query, draft=self.draft(query=query).intent)


class RecordingLM(dspy.LM):
    """A dspy.LM that records what it is asked (the prompt text and the call's keyword arguments)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.requests: list[tuple[str, dict]] = []
        self._lock = threading.Lock()

    def __call__(self, prompt=None, messages=None, **kwargs):
        text = prompt if prompt is not None else "\n".join(str(m.get("content")) for m in messages or ())
        with self._lock:
            self.requests.append((text, dict(kwargs)))
        return super().__call__(prompt, messages=messages, **kwargs)
