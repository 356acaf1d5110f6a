"""Multi-objective search: the Pareto front over the score and other objectives, in the result and the report."""

from __future__ import annotations

import pytest
from gepa_helpers import WEAK, FakeReflection, FakeTask

from rollouts_dspy.dtypes import Metric, Score
from rollouts_dspy.errors import ConfigError
from rollouts_dspy.io import load_result, save_result
from rollouts_dspy.prompt_optimization.gepa import GEPAConfig, optimize_gepa, run_gepa
from rollouts_dspy.prompt_optimization.objectives import ObjectiveFront, dominates, pareto_front
from rollouts_dspy.prompt_optimization.types import Candidate
from rollouts_dspy.report import build_report
from rollouts_dspy.testing import generate_intent_queries
from tests.conftest import QUIET


def test_the_front_keeps_exactly_the_non_dominated_points_in_each_objectives_direction():
    points = {"a": {"score": 0.9, "prompt_length": 300.0}, "b": {"score": 0.8, "prompt_length": 100.0},
              "c": {"score": 0.7, "prompt_length": 200.0}, "d": {"score": 0.9, "prompt_length": 400.0}}
    assert dominates(points["a"], points["d"], ["score", "prompt_length"])  # as good, and shorter
    assert not dominates(points["a"], points["b"], ["score", "prompt_length"])
    assert pareto_front(points, ["score", "prompt_length"]) == ["a", "b"]
    front = ObjectiveFront.of(points, ("prompt_length",))
    assert front.front == ("a", "b") and front.best == {"score": "a", "prompt_length": "b"}
    assert ObjectiveFront.from_dict(front.to_dict()) == front
    with pytest.raises(ConfigError, match="'score' is always an objective"):
        GEPAConfig(train_seeds=(0, 1), objectives=("score",))


async def test_a_run_with_objectives_returns_their_front_and_keeps_its_best_trade_offs():
    config = GEPAConfig(train_seeds=tuple(range(12)), val_seeds=tuple(range(12, 24)), population_size=5,
                        elite_size=1, generations=4, reflection_minibatch_size=3, seed=1,
                        objectives=("prompt_length", "tokens"))
    out = await optimize_gepa(FakeTask(), FakeReflection(), Candidate({"system": "Answer the question well."}), config)
    front = out.front
    assert front.objectives == ("score", "prompt_length", "tokens") and len(front.points) >= 3
    lengths = {cid: p["prompt_length"] for cid, p in front.points.items()}
    assert front.best["prompt_length"] == min(lengths, key=lambda c: (lengths[c], list(lengths).index(c)))
    assert front.best["score"] in front.front and front.best["prompt_length"] in front.front
    for cid in front.front:
        assert not any(dominates(q, front.points[cid], front.objectives) for q in front.points.values())
    # The start is the shortest prompt here, so it stays on the front whatever its score.
    assert out.records[0].id in front.front


async def test_score_metrics_are_objectives_and_the_front_survives_save_load_and_show(task_endpoint, reflect_endpoint,
                                                                                     tmp_path):
    def two_metrics(trajectory, sample) -> Score:
        answer = trajectory.final_text.strip()
        return Score((Metric("correct", float(answer == sample.ground_truth)),
                      Metric("brevity", 1.0 / (1 + len(answer)), weight=0.0)))

    data = generate_intent_queries(40, seed=5)
    config = GEPAConfig(train_seeds=tuple(range(24)), val_seeds=tuple(range(24, 40)), population_size=3,
                        elite_size=1, generations=2, seed=3, objectives=("brevity",))
    result = await run_gepa(WEAK, config, data, task_endpoint, reflect_endpoint, two_metrics, options=QUIET)
    assert result.front is not None and all("brevity" in p for p in result.front.points.values())
    again = load_result(save_result(result, tmp_path / "result.json"))
    assert again.front == result.front
    titles = [s.title for s in build_report(again)]
    assert any(t.startswith("Pareto front over score, brevity") for t in titles)
