"""Demo candidates: bootstrapped demos (the template's own successful runs), labeled demos (ground truth rendered
as the answer), and the candidate demo sets the search picks from.

`build_demo_sets` is pure; `collect_bootstrapped` is the async shell that runs the initial candidate through the
run's Evaluator (so those rollouts are cached and reused by the search); `bootstrap_demos` is the spec's
template-level function.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

from ...dtypes import Endpoint, ScoreFn
from ...errors import ConfigError
from ...llm import LLMSession
from ..evaluation import Evaluator
from ..formatting import validate_dataset
from ..protocols import Rollout, Task
from ..template_task import EnvironmentFactory, TemplateTask, check_score_fn
from ..types import SYSTEM, Candidate, FewShotExample, PromptTemplate

__all__ = ["DemoSet", "PoolDemo", "bootstrap_demos", "build_demo_sets", "collect_bootstrapped", "labeled_pool",
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


async def collect_bootstrapped(
    evaluator: Evaluator,
    candidate: Candidate,
    order: Sequence[int],
    *,
    target: int,
    threshold: float,
    limit: int,
    chunk: int,
) -> list[Rollout]:
    """Run `candidate` on samples in `order`, `chunk` at a time, until `target` runs succeeded or `limit` samples
    were tried; the successful rollouts, in `order`. Stops early when the budget grants nothing more."""
    found: list[Rollout] = []
    tried = 0
    while len(found) < target and tried < min(limit, len(order)):
        batch = list(order[tried:min(tried + chunk, limit)])
        tried += len(batch)
        results = await evaluator.evaluate(candidate, batch)
        found.extend(results[i] for i in batch if i in results and succeeded(results[i], threshold))
        if len(results) < len(batch):
            break
    return found[:target] if target else []


async def bootstrap_demos(
    template: PromptTemplate,
    dataset: Sequence[Mapping[str, Any]],
    seeds: Sequence[int],
    endpoint: Endpoint,
    score_fn: ScoreFn,
    max_demos: int,
    *,
    threshold: float = 1.0,
    environment_factory: EnvironmentFactory | None = None,
    max_concurrent: int = 10,
    session: LLMSession | None = None,
) -> list[FewShotExample]:
    """Run `template` on the rows `seeds` (in that order, `max_concurrent` at a time) and keep up to `max_demos`
    runs that scored at least `threshold` as demos. An agent run's demo keeps its tool calls and results as
    messages, so the demo shows the model *how* it used the tools."""
    if isinstance(max_demos, bool) or not isinstance(max_demos, int) or max_demos < 0:
        raise ConfigError(f"max_demos must be an integer >= 0, but got {max_demos!r}")
    validate_dataset(template, dataset, seeds, what="seeds")
    check_score_fn(score_fn)
    session = session or LLMSession(max_concurrent=max_concurrent)
    task = TemplateTask(template, dataset, endpoint, score_fn, session, environment_factory=environment_factory)
    found = await collect_bootstrapped(
        Evaluator(task), Candidate.from_template(template), list(seeds),
        target=max_demos, threshold=threshold, limit=len(seeds), chunk=max_concurrent,
    )
    return [FewShotExample.from_dict(r.demos[SYSTEM]) for r in found if SYSTEM in r.demos]
