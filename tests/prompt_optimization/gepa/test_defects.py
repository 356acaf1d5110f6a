"""Regression tests for defects of v0.1 that the rebuilt engine fixes (issue 15), end to end through GEPA."""

from __future__ import annotations

import asyncio
import random
import re

import pytest
from gepa_helpers import FakeReflection, FakeTask

from rollouts_dspy.prompt_optimization.events import StepFinished
from rollouts_dspy.prompt_optimization.gepa import GEPAConfig, optimize_gepa
from rollouts_dspy.prompt_optimization.types import Candidate

INITIAL = Candidate({"system": "Answer the question well."})


def config(**kw) -> GEPAConfig:
    params = dict(population_size=5, elite_size=1, generations=4, train_seeds=tuple(range(12)),
                  val_seeds=tuple(range(12, 24)), reflection_minibatch_size=3, minibatch_size=6, seed=7)
    params.update(kw)
    return GEPAConfig(**params)


class ShuffledTask(FakeTask):
    """FakeTask whose calls take a random time (its own RNG): calls finish in a different order every run."""

    def __init__(self, rng_seed: int, **kw) -> None:
        super().__init__(**kw)
        self.rng = random.Random(rng_seed)

    async def run(self, candidate, index):
        self.delay = self.rng.uniform(0.0, 0.004)
        return await super().run(candidate, index)


class ShuffledReflection(FakeReflection):
    def __init__(self, rng_seed: int) -> None:
        super().__init__()
        self.rng = random.Random(rng_seed)

    async def complete(self, messages):
        self.delay = self.rng.uniform(0.0, 0.006)
        return await super().complete(messages)


async def test_the_order_calls_finish_in_never_changes_the_result():
    runs = []
    for rng_seed in (1, 2, 3):
        task = ShuffledTask(rng_seed)
        out = await optimize_gepa(task, ShuffledReflection(rng_seed + 10), INITIAL,
                                  config(crossover_rate=0.5, mutation_rate=0.5))
        runs.append((out, task.finished))
    (a, fa), (b, fb), (c, fc) = runs
    assert fa != fb or fb != fc  # the calls really finished in different orders...
    assert a.records == b.records == c.records  # ...and the search is the same
    assert a.best_id == b.best_id == c.best_id and a.history[-1].rollouts_used == c.history[-1].rollouts_used


class ListReflection(FakeReflection):
    """Adds the needed word as a list item, so merges (which keep both parents' list items) make new prompts."""

    async def complete(self, messages):
        text, usage = await super().complete(messages)
        return text.replace(" Also mind ", "\n- mind "), usage


async def test_a_merged_candidate_is_reflected_on_with_its_own_rollouts():
    # Defect 9: a crossover child was reflected on with the merged text as "current instructions" but parent A's
    # rollouts as the evidence. Every reflection request must show rollouts of the very instructions it shows.
    task, model = FakeTask(), ListReflection()
    out = await optimize_gepa(task, model, INITIAL, config(crossover_rate=1.0, mutation_rate=1.0, generations=5))
    assert any(r.origin.startswith("merge") for r in out.records)
    ran = {(key, i) for key, i in task.runs}
    for messages in model.calls:
        text = messages[0].content
        current = re.search(r"```\n(.*?)\n```", text, re.S).group(1)
        shown = {int(q) for q in re.findall(r"\bq(\d+)\b", text)}
        key = Candidate({"system": current}).key
        assert shown and all((key, i) in ran for i in shown), current[:80]


async def test_with_only_a_dollar_budget_the_best_is_still_chosen_on_validation():
    # Defect 2: with max_cost_usd and no max_rollouts, no validation reserve was kept: val_seeds went unused and
    # the best was chosen by training mean, silently.
    out = await optimize_gepa(FakeTask(), FakeReflection(), INITIAL, config(max_cost_usd=0.15, generations=50))
    assert out.stop_reason == "budget" and out.cost_usd <= 0.15
    validated = [r for r in out.records if len(r.val_scores) == 12]
    assert validated and out.record(out.best_id) in validated


async def test_a_resumed_run_reports_the_whole_runs_usage_and_time(tmp_path):
    # Defect 3: after a resume the usage table counted only the resumed process and elapsed restarted at 0.
    full = await optimize_gepa(FakeTask(), FakeReflection(), INITIAL, config())

    class Stop(Exception):
        pass

    def stop(event):
        if isinstance(event, StepFinished) and event.stats.generation == 1:
            raise Stop

    first = FakeTask(delay=0.002)
    with pytest.raises(Stop):
        await optimize_gepa(first, FakeReflection(), INITIAL, config(checkpoint_dir=str(tmp_path)), reporter=stop)
    await asyncio.sleep(0.05)
    resumed = await optimize_gepa(FakeTask(), FakeReflection(), INITIAL, config(checkpoint_dir=str(tmp_path)))
    lost = len(first.runs) - len(first.finished)  # sent at the interruption, never finished: sent again
    # Every finished call of both processes is in the usage table (each pair finished once: as uninterrupted);
    # the calls sent and lost at the interruption count as rollouts used.
    assert resumed.usage["task"]["calls"] == full.usage["task"]["calls"] > 0
    assert resumed.usage["reflection"]["calls"] == full.usage["reflection"]["calls"] > 0
    assert resumed.cost_usd == pytest.approx(full.cost_usd)
    assert resumed.rollouts_used == full.rollouts_used + lost
    assert [h.rollouts_used for h in resumed.history] == [h.rollouts_used for h in full.history]
    assert resumed.history[-1].elapsed_seconds >= resumed.history[0].elapsed_seconds
