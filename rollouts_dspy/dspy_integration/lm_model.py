"""A `LanguageModel` (the engines' reflection/proposer seam) over a `dspy.LM`.

The engines hand it plain chat messages; it calls the LM on a worker thread (DSPy calls are sync) inside a copy
of the caller's context, and reports tokens (and dollars when litellm knows the model's price) from
`dspy.track_usage`. Retries are the LM's business (`dspy.LM(num_retries=...)`); a final failure raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import dspy

from ..dtypes import Message, Usage
from .program_task import usage_of

__all__ = ["DSPyLanguageModel"]


def _text(output: Any) -> str:
    if isinstance(output, dict):
        return str(output.get("text") or "")
    return "" if output is None else str(output)


class DSPyLanguageModel:
    """Answers the optimizer's own prompts with a `dspy.LM` (or any DSPy BaseLM)."""

    def __init__(self, lm: Any) -> None:
        if lm is None:
            raise ValueError("DSPyLanguageModel needs a dspy.LM, but got None")
        self.lm = lm
        self.calls = 0
        self.usage = Usage()

    def complete_sync(self, messages: Sequence[Message]) -> tuple[str, Usage]:
        with dspy.track_usage() as tracker:
            outputs = self.lm(messages=[m.to_openai() for m in messages])
        usage = usage_of(tracker)
        self.calls += 1
        self.usage = self.usage + usage
        if not outputs:
            raise RuntimeError(f"{getattr(self.lm, 'model', self.lm)!r} returned no completion")
        return _text(outputs[0]), usage

    async def complete(self, messages: Sequence[Message]) -> tuple[str, Usage]:
        return await asyncio.to_thread(self.complete_sync, list(messages))

    def __repr__(self) -> str:
        return f"DSPyLanguageModel({getattr(self.lm, 'model', self.lm)!r})"
