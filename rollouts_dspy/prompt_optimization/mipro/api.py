"""`run_mipro`: the rollouts front door. Validates everything before the first LLM call, builds the run's
LLMSession, TemplateTask and proposer model, runs the engine and converts its outcome to an OptimizationResult."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from ...dtypes import Endpoint, ScoreFn
from ...llm import LLMSession, check_priced
from ..events import Event, LinePrinter, Reporter, RunStarted
from ..formatting import format_prompt, to_sample, validate_dataset
from ..template_task import EndpointModel, EnvironmentFactory, TemplateTask, check_score_fn, probe_score_fn
from ..types import Candidate, OptimizationResult, PromptTemplate
from .config import MIPROConfig
from .runner import optimize_mipro

__all__ = ["EstimatePrinter", "run_mipro"]


class EstimatePrinter:
    """LinePrinter plus the dry-run estimate, printed when the run starts."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.lines = LinePrinter(stream)

    def __call__(self, event: Event) -> None:
        self.lines(event)
        if isinstance(event, RunStarted) and event.estimate:
            parts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in event.estimate.items())
            print(f"[{event.method}] estimate (upper bounds): {parts}", file=self.stream or sys.stderr, flush=True)


async def run_mipro(
    initial_template: PromptTemplate,
    config: MIPROConfig,
    dataset: Sequence[Mapping[str, Any]],
    endpoint: Endpoint,
    proposer_endpoint: Endpoint,
    score_fn: ScoreFn,
    environment_factory: EnvironmentFactory | None = None,
    *,
    reporter: Reporter | None = None,
    progress: bool = True,
    session: LLMSession | None = None,
) -> OptimizationResult:
    """Optimize the system prompt and few-shot demos of `initial_template` with MIPRO.

    Progress goes to `reporter` (events); without one, one line per trial is printed to stderr unless
    `progress=False`. Dataset, seeds, template and score_fn are checked before any LLM call."""
    validate_dataset(initial_template, dataset, config.train_seeds, what="train_seeds")
    validate_dataset(initial_template, dataset, config.val_seeds, what="val_seeds")
    check_score_fn(score_fn)
    if environment_factory is not None and not callable(environment_factory):
        raise TypeError(f"environment_factory must be callable as factory(row) -> Environment, "
                        f"but got {type(environment_factory).__name__}")
    first = config.train_seeds[0]
    probe_score_fn(score_fn, format_prompt(initial_template, dataset[first]),
                   to_sample(initial_template, dataset, first))
    check_priced(config.max_cost_usd, endpoint, proposer_endpoint)
    overlap = sorted(set(config.train_seeds) & set(config.val_seeds))
    if overlap:  # as run_gepa does: a Python warning too, not only a progress line (progress may be off)
        warnings.warn(f"MIPROConfig: train_seeds and val_seeds share {len(overlap)} indices (e.g. {overlap[:5]}); "
                      "the validation score is then not held out", UserWarning, stacklevel=2)
    session = session or LLMSession(max_concurrent=config.max_concurrent, seed=config.seed)
    task = TemplateTask(initial_template, dataset, endpoint, score_fn, session,
                        environment_factory=environment_factory)
    proposer = EndpointModel(proposer_endpoint, session, "proposer")
    if reporter is None and progress:
        reporter = EstimatePrinter()
    outcome = await optimize_mipro(task, proposer, Candidate.from_template(initial_template), config,
                                   reporter=reporter)
    usage = {role: stats.to_dict() for role, stats in session.stats.items()}
    return outcome.to_result(initial_template, method="mipro", seed=config.seed, usage=usage,
                             config=config.to_dict())
