"""A `LanguageModel` (the engines' reflection/proposer seam) over any DSPy LM.

The engines hand it plain chat messages; it calls the LM on a worker thread (DSPy calls are sync) inside a copy
of the caller's context, and reports tokens (and dollars when the model's price is known) from
`dspy.track_usage`. Retries are the LM's business (`dspy.LM(num_retries=...)`).

Any `dspy.BaseLM` works, including subclasses that override `__call__` or `forward` (DSPy's test LMs do): every
LM is called the way DSPy calls LMs (`lm(prompt)` or `lm(messages=[...])`) and may answer with strings, dicts
with "text", or a response object with `.text`.

A final failure of the provider is raised as `LLMCallError` (`kind`, `retryable`) so the runtime can tell an
outage from a bad request; anything else (a bug in an LM subclass, in our code) propagates unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import Any

import dspy

from ..dtypes import Message, Usage
from .providers import as_provider_failure, usage_of

__all__ = ["DSPyLanguageModel", "answer_text"]

logger = logging.getLogger("dspy.teleprompt.rollouts_dspy")


def answer_text(output: Any) -> str:
    """The text of whatever a DSPy LM returned: a Response (`.text`), a list of outputs (the first), a dict
    with "text", or a string."""
    if isinstance(output, (list, tuple)):
        if not output:
            raise ValueError("the LM returned no completion")
        output = output[0]
    if isinstance(output, dict):
        return str(output.get("text") or "")
    if isinstance(output, str) or output is None:
        return output or ""
    text = getattr(output, "text", None)
    if text is not None or hasattr(output, "text"):
        return str(text or "")
    return str(output)


class DSPyLanguageModel:
    """Answers the optimizer's own prompts with a DSPy LM. `temperature` (when given) is passed on every call
    (MIPROv2's `init_temperature`); `verbose` logs each request and answer."""

    def __init__(self, lm: Any, *, temperature: float | None = None, verbose: bool = False) -> None:
        if lm is None:
            raise ValueError("DSPyLanguageModel needs a DSPy LM, but got None")
        self.lm = lm
        self.temperature = temperature
        self.verbose = verbose
        self.calls = 0
        self.usage = Usage()
        self._lock = threading.Lock()
        self._repeats: dict[tuple[str, ...], int] = {}

    def _kwargs(self, messages: Sequence[Message]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        # The n-th identical request gets rollout_id n, so DSPy's cache answers it anew (DSPy's proposers use a
        # fresh rollout_id per proposal too); counted per request text, it does not depend on timing.
        key = tuple(f"{m.role}:{m.content}" for m in messages)
        with self._lock:
            n = self._repeats.get(key, 0)
            self._repeats[key] = n + 1
        if n:
            kwargs["rollout_id"] = n
        return kwargs

    def _call(self, messages: Sequence[Message]) -> str:
        """Called the way DSPy itself calls LMs, so the LM's own settings (temperature, max_tokens, api_base,
        retries, cache) apply: one user message as a prompt string (as dspy.GEPA calls its reflection LM),
        several as `messages=` (as DSPy's adapters do)."""
        kwargs = self._kwargs(messages)
        if len(messages) == 1 and messages[0].role == "user":
            return answer_text(self.lm(messages[0].content, **kwargs))
        dicts = [m.to_openai() for m in messages]
        with _as_adapter_call(self.lm, dicts):
            return answer_text(self.lm(messages=dicts, **kwargs))

    def complete_sync(self, messages: Sequence[Message]) -> tuple[str, Usage]:
        with self._lock:
            self.calls += 1  # every call made, answered or not (MIPROv2's prompt_model_total_calls)
        with dspy.track_usage() as tracker:
            text = self._call(messages)
        usage = usage_of(tracker, [self.lm])
        usage = usage if usage.calls else usage + Usage(calls=1)  # an LM that reports no usage still was called
        with self._lock:
            self.usage = self.usage + usage
        if self.verbose:
            logger.info("%s answered:\n%s", getattr(self.lm, "model", type(self.lm).__name__), text)
        return text, usage

    async def complete(self, messages: Sequence[Message]) -> tuple[str, Usage]:
        try:
            return await asyncio.to_thread(self.complete_sync, list(messages))
        except Exception as exc:
            failure = as_provider_failure(exc, self.lm)
            if failure is exc:
                raise  # not the provider's failure: a bug, surfaced as itself
            raise failure from None

    def __repr__(self) -> str:
        return f"DSPyLanguageModel({getattr(self.lm, 'model', self.lm)!r})"


def _as_adapter_call(lm: Any, messages: list[dict[str, Any]]) -> Any:
    """DSPy 3.4 deprecates `messages=` dictionaries from user code but not from its adapters; this call is an
    adapter's (the optimizer formats its own prompts), so it is marked as one when DSPy offers the marker."""
    try:
        from dspy.clients._deprecation import adapter_message_call
    except ImportError:  # another DSPy version: the call works the same, at most with a deprecation warning
        return contextlib.nullcontext()
    return adapter_message_call(lm, messages)
