"""run_mipro end to end on the scripted server: the calculator world and a small Banking77 run."""

from __future__ import annotations

import csv
import json
import random

import pytest

from rollouts_dspy.prompt_optimization.evaluation import evaluate_template
from rollouts_dspy.prompt_optimization.mipro import bootstrap_demos
from rollouts_dspy.testing import IntentWorld, ScriptedServer
from tests.conftest import make_endpoint

from .worlds import (
    AGENT_CALCULATOR,
    WEAK_CALCULATOR,
    arithmetic_correct,
    arithmetic_rows,
    initial_record,
    mipro_config,
    run_world,
)


async def test_calculator_demos_keep_tool_calls_and_teach_the_tools(server):
    rows = arithmetic_rows(30)
    factory = _calculator_factory()
    demos = await bootstrap_demos(AGENT_CALCULATOR, rows, range(10), make_endpoint(server), arithmetic_correct, 2,
                                  environment_factory=factory)
    assert len(demos) == 2 and all(any(m.tool_calls for m in d.messages) for d in demos)
    assert any(m.role == "tool" for m in demos[0].messages)
    weak = await evaluate_template(WEAK_CALCULATOR, range(10, 30), rows, make_endpoint(server), arithmetic_correct,
                                   factory)
    shown = WEAK_CALCULATOR.__class__(WEAK_CALCULATOR.system, WEAK_CALCULATOR.user_template, tuple(demos))
    taught = await evaluate_template(shown, range(10, 30), rows, make_endpoint(server), arithmetic_correct, factory)
    assert taught.score > weak.score + 0.2


def _calculator_factory():
    from rollouts_dspy.environments.calculator import CalculatorEnvironment

    return lambda row: CalculatorEnvironment()


async def test_calculator_world_through_environment_factory(server):
    rows = arithmetic_rows(40)
    config = mipro_config(num_candidates=3, num_trials=6, minibatch_size=8, train_seeds=tuple(range(20)),
                     val_seeds=tuple(range(20, 40)), bootstrap_threshold=1.0)
    result = await run_world(server, config, rows=rows, template=WEAK_CALCULATOR, score_fn=arithmetic_correct,
                        environment_factory=_calculator_factory())
    initial = initial_record(result)
    assert result.best_template.score > initial.val_mean
    assert "calculator" in result.best_template.system.lower()


@pytest.mark.slow
async def test_banking77_small(banking77_dir):
    labels = tuple(json.loads((banking77_dir / "categories.json").read_text()))
    with open(banking77_dir / "train.csv", newline="") as fh:
        all_rows = [{"query": r["text"], "intent": r["category"]} for r in csv.DictReader(fh)]
    rows = random.Random(0).sample(all_rows, 300)
    with ScriptedServer(intent_world=IntentWorld(labels=labels)) as server:
        config = mipro_config(num_candidates=6, num_trials=12, minibatch_size=20, proposal_demos=40,
                              max_labeled_demos=8, train_seeds=tuple(range(200)), val_seeds=tuple(range(200, 300)),
                              max_rollouts=1400, max_concurrent=32)
        result = await run_world(server, config, rows=rows)
    initial = initial_record(result)
    assert result.rollouts_used <= 1400
    # 77 intents, keyword rules learnt from one example each: a real but modest gain on the scripted server
    assert result.best_template.score >= initial.val_mean + 0.03, (initial.val_mean, result.best_template.score)
