"""The rollouts front door of GEPA: `run_gepa` (the spec's signature) and the spec's template-level operation
`mutate_template`. These build LLM sessions, so they live apart from the engine (importing the engine loads no
LLM library)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...deprecations import moved_keywords
from ...dtypes import Endpoint, ScoreFn
from ...llm import LLMSession
from ..frontdoor import Method
from ..options import RUN_KEYWORDS, RunOptions, run_options
from ..protocols import Rollout
from ..template_task import EndpointModel, EnvironmentFactory
from ..types import SYSTEM, Candidate, OptimizationResult, PromptTemplate
from .config import GEPAConfig
from .reflection import MutationError, reflect, reflection_messages
from .runner import optimize_gepa

__all__ = ["GEPA", "mutate_template", "run_gepa"]

GEPA = Method(name="gepa", model_role="reflection", config_type=GEPAConfig, engine=optimize_gepa,
              optimizes_user_template=lambda config: config.optimize_user_template)


@moved_keywords("options", RUN_KEYWORDS, run_options, "options=RunOptions(...)")
async def run_gepa(
    initial_template: PromptTemplate,
    config: GEPAConfig,
    dataset: Sequence[dict[str, Any]],
    endpoint: Endpoint,
    mutation_endpoint: Endpoint,
    score_fn: ScoreFn,
    environment_factory: EnvironmentFactory | None = None,
    *,
    options: RunOptions | None = None,
) -> OptimizationResult:
    """Optimize `initial_template.system` with GEPA (docs/gepa.md).

    Rollouts run on `endpoint` (through the agent loop when `environment_factory` is given, a fresh environment
    per sample); reflective mutations (and LLM merges) on `mutation_endpoint`. `options` (RunOptions) says where
    progress goes (a line per generation on stderr by default) and where rollouts run. Everything is validated
    before the first LLM call.
    """
    return await GEPA.search(initial_template, config, dataset, endpoint, mutation_endpoint, score_fn,
                             environment_factory, options or RunOptions())


async def mutate_template(
    template: PromptTemplate,
    endpoint: Endpoint,
    generation: int,
    *,
    rollouts: Sequence[Rollout] = (),
    session: LLMSession | None = None,
    attempts: int = 3,
) -> PromptTemplate:
    """A reflective mutation of `template.system` by the model at `endpoint`, grounded in `rollouts` of the
    template on training samples (their inputs, answers, scores and feedback). Returns a new template of
    `generation`; raises MutationError when every attempt was rejected or the model failed."""
    model = EndpointModel(endpoint, session or LLMSession(), "reflection")
    outcome = await reflect(model, reflection_messages(template.system, rollouts), template.system,
                            attempts=attempts)
    if outcome.instruction is None:
        raise MutationError(outcome.rejected)
    child = Candidate.from_template(template).with_instruction(SYSTEM, outcome.instruction)
    return child.to_template(template, generation=generation)
