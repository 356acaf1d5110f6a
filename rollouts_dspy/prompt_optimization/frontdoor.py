"""The rollouts front door, once for both methods: `run_gepa` and `run_mipro` are this pipeline with their engine.

Check everything before the first LLM call, build the run's LLMSession, TemplateTask and optimizer model, tell the
engine what identifies the run's world (so a checkpoint of another dataset or model is refused), run it and
convert its outcome to an OptimizationResult.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..dtypes import Endpoint, ScoreFn
from ..errors import ConfigError
from ..llm import LLMSession, check_api_keys, check_priced
from ..runtime import RunContext
from .events import LinePrinter
from .options import RunOptions
from .protocols import LanguageModel, Task
from .template_task import EndpointModel, EnvironmentFactory, TemplateTask, preflight
from .types import Candidate, OptimizationResult, PromptTemplate, SearchOutcome

__all__ = ["Method", "dataset_hash", "model_identity", "world_fingerprint"]

Engine = Callable[..., Awaitable[SearchOutcome]]
"""`engine(task, model, initial, config, *, reporter, context) -> SearchOutcome` (optimize_gepa/optimize_mipro)."""


def dataset_hash(dataset: Sequence[Any]) -> str:
    blob = json.dumps(list(dataset), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_identity(endpoint: Endpoint) -> list[Any]:
    """What a checkpoint must agree on about an endpoint: the model that answers, not where it is reached (a new
    proxy URL or a server on another port serves the same model, so api_base is left out)."""
    return [endpoint.provider, endpoint.model, endpoint.temperature]


def world_fingerprint(template: PromptTemplate, dataset: Sequence[Any], endpoint: Endpoint, optimizer: Endpoint,
                      agent: bool) -> dict[str, Any]:
    return {"dataset": dataset_hash(dataset), "user_template": template.user_template,
            "endpoint": model_identity(endpoint), "optimizer_endpoint": model_identity(optimizer), "agent": agent}


def resume_hint(checkpoint_dir: str | None) -> str:
    if checkpoint_dir:
        return f"run it again with the same checkpoint directory ({checkpoint_dir}) to resume once it answers"
    return "nothing was checkpointed: give the config a checkpoint directory to make a run resumable"


@dataclass(frozen=True)
class Method:
    """One optimizer as the front door runs it: its name, the role of its own model, its config type and engine."""

    name: str
    model_role: str
    config_type: type
    engine: Engine
    optimizes_user_template: Callable[[Any], bool] = lambda config: False
    """Whether the template's user_template is a second component of the candidates (GEPA's opt-in)."""

    async def search(self, initial_template: PromptTemplate, config: Any, dataset: Sequence[Mapping[str, Any]],
                     endpoint: Endpoint, optimizer_endpoint: Endpoint, score_fn: ScoreFn,
                     environment_factory: EnvironmentFactory | None, options: RunOptions) -> OptimizationResult:
        """The pipeline behind run_gepa/run_mipro (see the module doc). `options.executor` is already resolved
        (RunOptions does it at construction)."""
        if not isinstance(initial_template, PromptTemplate):
            raise ConfigError(f"initial_template must be a PromptTemplate, but got {type(initial_template).__name__}")
        if not isinstance(config, self.config_type):
            raise ConfigError(f"config must be a {self.config_type.__name__}, but got {type(config).__name__}")
        owner = self.config_type.__name__
        preflight(initial_template, dataset, score_fn, environment_factory, train_seeds=config.train_seeds,
                  val_seeds=config.val_seeds, owner=owner, stacklevel=4)
        check_api_keys(endpoint, optimizer_endpoint)
        check_priced(config.max_cost_usd, endpoint, optimizer_endpoint)
        reporter = options.reporter or (LinePrinter() if options.progress else None)
        user_template = self.optimizes_user_template(config)
        session = LLMSession(max_concurrent=config.max_concurrent, seed=config.seed)
        local = TemplateTask(initial_template, dataset, endpoint, score_fn, session,
                             environment_factory=environment_factory, optimize_user_template=user_template)
        task: Task = options.executor.task(local)  # local: unchanged; Ray: rollouts on the cluster, decisions here
        model: LanguageModel = EndpointModel(optimizer_endpoint, session, self.model_role)
        context = RunContext(
            fingerprint=world_fingerprint(initial_template, dataset, endpoint, optimizer_endpoint,
                                          environment_factory is not None),
            resume_hint=resume_hint(config.checkpoint_dir),
            # The session's retries, and on Ray the workers' too (RayTask adds them to `local`).
            counters=lambda: {role: {"retries": n} for role, n in local.retries().items()},
        )
        initial = Candidate.from_template(initial_template, with_user_template=user_template)
        outcome = await self.engine(task, model, initial, config, reporter=reporter, context=context)
        return outcome.to_result(initial_template, method=self.name, seed=config.seed, config=config.to_dict())
