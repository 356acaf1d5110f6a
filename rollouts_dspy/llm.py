"""The one way this package calls an LLM: litellm, with retries, a shared concurrency limit and accounting.

Errors are sorted into two kinds. *Transient* ones (rate limits, 5xx, timeouts, connection drops, a malformed or
empty answer) are retried with exponential backoff and jitter up to `Endpoint.max_retries` times. *Permanent*
ones (bad request, context window exceeded, content policy, authentication) are not retried: they will not
change. Either kind, once final, is raised as `LLMCallError` with `retryable` telling which it was.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .dtypes import Endpoint, Message, Tool, ToolCall, Usage
from .runtime.errors import ProviderError

__all__ = ["CallStats", "Completion", "LLMCallError", "LLMSession", "check_priced", "litellm_module",
           "redact_secrets"]

_litellm: ModuleType | None = None


def litellm_module() -> ModuleType:
    """Import litellm once, offline-safe: its cost map is read from the package, never downloaded."""
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.suppress_debug_info = True
        litellm.drop_params = True
        _litellm = litellm
    return _litellm


class LLMCallError(ProviderError):
    """An LLM call that failed for good. `kind` names the failure; `retryable` says whether it was transient
    (the runtime's outage detector reads both, see `ProviderError.outage`)."""

    def __init__(self, kind: str, message: str, *, retryable: bool, attempts: int) -> None:
        super().__init__(kind, message, retryable=retryable, attempts=attempts)


@dataclass(frozen=True)
class Completion:
    """One assistant turn and what it cost."""

    message: Message
    usage: Usage


@dataclass
class CallStats:
    """Counters for one role (e.g. 'task', 'reflection') of a run. Mutated only by `LLMSession`."""

    calls: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_PERMANENT = frozenset({
    "BadRequestError", "ContextWindowExceededError", "ContentPolicyViolationError", "AuthenticationError",
    "PermissionDeniedError", "NotFoundError", "UnsupportedParamsError", "InvalidRequestError",
    "UnprocessableEntityError", "PaymentRequiredError", "BudgetExceededError",
})


def _classify(exc: BaseException) -> tuple[str, bool]:
    """(kind, retryable) of an exception raised by litellm or the transport; the most specific class wins."""
    lineage = [cls.__name__ for cls in type(exc).__mro__]
    text = str(exc).lower()
    for name in lineage:
        if name in _PERMANENT:
            # litellm wraps some malformed-response failures as bad requests with a JSON decode cause.
            if "json" in text and ("decode" in text or "expecting" in text):
                return "malformed_response", True
            return name, False
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) or "Timeout" in name:
            return "timeout", True
        if name in _TRANSIENT:
            return name, True
    return type(exc).__name__, True


_TRANSIENT = frozenset({"RateLimitError", "InternalServerError", "ServiceUnavailableError", "BadGatewayError",
                        "APIConnectionError", "APIError"})


@dataclass
class LLMSession:
    """Everything one run shares across its LLM calls: the concurrency limit and the accounting.

    `max_concurrent` bounds the requests in flight across every role (task rollouts, reflection, proposals).
    """

    max_concurrent: int = 10
    seed: int = 0
    stats: dict[str, CallStats] = field(default_factory=dict)
    _semaphore: asyncio.Semaphore | None = field(default=None, repr=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, but got {self.max_concurrent!r}")
        self._rng = random.Random(self.seed)  # jitter only; never affects results

    def _limit(self) -> asyncio.Semaphore:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_concurrent)
        return self._semaphore

    def role_stats(self, role: str) -> CallStats:
        return self.stats.setdefault(role, CallStats())

    def total(self) -> CallStats:
        out = CallStats()
        for s in self.stats.values():
            out.calls += s.calls
            out.retries += s.retries
            out.failures += s.failures
            out.prompt_tokens += s.prompt_tokens
            out.completion_tokens += s.completion_tokens
            out.cost_usd += s.cost_usd
            out.cost_known = out.cost_known and s.cost_known
        return out

    async def complete(
        self,
        endpoint: Endpoint,
        messages: Sequence[Message],
        *,
        tools: Sequence[Tool] = (),
        role: str = "task",
    ) -> Completion:
        """One chat completion, retried on transient errors; raises `LLMCallError` when it finally fails."""
        stats = self.role_stats(role)
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._limit():
                    response = await self._call(endpoint, messages, tools)
                completion = _parse_response(response, endpoint)
            except LLMCallError as exc:
                error = exc
            except Exception as exc:  # noqa: BLE001 - every provider error is classified, none swallowed
                kind, retryable = _classify(exc)
                error = LLMCallError(kind, _redact(str(exc), endpoint), retryable=retryable, attempts=attempt)
            else:
                stats.calls += 1
                stats.prompt_tokens += completion.usage.prompt_tokens
                stats.completion_tokens += completion.usage.completion_tokens
                if completion.usage.cost_usd is None:
                    stats.cost_known = False
                else:
                    stats.cost_usd += completion.usage.cost_usd
                return completion
            if not error.retryable or attempt > endpoint.max_retries:
                stats.failures += 1
                error.attempts = attempt
                raise error
            stats.retries += 1
            await asyncio.sleep(self._backoff(endpoint, attempt))

    def _backoff(self, endpoint: Endpoint, attempt: int) -> float:
        base = endpoint.retry_backoff * (2 ** (attempt - 1))
        return min(base, 30.0) * (0.5 + self._rng.random())

    async def _call(self, endpoint: Endpoint, messages: Sequence[Message], tools: Sequence[Tool]) -> Any:
        litellm = litellm_module()
        kwargs: dict[str, Any] = dict(endpoint.extra_params)
        kwargs.update(
            model=endpoint.litellm_model,
            messages=[m.to_openai() for m in messages],
            temperature=endpoint.temperature,
            timeout=endpoint.timeout,
            num_retries=0,  # retries are ours, so they are counted and bounded in one place
        )
        if endpoint.api_base:
            kwargs["api_base"] = endpoint.api_base
        if endpoint.api_key:
            kwargs["api_key"] = endpoint.api_key
        if endpoint.max_tokens is not None:
            kwargs["max_tokens"] = endpoint.max_tokens
        if tools:
            kwargs["tools"] = [t.to_openai() for t in tools]
        # asyncio's own timeout backs up the client's, so a hung connection can never stall a run.
        return await asyncio.wait_for(litellm.acompletion(**kwargs), timeout=endpoint.timeout + 5.0)


def _redact(text: str, endpoint: Endpoint) -> str:
    return redact_secrets(text, endpoint.api_key)[:2000]


_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
_SECRET_TEXT = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}|(?<=Bearer )[A-Za-z0-9_\-.=]{8,}")


def redact_secrets(text: str, *keys: str | None) -> str:
    """`text` with API keys replaced by '[redacted]': the given `keys`, the values of secret-named environment
    variables (a key litellm read from OPENAI_API_KEY is not on the Endpoint, but providers echo it back in
    error messages) and anything shaped like a key ('sk-...', 'Bearer ...')."""
    secrets = {k for k in keys if k and len(k) >= 4}
    secrets.update(v for name, v in os.environ.items() if _SECRET_ENV.search(name) and len(v) >= 8)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return _SECRET_TEXT.sub("[redacted]", text)


def _parse_response(response: Any, endpoint: Endpoint) -> Completion:
    import json

    try:
        choice = response.choices[0]
        raw = choice.message
    except (AttributeError, IndexError, TypeError) as exc:
        raise LLMCallError("malformed_response", f"no choices in response: {exc}", retryable=True,
                           attempts=1) from None
    content = getattr(raw, "content", None) or ""
    calls: list[ToolCall] = []
    for i, tc in enumerate(getattr(raw, "tool_calls", None) or ()):
        fn = tc.function
        try:
            args = json.loads(fn.arguments or "{}")
        except json.JSONDecodeError:
            args = {"_raw": fn.arguments}
        if not isinstance(args, dict):
            args = {"_value": args}
        calls.append(ToolCall(id=tc.id or f"call_{i}", name=fn.name or "", args=args))
    if not content.strip() and not calls:
        raise LLMCallError("empty_response", "the model returned no content and no tool calls",
                           retryable=True, attempts=1)
    return Completion(Message("assistant", content, tuple(calls)), _usage(response, endpoint))


def _usage(response: Any, endpoint: Endpoint) -> Usage:
    u = getattr(response, "usage", None)
    prompt = int(getattr(u, "prompt_tokens", 0) or 0)
    completion = int(getattr(u, "completion_tokens", 0) or 0)
    cost: float | None
    if endpoint.pricing is not None:
        cost = (prompt * endpoint.pricing[0] + completion * endpoint.pricing[1]) / 1_000_000
    elif endpoint.litellm_model in _UNPRICED:
        cost = None
    else:
        try:
            cost = float(litellm_module().completion_cost(completion_response=response))
        except Exception:  # noqa: BLE001 - litellm raises for models missing from its cost table
            # Remembered: litellm's failed lookup costs milliseconds per call, and the table does not change.
            _UNPRICED.add(endpoint.litellm_model)
            cost = None
    return Usage(prompt, completion, cost, 1)


_UNPRICED: set[str] = set()
"""litellm model strings known to be missing from litellm's cost table (tokens only for them)."""


def check_priced(max_cost_usd: float | None, *endpoints: Endpoint) -> None:
    """Before any call: a dollar budget needs every endpoint's price (its `pricing`, or litellm's cost table),
    else the run could not count its dollars and the budget would silently not bind."""
    if max_cost_usd is None:
        return
    from .errors import ConfigError

    for endpoint in endpoints:
        if endpoint.pricing is not None:
            continue
        try:
            litellm_module().cost_per_token(model=endpoint.litellm_model, prompt_tokens=1000, completion_tokens=1000)
        except Exception:  # noqa: BLE001 - litellm raises for models missing from its cost table
            raise ConfigError(
                f"max_cost_usd={max_cost_usd!r} cannot be enforced: the price of {endpoint.litellm_model!r} is not in "
                "litellm's cost table; give the endpoint pricing=(USD per million input tokens, USD per million "
                "output tokens), or use max_rollouts instead"
            ) from None
