"""The DSPy side of the intent world: the student program, LMs on the scripted server, metrics and the candidate
recorder (a DSPy callback that logs every program state a contender runs).

Every DSPy contender (dspy.GEPA, dspy.MIPROv2, RolloutsGEPA, RolloutsMIPRO) gets the same student, the same LMs
(`cache=False`: DSPy's cache would hide calls from the server and from the budget) and the same judging rule.
"""

from __future__ import annotations

from typing import Any

import dspy
from dspy.utils.callback import BaseCallback

from .metering import METER
from .worlds import World

__all__ = [
    "IntentProgram",
    "RecordPrograms",
    "apply_spec",
    "examples",
    "feedback_metric",
    "make_lm",
    "program_spec",
    "score_metric",
]


def make_lm(base_url: str, model: str, *, concurrency: int) -> dspy.LM:
    del concurrency  # DSPy's parallelism is the optimizer's num_threads, not the LM's
    return dspy.LM(f"openai/{model}", api_base=base_url, api_key="scripted", cache=False, num_retries=2,
                   temperature=0.0, max_tokens=1000)


class IntentProgram(dspy.Module):
    """query -> intent, one Predict whose instruction starts deliberately weak."""

    def __init__(self, instruction: str) -> None:
        super().__init__()
        signature = dspy.Signature("query: str -> intent: str", instruction)
        self.classify = dspy.Predict(signature)

    def forward(self, query: str) -> dspy.Prediction:
        return self.classify(query=query)


def examples(world: World, rows: Any) -> list[dspy.Example]:
    return [dspy.Example(query=r["query"], intent=r["intent"]).with_inputs("query") for r in rows]


def _answer(pred: Any) -> str:
    return str(getattr(pred, "intent", "") or "")


def make_metrics(world: World):
    """(score_metric, feedback_metric): the world's judge, counted by the meter, in DSPy's two metric shapes."""

    def score_metric(gold: dspy.Example, pred: Any, trace: Any = None) -> float:
        METER.count()
        return world.judge(_answer(pred), gold.intent)[0]

    def feedback_metric(gold: dspy.Example, pred: Any, trace: Any = None, pred_name: Any = None,
                        pred_trace: Any = None) -> dspy.Prediction:
        METER.count()
        score, feedback = world.judge(_answer(pred), gold.intent)
        return dspy.Prediction(score=score, feedback=feedback)

    return score_metric, feedback_metric


score_metric = feedback_metric = None  # built per world by make_metrics


def _demo_dict(demo: Any) -> dict[str, Any]:
    data = demo.toDict() if hasattr(demo, "toDict") else dict(demo)
    return {str(k): v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for k, v in data.items()
            if not str(k).startswith("dspy_")}


def program_spec(program: dspy.Module) -> dict[str, Any]:
    return {
        "kind": "dspy",
        "predictors": {
            name: {"instructions": pred.signature.instructions, "demos": [_demo_dict(d) for d in pred.demos]}
            for name, pred in program.named_predictors()
        },
    }


def apply_spec(spec: dict[str, Any], world: World) -> IntentProgram:
    program = IntentProgram(world.instruction)
    for name, pred in program.named_predictors():
        state = spec["predictors"].get(name)
        if state is None:
            continue
        pred.signature = pred.signature.with_instructions(state["instructions"])
        pred.demos = [dspy.Example(**d) for d in state["demos"]]
    return program


class RecordPrograms(BaseCallback):
    """Logs each IntentProgram state when it starts a call (bootstrapping, minibatches and full evals alike)."""

    enabled = True

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if self.enabled and isinstance(instance, IntentProgram):
            METER.see(program_spec(instance))
