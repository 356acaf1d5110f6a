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
from ..llm import redact_secrets
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
            text = self._call(messages)
        usage = usage_of(tracker, [self.lm])
        self.calls += 1
        self.usage = self.usage + usage
        return text, usage

    def _call(self, messages: Sequence[Message]) -> str:
        if isinstance(self.lm, dspy.LM):
            # dspy 3.4's normalized request (OpenAI-style `messages=` dicts are deprecated there).
            from dspy import lm15

            system = "\n\n".join(m.content for m in messages if m.role == "system") or None
            turns = tuple(
                lm15.Message.assistant(m.content) if m.role == "assistant" else lm15.Message.user(m.content)
                for m in messages if m.role != "system"
            )
            return str(self.lm(lm15.Request(model=self.lm.model, messages=turns, system=system)).text or "")
        outputs = self.lm(messages=[m.to_openai() for m in messages])
        if not outputs:
            raise RuntimeError(f"{getattr(self.lm, 'model', self.lm)!r} returned no completion")
        return _text(outputs[0])

    async def complete(self, messages: Sequence[Message]) -> tuple[str, Usage]:
        try:
            return await asyncio.to_thread(self.complete_sync, list(messages))
        except Exception as exc:
            # Providers quote the caller's key in some errors; the message ends up in warnings and logs.
            key = str((getattr(self.lm, "kwargs", None) or {}).get("api_key") or "")
            text = redact_secrets(str(exc), key)
            if text != str(exc):
                raise RuntimeError(f"{type(exc).__name__}: {text}") from None
            raise

    def __repr__(self) -> str:
        return f"DSPyLanguageModel({getattr(self.lm, 'model', self.lm)!r})"
