"""What is optimized and what comes back: templates, demos, per-step stats and the result.

`PromptTemplate` and `FewShotExample` are the spec's types. A `Candidate` is the engines' view of what they
change: instruction text per component and demos per component (a template is the one-component case, `system`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from ..dtypes import Message

__all__ = [
    "SYSTEM",
    "USER_TEMPLATE",
    "mean_of",
    "Candidate",
    "CandidateRecord",
    "FewShotExample",
    "GenerationStats",
    "OptimizationResult",
    "PromptTemplate",
    "SearchOutcome",
]

SYSTEM = "system"
"""The component name of a PromptTemplate's system prompt."""
USER_TEMPLATE = "user_template"
"""The component name of a PromptTemplate's user_template, when it is optimized too (opt-in)."""


@dataclass(frozen=True)
class FewShotExample:
    """One demonstration: the user message, the assistant's final answer, and for agent runs the tool-call
    messages in between (assistant turns with tool calls and the tool results), rendered in that order."""

    input: str
    output: str
    messages: tuple[Message, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"input": self.input, "output": self.output}
        if self.messages:
            out["messages"] = [m.to_openai() for m in self.messages]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FewShotExample:
        from ..dtypes import ToolCall

        messages = []
        for m in data.get("messages", ()):
            calls = tuple(
                ToolCall(c["id"], c["function"]["name"], json.loads(c["function"].get("arguments") or "{}"))
                for c in m.get("tool_calls", ())
            )
            messages.append(Message(m["role"], m.get("content") or "", calls, m.get("tool_call_id")))
        return cls(str(data["input"]), str(data["output"]), tuple(messages))


@dataclass(frozen=True)
class PromptTemplate:
    """Immutable prompt configuration: the thing being optimized."""

    system: str
    user_template: str
    few_shot_examples: tuple[FewShotExample, ...] = ()
    score: float | None = None
    generation: int = 0
    id: str = field(default_factory=lambda: uuid4().hex[:8])


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Candidate:
    """Instruction text per component and demos per component. Demos are JSON-safe mappings whose meaning
    belongs to the task (a FewShotExample dict for templates, a field dict for DSPy predictors).

    Two candidates with the same content have the same `key`: identical prompts share one evaluation.
    """

    instructions: Mapping[str, str]
    demos: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return _digest(self.to_dict())

    def with_instruction(self, component: str, text: str) -> Candidate:
        return Candidate({**self.instructions, component: text}, self.demos)

    def with_demos(self, component: str, demos: tuple[Mapping[str, Any], ...]) -> Candidate:
        return Candidate(self.instructions, {**self.demos, component: tuple(demos)})

    def to_dict(self) -> dict[str, Any]:
        return {
            "instructions": dict(sorted(self.instructions.items())),
            "demos": {k: [dict(d) for d in v] for k, v in sorted(self.demos.items()) if v},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        return cls(
            dict(data["instructions"]),
            {k: tuple(dict(d) for d in v) for k, v in data.get("demos", {}).items()},
        )

    @classmethod
    def from_template(cls, template: PromptTemplate, *, with_user_template: bool = False) -> Candidate:
        """The template as a candidate: its system prompt (and, `with_user_template`, its user_template) as
        components, its few-shot examples as the system component's demos."""
        demos = tuple(ex.to_dict() for ex in template.few_shot_examples)
        instructions = {SYSTEM: template.system}
        if with_user_template:
            instructions[USER_TEMPLATE] = template.user_template
        return cls(instructions, {SYSTEM: demos} if demos else {})

    def to_template(self, base: PromptTemplate, *, score: float | None = None, generation: int = 0,
                    id: str | None = None) -> PromptTemplate:
        examples = tuple(FewShotExample.from_dict(d) for d in self.demos.get(SYSTEM, ()))
        return PromptTemplate(
            system=self.instructions[SYSTEM],
            user_template=self.instructions.get(USER_TEMPLATE, base.user_template),
            few_shot_examples=examples,
            score=score,
            generation=generation,
            id=id or self.key[:8],
        )


def mean_of(scores: Mapping[Any, float] | Iterable[float | None]) -> float | None:
    """The one mean of per-sample scores: over measured scores only (None entries are unmeasured, never a 0);
    None when nothing was measured. Takes {sample index: score} or an iterable of scores."""
    values = [v for v in (scores.values() if isinstance(scores, Mapping) else scores) if v is not None]
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class CandidateRecord:
    """One evaluated candidate: its content, lineage and every score measured for it, per sample index."""

    id: str
    candidate: Candidate
    generation: int = 0
    origin: str = "initial"
    parents: tuple[str, ...] = ()
    train_scores: Mapping[int, float] = field(default_factory=dict)
    val_scores: Mapping[int, float] = field(default_factory=dict)
    failures: int = 0
    train_objectives: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    val_objectives: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    compared_at: int | None = None
    """Rollouts the run had used when this candidate joined the comparison (right before it was scored on the
    whole Pareto set; 0 for the initial candidate); None for candidates never compared (engines without a
    Pareto set leave it None)."""

    @property
    def train_mean(self) -> float | None:
        return mean_of(self.train_scores)

    @property
    def val_mean(self) -> float | None:
        return mean_of(self.val_scores)

    @property
    def score(self) -> float | None:
        """The record's headline score: its validation mean when it was validated, else its training mean."""
        return self.val_mean if self.val_mean is not None else self.train_mean


@dataclass(frozen=True)
class GenerationStats:
    """Stats for one generation (GEPA) or trial (MIPRO). Scores are on the samples evaluated in that step.
    `cost_usd` is None when the price of some call is unknown (an unpriced model): never a made-up 0."""

    generation: int
    best_score: float
    mean_score: float
    num_evaluated: int
    rollouts_used: int = 0
    tokens: int = 0
    cost_usd: float | None = 0.0
    elapsed_seconds: float = 0.0


@dataclass(frozen=True)
class OptimizationResult:
    """Result of prompt optimization.

    `best_template` is the best on validation (on training when there is no validation split) with its score
    set; `final_population` every evaluated candidate as a template with its mean score; `history` one entry per
    generation or trial. `candidates` keeps per-sample scores and lineage; `usage` the calls, retries, failures,
    tokens and cost per role ('task', 'reflection' or 'proposer').
    """

    best_template: PromptTemplate
    final_population: tuple[PromptTemplate, ...]
    history: tuple[GenerationStats, ...]
    method: str = ""
    seed: int = 0
    best_candidate_id: str = ""
    initial_template: PromptTemplate | None = None
    candidates: tuple[CandidateRecord, ...] = ()
    usage: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    rollouts_used: int = 0
    stop_reason: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    front: Any = None
    """With several objectives (GEPAConfig.objectives): an `ObjectiveFront` -- every candidate's objective values,
    the Pareto front and the best candidate per objective (ids of `candidates`). None otherwise."""
    compared_on: tuple[int, ...] = ()
    """The row indices candidates were compared on during the search (GEPA's Pareto set), and `compared_split`
    which scores hold them ('train': `train_scores`, 'val': `val_scores`)."""
    compared_split: str = "train"


@dataclass(frozen=True)
class SearchOutcome:
    """What an engine hands its front door: every candidate record (the initial candidate first), the per-step
    history, the chosen best, why the search stopped, and what the whole run used (`usage`: per role calls,
    tokens, dollars, failures; every process of a resumed run)."""

    records: tuple[CandidateRecord, ...]
    history: tuple[GenerationStats, ...]
    best_id: str
    stop_reason: str
    rollouts_used: int
    cost_usd: float | None = 0.0
    usage: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    compared_on: tuple[int, ...] = ()
    """The samples candidates were compared on during the search (GEPA's Pareto set; empty when every candidate
    was compared on its own samples), and `compared_split` which split's scores they are ('train' | 'val')."""
    compared_split: str = "train"
    front: Any = None
    """An `objectives.ObjectiveFront` when the search had several objectives, else None."""

    def record(self, candidate_id: str) -> CandidateRecord:
        for r in self.records:
            if r.id == candidate_id:
                return r
        raise KeyError(candidate_id)

    def to_result(self, base: PromptTemplate, *, method: str, seed: int, config: Mapping[str, Any] | None = None,
                  usage: Mapping[str, Mapping[str, Any]] | None = None) -> OptimizationResult:
        """The one conversion to the rollouts front door's result: candidates as PromptTemplates scored on
        validation when measured there, else on training."""

        def as_template(r: CandidateRecord) -> PromptTemplate:
            return r.candidate.to_template(base, score=r.score, generation=r.generation, id=r.id)

        return OptimizationResult(
            best_template=as_template(self.record(self.best_id)),
            final_population=tuple(as_template(r) for r in self.records),
            history=self.history,
            method=method,
            seed=seed,
            best_candidate_id=self.best_id,
            initial_template=base,
            candidates=self.records,
            usage=self.usage if usage is None else usage,
            rollouts_used=self.rollouts_used,
            stop_reason=self.stop_reason,
            config=dict(config or {}),
            front=self.front,
            compared_on=tuple(self.compared_on),
            compared_split=self.compared_split,
        )
