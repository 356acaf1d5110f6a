"""The engine's hooks for strategies brought from outside (the DSPy bridge passes DSPy's component selectors this
way): an async component selector is awaited, its choice is what the step rewrites, and it is shown the
candidates compared when its step was planned; compared candidates record when they joined the comparison.
Plumbing on the fake seams (FakeReflection writes the word FakeTask rewards)."""

from __future__ import annotations

import asyncio
import random

from gepa_helpers import FakeReflection, FakeTask

from rollouts_dspy.prompt_optimization.gepa import GEPAConfig, GEPAStrategies, optimize_gepa
from rollouts_dspy.prompt_optimization.gepa.engine import GEPAEngine
from rollouts_dspy.prompt_optimization.gepa.strategies import ParetoSampler
from rollouts_dspy.prompt_optimization.protocols import Rollout
from rollouts_dspy.prompt_optimization.types import Candidate

INITIAL = Candidate({"a": "Answer the question well.", "b": "Check the answer."})


def config(**kw) -> GEPAConfig:
    params = dict(population_size=5, generations=4, elite_size=1, mutation_rate=0.5, crossover_rate=0.0,
                  train_seeds=tuple(range(12)), val_seeds=tuple(range(12, 24)), reflection_minibatch_size=3,
                  pareto_split="val")
    params.update(kw)
    return GEPAConfig(**params)


class SecondOnly:
    """An async selector that always picks component "b", after yielding to the loop a seeded number of times
    (so steps in flight reach it in varying order), recording what it was shown."""

    def __init__(self, seed: int) -> None:
        self.contexts = []
        self.rng = random.Random(seed)

    async def select(self, context):
        for _ in range(self.rng.randrange(4)):
            await asyncio.sleep(0)
        self.contexts.append(context)
        return ["b"]


async def run(seed: int):
    selector = SecondOnly(seed)
    out = await optimize_gepa(FakeTask(components=("a", "b")), FakeReflection(), INITIAL, config(),
                              strategies=GEPAStrategies(component_selector=selector))
    return out, selector


async def test_an_async_component_selector_is_awaited_and_decides_what_changes():
    out, selector = await run(0)
    assert selector.contexts
    children = [r for r in out.records if r.origin == "mutation"]
    assert children
    for child in children:
        parent = out.record(child.parents[0]).candidate
        assert child.candidate.instructions["a"] == parent.instructions["a"]
        assert child.candidate.instructions["b"] != parent.instructions["b"]


async def test_the_selector_sees_the_candidates_compared_when_its_step_was_planned():
    out, selector = await run(0)
    compared = {r.id: r for r in out.records if r.compared_at is not None}
    for context in selector.contexts:
        ids = [r.id for r in context.population]
        assert ids[0] == out.records[0].id and context.candidate_id in ids
        assert set(ids) <= set(compared)
        for r in context.population:
            assert dict(r.val_scores) == {i: compared[r.id].val_scores[i] for i in out.compared_on}
            assert r.candidate == compared[r.id].candidate and r.parents == compared[r.id].parents
    # The same plans whatever order the steps in flight reach the selector in.
    _, again = await run(1)

    def shown(s):
        return sorted((c.step, c.candidate_id, tuple(r.id for r in c.population)) for c in s.contexts)

    assert shown(selector) == shown(again)


async def test_compared_candidates_record_when_they_joined_the_comparison():
    out, _ = await run(0)
    pareto = len(out.compared_on)
    root = out.records[0]
    assert root.compared_at == 0
    for r in out.records[1:]:
        complete = set(out.compared_on) <= set(r.val_scores)
        assert (r.compared_at is not None) == complete
        if complete:
            # Found after its parents were compared (and after its own minibatch), before its own comparison.
            assert all(out.record(p).compared_at + pareto < r.compared_at for p in r.parents)
            assert r.compared_at + pareto <= out.rollouts_used



def test_a_merge_still_in_flight_counts_against_max_merges():
    """Several steps are planned before earlier ones are told: a merge in flight must count, or max_merges is
    exceeded by as many merges as there are steps in flight."""
    engine = GEPAEngine(config(crossover_rate=1.0, max_merges=1), ("a", "b"), INITIAL, ParetoSampler())
    engine.tell_initial({i: Rollout(i, float(i % 2)) for i in engine.pareto_set})
    other, _ = engine.state.add(Candidate({"a": "Answer briefly and well.", "b": "Check the answer twice."}), 0,
                                "mutation", (engine.root.id,))
    other.absorb({i: Rollout(i, float((i + 1) % 2)) for i in engine.pareto_set}, "val")
    other.full = True
    plans = [engine.ask(step) for step in range(10)]
    merge = next(p for p in plans if p.kind == "merge")
    assert all(engine.ask(step, [merge]).kind == "mutation" for step in range(10))
