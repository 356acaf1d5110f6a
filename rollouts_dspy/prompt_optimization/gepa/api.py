"""`run_gepa`: the rollouts front door. Builds the run's LLMSession, TemplateTask and reflection model, checks
everything before the first LLM call, runs the engine and converts its outcome to an OptimizationResult."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from ...dtypes import Endpoint, ScoreFn
from ...errors import ConfigError
from ...llm import LLMSession, check_priced
from ..events import LinePrinter, Reporter
from ..template_task import EndpointModel, EnvironmentFactory, TemplateTask, preflight
from ..types import Candidate, OptimizationResult, PromptTemplate
from .config import GEPAConfig
from .runner import optimize_gepa

__all__ = ["run_gepa"]


def _dataset_hash(dataset: Sequence[Any]) -> str:
    blob = json.dumps(list(dataset), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _model_identity(endpoint: Endpoint) -> list[Any]:
    """What a checkpoint must agree on about an endpoint: the model that answers, not where it is reached (a new
    proxy URL or a server on another port serves the same model, so api_base is left out)."""
    return [endpoint.provider, endpoint.model, endpoint.temperature]


def _validate(initial: PromptTemplate, config: GEPAConfig, dataset: Sequence[Any], score_fn: ScoreFn,
              environment_factory: EnvironmentFactory | None) -> None:
    if not isinstance(initial, PromptTemplate):
        raise ConfigError(f"initial_template must be a PromptTemplate, but got {type(initial).__name__}")
    if not isinstance(config, GEPAConfig):
        raise ConfigError(f"config must be a GEPAConfig, but got {type(config).__name__}")
    preflight(initial, dataset, score_fn, environment_factory, train_seeds=config.train_seeds,
              val_seeds=config.val_seeds, owner="GEPAConfig", stacklevel=3)


async def run_gepa(
    initial_template: PromptTemplate,
    config: GEPAConfig,
    dataset: Sequence[dict[str, Any]],
    endpoint: Endpoint,
    mutation_endpoint: Endpoint,
    score_fn: ScoreFn,
    environment_factory: EnvironmentFactory | None = None,
    *,
    reporter: Reporter | None = None,
    progress: bool = True,
) -> OptimizationResult:
    """Optimize `initial_template.system` with GEPA (see docs/gepa.md).

    Rollouts run on `endpoint` (through the agent loop when `environment_factory` is given, a fresh environment
    per sample); reflective mutations (and LLM merges) on `mutation_endpoint`. Progress: one line per generation
    on stderr by default; pass `reporter` to receive the events yourself, or `progress=False` for silence.
    Everything is validated before the first LLM call.
    """
    _validate(initial_template, config, dataset, score_fn, environment_factory)
    check_priced(config.max_cost_usd, endpoint, mutation_endpoint)
    if reporter is None and progress:
        reporter = LinePrinter()
    session = LLMSession(max_concurrent=config.max_concurrent, seed=config.seed)
    task = TemplateTask(initial_template, dataset, endpoint, score_fn, session,
                        environment_factory=environment_factory)
    reflection = EndpointModel(mutation_endpoint, session, "reflection")
    world = {
        "dataset": _dataset_hash(dataset),
        "user_template": initial_template.user_template,
        "endpoint": _model_identity(endpoint),
        "mutation_endpoint": _model_identity(mutation_endpoint),
        "agent": environment_factory is not None,
    }
    outcome = await optimize_gepa(task, reflection, Candidate.from_template(initial_template), config,
                                  reporter=reporter, fingerprint=world)
    usage = {role: stats.to_dict() for role, stats in sorted(session.stats.items())}
    return outcome.to_result(initial_template, method="gepa", seed=config.seed, usage=usage,
                             config=config.to_dict())
