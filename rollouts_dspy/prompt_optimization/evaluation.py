"""The spec's `evaluate_template` and its detailed form: one template scored on rows, through the runtime's
evaluator (cache, concurrency limit, outage watch) -- the same machinery the engines use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..deprecations import moved_keywords
from ..dtypes import Endpoint, ScoreFn, Usage
from ..errors import ConfigError
from ..llm import LLMSession, check_api_keys
from ..runtime import Budget, ProviderUnavailableError, Runtime
from .protocols import Rollout
from .template_task import EnvironmentFactory, TemplateTask, preflight
from .types import Candidate, PromptTemplate, mean_of

__all__ = ["EvaluationReport", "ProviderUnavailableError", "SharedEvaluation", "evaluate_detailed", "evaluate_template"]

@dataclass(frozen=True)
class EvaluationReport:
    """The detailed form of evaluate_template: every rollout, the mean over measured ones, totals."""

    template: PromptTemplate
    rollouts: tuple[Rollout, ...]
    mean: float | None
    usage: Usage = field(default_factory=Usage)
    failures: Mapping[str, int] = field(default_factory=dict)

    @property
    def num_failed(self) -> int:
        return sum(self.failures.values())


@dataclass
class SharedEvaluation:
    """What several evaluate_detailed calls share when given the same one: `session`, one LLMSession (one limit
    on requests in flight, one count of calls, tokens and retries per role), and `rollouts`, the rollouts
    already run, by model then (prompt, row), so a prompt never runs twice on a row with the same model."""

    session: LLMSession = field(default_factory=LLMSession)
    rollouts: dict[str, dict[tuple[str, int], Rollout]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.session, LLMSession):
            raise ConfigError(f"SharedEvaluation.session must be an LLMSession, but got {type(self.session).__name__}")


def _shared(old: Mapping[str, Any], arguments: Mapping[str, Any]) -> SharedEvaluation:
    # Before SharedEvaluation, session= and cache= were separate keywords; a lone cache= kept a private session.
    session = old.get("session") or LLMSession(max_concurrent=arguments.get("max_concurrent", 10))
    return SharedEvaluation(session=session, rollouts={} if old.get("cache") is None else old["cache"])


@moved_keywords("shared", ("session", "cache"), _shared, "shared=SharedEvaluation(session=..., rollouts=...)")
async def evaluate_detailed(
    template: PromptTemplate,
    seeds: Sequence[int],
    dataset: Sequence[dict[str, Any]],
    endpoint: Endpoint,
    score_fn: ScoreFn,
    environment_factory: EnvironmentFactory | None = None,
    max_concurrent: int = 10,
    *,
    shared: SharedEvaluation | None = None,
) -> EvaluationReport:
    """Evaluate `template` on the rows `seeds` of `dataset`; every sample's trajectory text, score, feedback,
    error and usage. Pass the same `shared` (SharedEvaluation) to several calls to share one LLM session and
    never run a prompt twice on a sample with the same model."""
    preflight(template, dataset, score_fn, environment_factory, train_seeds=seeds, owner="evaluate_detailed")
    check_api_keys(endpoint)
    if shared is not None and not isinstance(shared, SharedEvaluation):
        raise ConfigError(f"shared must be a SharedEvaluation or None, but got {type(shared).__name__}")
    session = shared.session if shared is not None else LLMSession(max_concurrent=max_concurrent)
    task = TemplateTask(template, dataset, endpoint, score_fn, session, environment_factory=environment_factory)
    # An evaluation has no checkpoint: after an outage the way on is to run it again.
    runtime = Runtime(method="evaluate", budget=Budget(), max_concurrent=max_concurrent,
                      resume_hint="run the evaluation again once the provider answers")
    runtime.cache = {} if shared is None else shared.rollouts.setdefault(endpoint.identity(), {})
    by_index = await runtime.evaluator(task).evaluate(Candidate.from_template(template), seeds)
    rollouts = tuple(by_index[i] for i in seeds)
    usage = Usage()
    failures: dict[str, int] = {}
    for r in rollouts:
        usage = usage + r.usage
        if r.error is not None:
            failures[r.error.kind] = failures.get(r.error.kind, 0) + 1
    mean = mean_of(r.score for r in rollouts)
    return EvaluationReport(_with_score(template, mean), rollouts, mean, usage, failures)


def _with_score(template: PromptTemplate, score: float | None) -> PromptTemplate:
    from dataclasses import replace

    return replace(template, score=score)


async def evaluate_template(
    template: PromptTemplate,
    seeds: Sequence[int],
    dataset: Sequence[dict[str, Any]],
    endpoint: Endpoint,
    score_fn: ScoreFn,
    environment_factory: EnvironmentFactory | None = None,
    max_concurrent: int = 10,
) -> PromptTemplate:
    """Evaluate `template` on `seeds`; returns it with `score` set to the mean over measured samples (None if
    every sample failed). Samples run concurrently up to `max_concurrent` LLM calls in flight."""
    report = await evaluate_detailed(template, seeds, dataset, endpoint, score_fn, environment_factory,
                                     max_concurrent)
    return report.template
