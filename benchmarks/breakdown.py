"""Where a search's budget went, from its candidate records (the engine's own per-sample scores).

For our engines every rollout is a score in some candidate's record: on training samples (`train_scores`) or on
validation samples (`val_scores`). A candidate run on every training sample had a full evaluation; one run on
fewer was stopped at its gating minibatch. For dspy.GEPA the result says how many full validation-set evaluations
it made; the rest of its metric calls are minibatches. Counts are rollouts (task calls on samples).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["dspy_gepa_breakdown", "records_breakdown"]


def records_breakdown(records: Iterable[Any], train_seeds: Sequence[int], val_seeds: Sequence[int],
                      minibatch_size: int | None, rollouts_used: int) -> dict[str, Any]:
    """{"initial": root's evaluation, "minibatch": children's gating rollouts, "full": children's full
    evaluations beyond their minibatch, "validation": rollouts on val_seeds, "other": the rest of rollouts_used
    (bootstrapping, failed rollouts that left no score), counts of children, accepted children}."""
    train = set(train_seeds)
    out = {"initial": 0, "minibatch": 0, "full": 0, "validation": 0, "children": 0, "full_children": 0}
    for record in records:
        scored = len(record.train_scores)
        out["validation"] += len(record.val_scores)
        if record.origin == "initial":
            out["initial"] += scored
            continue
        if scored == 0 and not record.val_scores:
            continue
        out["children"] += 1
        if train and train <= set(record.train_scores):
            out["full_children"] += 1
            gate = min(minibatch_size or 0, scored)
            out["minibatch"] += gate
            out["full"] += scored - gate
        else:
            out["minibatch"] += scored
    counted = out["initial"] + out["minibatch"] + out["full"] + out["validation"]
    out["other"] = rollouts_used - counted
    out["rollouts_used"] = rollouts_used
    return out


def dspy_gepa_breakdown(details: Any, val_size: int, metric_calls: int) -> dict[str, Any]:
    """dspy.GEPA: `num_full_val_evals` evaluations of the whole valset (the trainset when valset=None); every other
    metric call is a minibatch (parent and child, 3 rows each by default)."""
    full = int(getattr(details, "num_full_val_evals", 0) or 0)
    return {"full_evaluations": full, "full": full * val_size, "minibatch": metric_calls - full * val_size,
            "candidates": len(getattr(details, "candidates", []) or []), "rollouts_used": metric_calls}


def settings_of(config: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The engine settings a run actually used (what the budget-driven defaults chose)."""
    return {k: config.get(k) for k in names if k in config}
