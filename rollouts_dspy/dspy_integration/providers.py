"""What the bridge knows about a DSPy LM's calls: which failures are the provider's (and whether retrying may
help), what a call cost, and whether a dollar budget can be enforced on it.

DSPy projects provider failures onto `dspy.utils.exceptions.LMError` subclasses (older paths let litellm's own
exceptions through); everything else an LM or a program raises is a bug or the program's own failure and is
never mistaken for an outage.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from ..dtypes import Usage
from ..errors import ConfigError
from ..llm import LLMCallError, redact_secrets

__all__ = ["as_provider_failure", "check_priced_lms", "classify_error", "provider_failure", "usage_of"]

_TRANSIENT = frozenset({
    # DSPy's projection of provider failures (dspy.utils.exceptions) ...
    "LMRateLimitError", "LMTimeoutError", "LMServerError", "LMTransportError",
    # ... and litellm's own, for LMs that let them through.
    "RateLimitError", "Timeout", "APIConnectionError", "InternalServerError", "ServiceUnavailableError",
    "BadGatewayError",
})

_UNMEASURED_EXACT = frozenset({
    # DSPy's catch-alls for a reply it could not read (e.g. an HTTP 200 whose body is not JSON): the provider's
    # fault, not the program's. Exact names only: their subclasses (bad request, context window) are permanent.
    "LMProviderError", "LMUnexpectedError", "LMStreamAssemblyError",
    # A rejected key or an exhausted account: systemic, never the prompt's failure (a run of them stops the run).
    "LMAuthError", "LMBillingError", "AuthenticationError", "PermissionDeniedError",
})

_SYSTEMIC = frozenset({"LMAuthError", "LMBillingError", "AuthenticationError", "PermissionDeniedError"})
"""Failures no retry fixes and that are nobody's prompt: a rejected key, an exhausted account."""

_PERMANENT = frozenset({
    # The request itself was refused: retrying the same request cannot help (the prompt's failure).
    "LMInvalidRequestError", "ContextWindowExceededError", "LMUnsupportedModelError", "BadRequestError",
    "ContentPolicyViolationError", "NotFoundError", "UnprocessableEntityError",
})


def _names(exc: BaseException) -> list[str]:
    return [cls.__name__ for cls in type(exc).__mro__]


def classify_error(exc: BaseException) -> str:
    """'llm' for a transient or systemic provider failure (the score is unmeasured), 'task' for anything else."""
    if type(exc).__name__ in _UNMEASURED_EXACT:
        return "llm"
    return "llm" if any(n in _TRANSIENT for n in _names(exc)) else "task"


def provider_failure(exc: BaseException) -> LLMCallError | None:
    """A provider's failure as the runtime reads it, in the LLM layer's vocabulary (`kind`: "timeout",
    "malformed_response" for a reply that could not be read, else the DSPy/litellm class name; `retryable`:
    whether the same request may succeed later); None when `exc` is not a provider failure (a bug, a
    cancellation), which the caller lets propagate as itself."""
    names = _names(exc)
    if not any(n in _TRANSIENT or n in _UNMEASURED_EXACT or n in _PERMANENT or n == "LMError" for n in names):
        return None
    name = type(exc).__name__
    if name in ("LMProviderError", "LMUnexpectedError", "LMStreamAssemblyError"):
        kind = "malformed_response"
    elif any("Timeout" in n for n in names):
        kind = "timeout"
    else:
        kind = name
    retryable = classify_error(exc) == "llm" and name not in _SYSTEMIC
    return LLMCallError(kind, str(exc)[:2000], retryable=retryable, attempts=1)


def as_provider_failure(exc: Exception, lm: Any) -> Exception:
    """What to raise for `exc`, raised by a call of `lm` (or code calling it): a provider failure as an
    LLMCallError (the runtime counts it towards an outage), with `lm`'s key removed from its message (providers
    quote it in some errors); anything else -- a bug -- as itself."""
    failure = provider_failure(exc)
    if failure is None:
        return exc
    key = str((getattr(lm, "kwargs", None) or {}).get("api_key") or "")
    failure.message = redact_secrets(failure.message, key)
    failure.args = (f"{failure.kind}: {failure.message}",)
    return failure


def usage_of(tracker: Any, lms: Sequence[Any] = ()) -> Usage:
    """Tokens per call from a `dspy.track_usage` tracker, priced when the model's price is known."""
    hosted = {getattr(lm, "model", None): lm for lm in lms if lm is not None}
    total = Usage()
    for model, entries in tracker.usage_data.items():
        for entry in entries:
            prompt = int(entry.get("prompt_tokens") or 0)
            completion = int(entry.get("completion_tokens") or 0)
            total = total + Usage(prompt, completion, _cost(hosted.get(model), model, prompt, completion), 1)
    return total


@functools.lru_cache(maxsize=64)
def _prices(model: str) -> tuple[float, float] | None:
    """(USD per input token, per output token) from DSPy's bundled model metadata; None when unknown."""
    try:
        from dspy.clients.model_metadata import model_info

        provider, _, name = model.partition("/")
        info = model_info(provider, name) if name else {}
        return float(info["input_cost_per_token"]), float(info["output_cost_per_token"])
    except Exception:  # noqa: BLE001 - advisory: an unknown price is None, never an error
        return None


def _cost(lm: Any, model: str, prompt: int, completion: int) -> float | None:
    # A model behind a custom api_base (a local server, a proxy) has no list price: unknown, not zero.
    if lm is None or getattr(lm, "kwargs", {}).get("api_base"):
        return None
    prices = _prices(model)
    return None if prices is None else prices[0] * prompt + prices[1] * completion


def check_priced_lms(max_cost_usd: float | None, *lms: Any) -> None:
    """A dollar budget needs every LM's price; an LM DSPy cannot price (e.g. behind a custom api_base) would let
    the run spend without counting, so it is a ConfigError before any call."""
    if max_cost_usd is None:
        return
    for lm in lms:
        model = str(getattr(lm, "model", ""))
        if lm is not None and _cost(lm, model, 1000, 1000) is None:
            raise ConfigError(f"max_cost_usd={max_cost_usd!r} cannot be enforced: DSPy has no price for the LM "
                              f"{model!r} (a custom api_base has no list price); use max_rollouts / "
                              "max_metric_calls instead")
