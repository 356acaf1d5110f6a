"""The seams between the engines and the world: a Task runs a candidate on one sample, a LanguageModel answers
the engines' own prompts (reflection, proposals). Both the rollouts API (templates + litellm) and the DSPy API
(programs + dspy.LM) implement them; the GEPA and MIPRO engines see nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..dtypes import Message, Usage
from .types import Candidate

__all__ = ["ComponentFeedback", "InstructionCheck", "LanguageModel", "Rollout", "RolloutError", "Task"]


@dataclass(frozen=True)
class RolloutError:
    """Why a rollout has no (or a zero) score. `kind`: 'llm' (the provider failed: a transient failure that
    outlived its retries, or a refusal of every call such as a bad key; the score is unmeasured), 'prompt' (a
    permanent LLM error such as context too long: the prompt's failure, scored), 'score_fn', 'environment' or
    'task'. `detail` is the provider's or the exception's message; `cause` the provider error's kind for 'llm'
    (e.g. 'timeout', 'RateLimitError', 'AuthenticationError'), so an outage can be explained."""

    kind: str
    detail: str
    cause: str = ""


@dataclass(frozen=True)
class Rollout:
    """One candidate run on one sample.

    `score` is the measured reward in [0, 1]-ish units, or None when nothing was measured (see RolloutError).
    `inputs` and `output` are text renderings for a reflection model (for agents, `output` includes the tool calls
    and results). `demos` maps a component to this rollout rendered as a demo for it (MIPRO's bootstrapping).
    `objectives` are named subscores for multi-objective search (a Score's metrics, a DSPy metric's
    `objective_scores`); empty when the score is the only objective.
    """

    sample_index: int
    score: float | None
    feedback: str = ""
    inputs: Mapping[str, str] = field(default_factory=dict)
    output: str = ""
    error: RolloutError | None = None
    usage: Usage = field(default_factory=Usage)
    demos: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    objectives: Mapping[str, float] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return self.score is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sample_index": self.sample_index,
            "score": self.score,
            "feedback": self.feedback,
            "inputs": dict(self.inputs),
            "output": self.output,
            "error": None,
            "usage": [self.usage.prompt_tokens, self.usage.completion_tokens, self.usage.cost_usd, self.usage.calls],
            "demos": {k: dict(v) for k, v in self.demos.items()},
        }
        if self.error:
            out["error"] = {"kind": self.error.kind, "detail": self.error.detail, "cause": self.error.cause}
        if self.objectives:
            out["objectives"] = dict(self.objectives)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rollout:
        err = data.get("error")
        p, c, cost, calls = data.get("usage", [0, 0, 0.0, 0])
        return cls(
            sample_index=int(data["sample_index"]),
            score=data["score"],
            feedback=data.get("feedback", ""),
            inputs=dict(data.get("inputs", {})),
            output=data.get("output", ""),
            error=RolloutError(err["kind"], err["detail"], err.get("cause", "")) if err else None,
            usage=Usage(p, c, cost, calls),
            demos={k: dict(v) for k, v in data.get("demos", {}).items()},
            objectives={str(k): float(v) for k, v in data.get("objectives", {}).items()},
        )


class Task(Protocol):
    """Runs candidates on samples of one dataset.

    Contract: `run` never raises for a failure of the sample (LLM, score_fn, environment): it returns a Rollout
    with `error` set. It must not mutate the candidate. `components` names the instructions a candidate carries;
    `labeled_demo` renders sample `index` with its ground truth as a demo for `component` (None if it cannot).
    """

    @property
    def components(self) -> tuple[str, ...]: ...

    async def run(self, candidate: Candidate, index: int) -> Rollout: ...

    def labeled_demo(self, index: int, component: str) -> Mapping[str, Any] | None: ...


@runtime_checkable
class ComponentFeedback(Protocol):
    """An optional Task capability: feedback meant for one component (e.g. one predictor of a DSPy program).

    The GEPA engine calls it, when the task implements it, right before reflecting on `component`, with the
    rollouts that reflection will be shown; it returns them with `feedback` replaced by that component's feedback
    (scores unchanged, same order). It must not raise for one rollout's failure (keep that rollout's feedback)."""

    async def component_feedback(self, candidate: Candidate, rollouts: Sequence[Rollout],
                                 component: str) -> list[Rollout]: ...


@runtime_checkable
class InstructionCheck(Protocol):
    """An optional Task capability: whether a proposed text can be used for a component at all (e.g. a
    user_template must keep exactly its {placeholders}). Returns why not, or None when it can. The engines drop
    a candidate whose text fails the check before running it."""

    def check_instruction(self, component: str, text: str) -> str | None: ...


class LanguageModel(Protocol):
    """Answers the optimizer's own prompts (reflection, instruction proposals). Raises on final failure;
    retries are the implementation's business. Returns the text and what it cost."""

    async def complete(self, messages: Sequence[Message]) -> tuple[str, Usage]: ...
