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
                      minibatch_size: int | None, rollouts_used: int,
                      compared_on: Sequence[int] = ()) -> dict[str, Any]:
    """{"initial": the start's evaluation, "minibatch": gating rollouts, "full": accepted children's evaluations
    on the samples candidates are compared on (beyond their minibatch), "validation": rollouts on validation
    samples, "other": the rest of rollouts_used (bootstrapping, failed rollouts that left no score), counts of
    children and of children evaluated in full}.

    With `compared_on` (the engine's Pareto set) a training rollout is a full evaluation when its sample is in
    that set and a minibatch rollout otherwise (parents run on their children's minibatch too). Without it every
    training sample is compared on, and a child run on all of them spent its first `minibatch_size` rollouts on
    its gating minibatch."""
    out = {"initial": 0, "minibatch": 0, "full": 0, "validation": 0, "children": 0, "full_children": 0}
    compared = set(compared_on) or set(train_seeds)
    for record in records:
        out["validation"] += len(record.val_scores)
        root = record.origin == "initial"
        if not root and (record.train_scores or record.val_scores):
            out["children"] += 1
            out["full_children"] += bool(compared) and compared <= set(record.train_scores)
        if compared_on:
            inside = sum(1 for i in record.train_scores if i in compared)
            out["initial" if root else "full"] += inside
            out["minibatch"] += len(record.train_scores) - inside
        elif root:
            out["initial"] += len(record.train_scores)
        elif compared <= set(record.train_scores):
            gate = min(minibatch_size or 0, len(record.train_scores))
            out["minibatch"] += gate
            out["full"] += len(record.train_scores) - gate
        else:
            out["minibatch"] += len(record.train_scores)
    counted = out["initial"] + out["minibatch"] + out["full"] + out["validation"]
    out["other"] = rollouts_used - counted
    out["rollouts_used"] = rollouts_used
    out["compared_on"] = len(compared_on) or None
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
