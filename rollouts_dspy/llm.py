"""The one way this package calls an LLM: litellm, with retries, a shared concurrency limit and accounting.

Errors are sorted into two kinds. *Transient* ones (rate limits, 5xx, timeouts, connection drops, a malformed or
empty answer) are retried with exponential backoff and jitter up to `Endpoint.max_retries` times. *Permanent*
ones (bad request, context window exceeded, content policy, authentication) are not retried: they will not
change. Either kind, once final, is raised as `LLMCallError` with `retryable` telling which it was. A missing API
key is found before any request is sent (kind "missing_api_key", naming the variable to set); a server on this
machine or network needs no key.

litellm does more per call than this layer needs (measure it with `python -m benchmarks.llm_overhead`). The part
that can be cut from outside is its pricing: the price litellm puts on a response is read back instead of asked
for twice, and litellm is handed the price it would otherwise search its table for (see `_litellm_price`). Its
HTTP clients are cached by litellm and their connections kept alive across calls (one connection per request in
flight, not per call).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .dtypes import Endpoint, Message, Tool, ToolCall, Usage
from .providers import LOCAL_SERVER_KEY, is_local_base, litellm_module, litellm_prices, missing_key_variables
from .runtime.errors import ProviderError
from .runtime.meter import RoleUsage

__all__ = ["Completion", "LLMCallError", "LLMSession", "MissingAPIKeyError", "check_api_keys",
           "check_priced", "is_priced", "redact_secrets"]


class LLMCallError(ProviderError):
    """An LLM call that failed for good. `kind` names the failure (litellm's error class name, or 'timeout',
    'missing_api_key', 'empty_response', 'malformed_response'); `retryable` says whether it was transient (its
    retries were spent); `attempts` counts the requests sent (0: none was, e.g. no API key). The runtime's
    outage detector reads both (`ProviderError.outage`)."""

    def __init__(self, kind: str, message: str, *, retryable: bool, attempts: int) -> None:
        super().__init__(kind, message, retryable=retryable, attempts=attempts)


class MissingAPIKeyError(LLMCallError):
    """No API key to send (kind 'missing_api_key'): the run's configuration, not one call's failure. Every call
    would fail the same way, so it is never retried and the agent loop does not turn it into a failed rollout."""

    def __init__(self, message: str, *, attempts: int = 0) -> None:
        super().__init__("missing_api_key", message, retryable=False, attempts=attempts)


def _error(kind: str, message: str, *, retryable: bool, attempts: int) -> LLMCallError:
    if kind == "missing_api_key":
        return MissingAPIKeyError(message, attempts=attempts)
    return LLMCallError(kind, message, retryable=retryable, attempts=attempts)


@dataclass(frozen=True)
class Completion:
    """One assistant turn and what it cost."""

    message: Message
    usage: Usage


_PERMANENT = frozenset({
    "BadRequestError", "ContextWindowExceededError", "ContentPolicyViolationError", "AuthenticationError",
    "PermissionDeniedError", "NotFoundError", "UnsupportedParamsError", "InvalidRequestError",
    "UnprocessableEntityError", "PaymentRequiredError", "BudgetExceededError",
})
_TRANSIENT = frozenset({"RateLimitError", "InternalServerError", "ServiceUnavailableError", "BadGatewayError",
                        "APIConnectionError", "APIError"})
# The OpenAI client's words when it has no key to send; litellm reports them as a server error.
_NO_KEY_TEXT = ("missing credentials", "api_key client option must be set")


def _classify(exc: BaseException) -> tuple[str, bool]:
    """(kind, retryable) of an exception raised by litellm or the transport; the most specific class wins."""
    lineage = [cls.__name__ for cls in type(exc).__mro__]
    text = str(exc).lower()
    if any(words in text for words in _NO_KEY_TEXT):
        return "missing_api_key", False
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


@dataclass
class LLMSession:
    """Everything one run shares across its LLM calls: the concurrency limit and the accounting.

    `max_concurrent` bounds the requests in flight across every role (task rollouts, reflection, proposals).
    """

    max_concurrent: int = 10
    seed: int = 0
    stats: dict[str, RoleUsage] = field(default_factory=dict)  # per role, with the retries only this layer sees
    _semaphore: asyncio.Semaphore | None = field(default=None, repr=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _keys: dict[tuple[str, str | None], str | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, but got {self.max_concurrent!r}")
        self._rng = random.Random(self.seed)  # jitter only; never affects results

    def _limit(self) -> asyncio.Semaphore:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_concurrent)
        return self._semaphore

    def role_stats(self, role: str) -> RoleUsage:
        return self.stats.setdefault(role, RoleUsage())

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
        try:
            api_key = self._api_key(endpoint)
        except LLMCallError:
            stats.failures += 1
            raise
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._limit():
                    response = await _call(endpoint, api_key, messages, tools)
                completion = _parse_response(response, endpoint)
            except LLMCallError as exc:
                error = exc
            except Exception as exc:  # noqa: BLE001 - every provider error is classified, none swallowed
                kind, retryable = _classify(exc)
                error = _error(kind, _explain(kind, _redact(str(exc), endpoint), endpoint, api_key),
                               retryable=retryable, attempts=attempt)
            else:
                stats.add(completion.usage)
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

    def _api_key(self, endpoint: Endpoint) -> str | None:
        """The key to send (None: litellm reads the provider's variable), decided once per model and server."""
        if endpoint.api_key:
            return endpoint.api_key
        where = (endpoint.litellm_model, endpoint.api_base)
        if where not in self._keys:
            self._keys[where] = _key_without_endpoint_key(endpoint)
        return self._keys[where]


def _key_without_endpoint_key(endpoint: Endpoint) -> str | None:
    """For an Endpoint without `api_key`: None when the provider's key is in the environment (or its credentials
    are not a plain key), a placeholder for a local server, else MissingAPIKeyError naming the variable to set --
    before any request, so a missing key is neither retried nor mistaken for an outage."""
    if any(_CREDENTIAL.search(str(name)) for name in endpoint.extra_params):
        return None  # credentials passed through extra_params (an Azure AD token, say)
    variables = missing_key_variables(endpoint.litellm_model)
    if not variables:
        return None
    if is_local_base(endpoint.api_base):
        return LOCAL_SERVER_KEY
    where = f" at {endpoint.api_base}" if endpoint.api_base else ""
    raise MissingAPIKeyError(
        f"no API key for {endpoint.litellm_model}{where}: set {' or '.join(variables)} in the environment (or "
        "give the Endpoint an api_key; in a config file, api_key_env names the variable to read)")


def check_api_keys(*endpoints: Endpoint) -> None:
    """Before a run: every endpoint has a key to send (its own, the provider's environment variable, or none
    needed for a server on this machine or network); ConfigError naming the variable to set otherwise."""
    from .errors import ConfigError

    for endpoint in endpoints:
        if not endpoint.api_key:
            try:
                _key_without_endpoint_key(endpoint)
            except MissingAPIKeyError as exc:
                raise ConfigError(exc.message) from None


_CREDENTIAL = re.compile(r"key|token|credential|secret|aws_|vertex_", re.IGNORECASE)


def _explain(kind: str, message: str, endpoint: Endpoint, api_key: str | None) -> str:
    """The provider's message, plus what to do when the failure is the key's."""
    if kind == "missing_api_key":
        variables = missing_key_variables(endpoint.litellm_model)
        hint = f"set {' or '.join(variables)}" if variables else "set the provider's API key variable"
        return f"{message} ({hint}, or give the Endpoint an api_key)"
    if kind not in ("AuthenticationError", "PermissionDeniedError"):
        return message
    if api_key == LOCAL_SERVER_KEY:
        return (f"{message} (the server at {endpoint.api_base} wants an API key: give the Endpoint an api_key; in "
                "a config file, api_key_env names the variable to read)")
    source = "the Endpoint's api_key" if endpoint.api_key else "the API key in the provider's environment variable"
    return f"{message} (the provider refused {source}: check it)"


async def _call(endpoint: Endpoint, api_key: str | None, messages: Sequence[Message], tools: Sequence[Tool]) -> Any:
    litellm = litellm_module()
    kwargs: dict[str, Any] = dict(endpoint.extra_params)
    kwargs.update(
        model=endpoint.litellm_model,
        messages=[m.to_openai() for m in messages],
        temperature=endpoint.temperature,
        timeout=endpoint.timeout,
        num_retries=0,  # retries are ours, so they are counted and bounded in one place
    )
    kwargs.setdefault("drop_params", True)  # per call: a parameter a model refuses is dropped, not fatal
    if endpoint.api_base:
        kwargs["api_base"] = endpoint.api_base
    if api_key:
        kwargs["api_key"] = api_key
    if endpoint.max_tokens is not None:
        kwargs["max_tokens"] = endpoint.max_tokens
    if tools:
        kwargs["tools"] = [t.to_openai() for t in tools]
    price = _litellm_price(endpoint)
    if price is not None and "input_cost_per_token" not in kwargs:
        kwargs["input_cost_per_token"], kwargs["output_cost_per_token"] = price
    # asyncio's own timeout backs up the client's, so a hung connection can never stall a run.
    return await asyncio.wait_for(litellm.acompletion(**kwargs), timeout=endpoint.timeout + 5.0)


_NEGLIGIBLE_PRICE = (1e-300, 1e-300)


def _litellm_price(endpoint: Endpoint) -> tuple[float, float] | None:
    """The per-token price to hand litellm with the call, if any.

    litellm prices every response before returning it. For a model missing from its table that means searching
    the table and diagnosing the miss on every call, ~0.4 ms of CPU (15% of a call), for a cost we then ignore.
    So litellm is told the Endpoint's own pricing when there is one (then its price is the true one), nothing for
    a model its table knows, and a negligible price (1e-300 USD per token) for an unpriced model, which ends the
    search. Our accounting never reads that number: the cost of an unpriced model's call stays unknown (None).
    """
    if endpoint.pricing is not None:
        return endpoint.pricing[0] / 1_000_000, endpoint.pricing[1] / 1_000_000
    return None if litellm_prices(endpoint.litellm_model) else _NEGLIGIBLE_PRICE


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
    elif litellm_prices(endpoint.litellm_model):
        cost = _litellm_cost(response)
    else:
        cost = None  # not in litellm's table: tokens only, never a made-up price
    return Usage(prompt, completion, cost, 1)


def _litellm_cost(response: Any) -> float | None:
    """The price litellm put on the response when it built it (asking `completion_cost` again costs as much);
    None when it could not price this response."""
    hidden = getattr(response, "_hidden_params", None)
    if isinstance(hidden, dict) and "response_cost" in hidden:
        cost = hidden["response_cost"]
        return None if cost is None else float(cost)
    try:
        return float(litellm_module().completion_cost(completion_response=response))
    except Exception:  # noqa: BLE001 - litellm raises for responses it cannot price
        return None


def is_priced(endpoint: Endpoint) -> bool:
    """Are the endpoint's calls priced: by its own `pricing`, or by litellm's cost table?"""
    return endpoint.pricing is not None or litellm_prices(endpoint.litellm_model)


def check_priced(max_cost_usd: float | None, *endpoints: Endpoint) -> None:
    """Before any call: a dollar budget needs every endpoint's price (its `pricing`, or litellm's cost table),
    else the run could not count its dollars and the budget would silently not bind. (The CLI checks with
    `is_priced` first and words the advice for its config file.)"""
    if max_cost_usd is None:
        return
    from .errors import ConfigError

    for endpoint in endpoints:
        if not is_priced(endpoint):
            raise ConfigError(
                f"max_cost_usd={max_cost_usd!r} cannot be enforced: the price of {endpoint.litellm_model!r} is not in "
                "litellm's cost table; give the endpoint pricing=(USD per million input tokens, USD per million "
                "output tokens), or use max_rollouts instead"
            )
