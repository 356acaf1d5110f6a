"""The one outage detector: "the provider is down" is decided here and nowhere else.

Only provider failures count (a rollout the Task could not measure because its LLM call failed after retries, a
model call that raised a provider error); any answer resets the count. Budget refusals, rejected answers,
score_fn errors and bugs in our own code are neither failures nor answers here: they neither count nor reset.
"""

from __future__ import annotations

from .errors import ProviderUnavailableError

__all__ = ["DEFAULT_OUTAGE_THRESHOLD", "OutageDetector"]

DEFAULT_OUTAGE_THRESHOLD = 8
"""Consecutive provider failures (each after its own retries) before the provider counts as down."""


class OutageDetector:
    """Counts consecutive provider failures across every role of a run."""

    def __init__(self, threshold: int = DEFAULT_OUTAGE_THRESHOLD, *, resume_hint: str = "") -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1, but got {threshold!r}")
        self.threshold = threshold
        self.resume_hint = resume_hint
        self.in_a_row = 0
        self._last = ("", "", "task")  # (kind, message, role) of the last failure

    def answered(self) -> None:
        self.in_a_row = 0

    def failed(self, role: str, kind: str, message: str) -> None:
        self.in_a_row += 1
        self._last = (kind, message[:500], role)

    @property
    def down(self) -> bool:
        return self.in_a_row >= self.threshold

    def check(self) -> None:
        """Raise ProviderUnavailableError once the threshold is reached."""
        if self.down:
            kind, message, role = self._last
            raise ProviderUnavailableError(self.in_a_row, message, role=role, kind=kind,
                                           resume_hint=self.resume_hint)
