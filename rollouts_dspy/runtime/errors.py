"""What the runtime raises and what it reads from the errors of others.

A provider failure is told apart from everything else by one question, `counts_as_outage(exc)`: only an error that
says the provider could not answer (after its own retries) or refuses every call the same way (a bad key, a model
that does not exist) may count toward "the provider is down". A budget refusal, a rejected answer or a bug in our
own code never does.
"""

from __future__ import annotations

__all__ = ["SYSTEMIC_KINDS", "BudgetExhausted", "ProviderError", "ProviderUnavailableError", "counts_as_outage"]

SYSTEMIC_KINDS = frozenset({"AuthenticationError", "PermissionDeniedError", "NotFoundError", "PaymentRequiredError",
                            "BudgetExceededError", "missing_api_key"})
"""Permanent provider errors that say nothing about the prompt: every call would fail the same way."""


class ProviderError(RuntimeError):
    """An LLM call that failed for good. `kind` names the failure (an error class name such as 'RateLimitError',
    or 'timeout', 'empty_response', ...); `retryable` says whether it was transient (retries were spent on it)."""

    def __init__(self, kind: str, message: str, *, retryable: bool, attempts: int = 1) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.retryable = retryable
        self.attempts = attempts

    @property
    def outage(self) -> bool:
        """Does this failure say the provider cannot answer at all (as opposed to: not this request)?"""
        if self.kind in ("empty_response", "malformed_response"):
            return False  # the provider answered; the answer was unusable
        return self.retryable or self.kind in SYSTEMIC_KINDS


def counts_as_outage(exc: BaseException) -> bool:
    """True only for provider failures (see the module doc); our bugs and budget refusals are never outages."""
    return isinstance(exc, ProviderError) and exc.outage


class BudgetExhausted(RuntimeError):
    """The budget cannot pay for this call. Not a failure of anything: the search stops asking."""


class ProviderUnavailableError(RuntimeError):
    """The provider failed many calls in a row (after their retries): the run stops instead of scoring nothing.

    `role` is what the failed calls were for ('task', 'reflection', 'proposer'), `kind` the last failure's kind and
    `last_error` its message. The message says what to do: raise the timeout when the calls timed out, check the
    key when they were refused, and how to continue (`resume_hint`, given by whoever started the run)."""

    def __init__(self, failures: int, last_error: str, *, role: str = "task", kind: str = "",
                 resume_hint: str = "") -> None:
        self.failures = failures
        self.last_error = last_error
        self.role = role
        self.kind = kind
        self.resume_hint = resume_hint
        super().__init__(self._message())

    def _message(self) -> str:
        calls = "rollouts" if self.role == "task" else f"{self.role} calls"
        text = f"the LLM provider failed {self.failures} {calls} in a row after retries; stopping the run"
        if self.kind == "timeout":
            text += (" (they timed out: if the server is up but slow, raise the endpoint's timeout, "
                     "e.g. Endpoint(timeout=...) or `timeout` in the config file)")
        elif self.kind in SYSTEMIC_KINDS:
            text += " (the provider refused them: check the API key, the model name and the account)"
        if self.resume_hint:
            text += f"; {self.resume_hint}"
        return f"{text}. Last error: {self.last_error}"

    def with_resume_hint(self, hint: str) -> ProviderUnavailableError:
        """The same error, told how the run can be continued (front doors know; the runtime does not)."""
        return ProviderUnavailableError(self.failures, self.last_error, role=self.role, kind=self.kind,
                                        resume_hint=hint)
