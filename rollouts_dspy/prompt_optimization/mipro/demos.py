"""Demo candidates: bootstrapped demos (the starting point's own successful runs), labeled demos (ground truth
rendered as the answer), and the candidate demo sets the search picks from. Pure; the runner runs the rollouts."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

from ..protocols import Rollout, Task

__all__ = ["DemoSet", "PoolDemo", "bootstrap_limit", "bootstrap_target", "build_demo_sets", "labeled_pool",
           "succeeded"]

Demo = Mapping[str, Any]
DemoSet = tuple[Demo, ...]
PoolDemo = tuple[int, Demo]
"""(sample index, demo): the index keeps one sample from appearing twice in a set (labeled and bootstrapped)."""


def succeeded(rollout: Rollout, threshold: float) -> bool:
    """A run that may become a demo: measured, no error, reward at or above the threshold (a float compare: a
    Score is never used as a truth value)."""
    return rollout.error is None and rollout.score is not None and rollout.score >= threshold


def _content(demos: Sequence[Demo]) -> str:
    return json.dumps([dict(d) for d in demos], sort_keys=True, default=str)


def build_demo_sets(
    initial: DemoSet,
    labeled: Sequence[PoolDemo],
    bootstrapped: Sequence[PoolDemo],
    *,
    num_sets: int,
    max_labeled: int,
    max_bootstrapped: int,
    seed: int | str,
) -> list[DemoSet]:
    """Candidate demo sets, without duplicates, at most `num_sets`:

    0. the initial candidate's demos (so the enqueued first trial is exactly the starting point);
    1. the empty set (zero-shot);
    2. the first `max_labeled` labeled demos (labeled-only);
    3. then seeded random mixes: up to `max_bootstrapped` bootstrapped demos followed by up to `max_labeled`
       labeled demos of other samples.
    """
    sets: list[DemoSet] = []
    seen: set[str] = set()

    def add(demos: Sequence[Demo]) -> None:
        key = _content(demos)
        if len(sets) < num_sets and key not in seen:
            seen.add(key)
            sets.append(tuple(demos))

    add(initial)
    add(())
    if max_labeled > 0 and labeled:
        add([d for _, d in labeled[:max_labeled]])
    k_boot = min(max_bootstrapped, len(bootstrapped))
    if k_boot == 0 and max_labeled == 0:
        return sets
    rng = random.Random(f"mipro-demo-sets:{seed}")
    for _ in range(4 * num_sets):  # bounded: small pools cannot yield num_sets distinct sets
        if len(sets) >= num_sets:
            break
        boot = rng.sample(list(bootstrapped), k_boot)
        used = {i for i, _ in boot}
        pool = [item for item in labeled if item[0] not in used]
        lab = rng.sample(pool, min(max_labeled, len(pool)))
        if not boot and not lab:
            break
        add([d for _, d in boot] + [d for _, d in lab])
    return sets


def labeled_pool(task: Task, order: Sequence[int], component: str, limit: int) -> list[PoolDemo]:
    """Up to `limit` labeled demos for `component`, from samples in `order` (rows without a label are skipped)."""
    out: list[PoolDemo] = []
    for index in order:
        if len(out) >= limit:
            break
        demo = task.labeled_demo(index, component)
        if demo is not None:
            out.append((index, dict(demo)))
    return out


def bootstrap_target(max_bootstrapped: int, num_demo_sets: int) -> int:
    """Successful runs wanted as bootstrapped demos: enough for the random demo sets to draw different mixes
    (at most four sets' worth: more of the starting point's runs buy little)."""
    if max_bootstrapped == 0:
        return 0
    return max_bootstrapped * max(1, min(num_demo_sets - 3, 4))


def bootstrap_limit(max_bootstrapped: int, num_demo_sets: int, num_train: int, cap: int | None) -> int:
    """At most this many training samples are run to find them (`cap`: the config's max_bootstrap_rollouts)."""
    target = bootstrap_target(max_bootstrapped, num_demo_sets)
    if target == 0:
        return 0
    return min(num_train, cap or 4 * target)
