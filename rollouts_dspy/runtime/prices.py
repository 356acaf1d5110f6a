"""The one price estimator: what a call of some kind is expected to cost before it is made.

Dollars are known only after a call returns, so admission under a dollar budget runs on estimates. The estimate of
a kind of call is the dearest one seen so far times a margin (a child's prompt is usually longer than its
parents', a demo set longer than zero-shot), so a cap is exceeded only by a call that costs more than 1.25x the
dearest call of its kind before it. Before any call of a kind has a known price the estimate is None: the caller
makes one call alone (a probe) instead of launching a batch blind.
"""

from __future__ import annotations

__all__ = ["MARGIN", "PriceBook"]

MARGIN = 1.25


class PriceBook:
    """Observed prices per kind of call ('rollout', 'reflection', 'proposer', ...). Pure bookkeeping."""

    def __init__(self) -> None:
        self._dearest: dict[str, float] = {}
        self._total: dict[str, tuple[float, int]] = {}

    def observe(self, kind: str, cost_usd: float | None) -> None:
        """A call of `kind` finished and cost this much. A call without a price (it failed before the provider
        counted tokens) says nothing about the price and is ignored."""
        if cost_usd is not None:
            self._dearest[kind] = max(self._dearest.get(kind, 0.0), float(cost_usd))
            total, n = self._total.get(kind, (0.0, 0))
            self._total[kind] = (total + float(cost_usd), n + 1)

    def estimate(self, kind: str) -> float | None:
        """The expected cost of one more call of `kind`; None until a call of it had a price."""
        dearest = self._dearest.get(kind)
        return None if dearest is None else MARGIN * dearest

    def average(self, kind: str) -> float | None:
        """The mean price of a call of `kind` so far (for planning how far a budget goes; admission uses the
        cautious `estimate`)."""
        total, n = self._total.get(kind, (0.0, 0))
        return total / n if n else None

    def to_dict(self) -> dict[str, float]:
        return dict(sorted(self._dearest.items()))
