"""`run_mipro`: the rollouts front door. Validates everything before the first LLM call, builds the run's
LLMSession, TemplateTask and proposer model, runs the engine and converts its outcome to an OptimizationResult."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from ...dtypes import Endpoint, ScoreFn
from ...executors import Executor, resolve_executor
from ...llm import LLMSession, check_priced
from ..events import Event, LinePrinter, Reporter, RunStarted
from ..template_task import EndpointModel, EnvironmentFactory, TemplateTask, preflight
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
    executor: Executor | str | None = None,
) -> OptimizationResult:
    """Optimize the system prompt and few-shot demos of `initial_template` with MIPRO.

    Progress goes to `reporter` (events); without one, one line per trial is printed to stderr unless
    `progress=False`. `executor` ("local", "ray" or e.g. RayExecutor(address=...)) says where rollouts run
    (docs/cluster.md). Dataset, seeds, template and score_fn are checked before any LLM call."""
    executor = resolve_executor(executor)
    preflight(initial_template, dataset, score_fn, environment_factory, train_seeds=config.train_seeds,
              val_seeds=config.val_seeds, owner="MIPROConfig")
    check_priced(config.max_cost_usd, endpoint, proposer_endpoint)
    session = session or LLMSession(max_concurrent=config.max_concurrent, seed=config.seed)
    task = TemplateTask(initial_template, dataset, endpoint, score_fn, session,
                        environment_factory=environment_factory)
    task = executor.task(task)  # local: unchanged; Ray: rollouts run on the cluster, decisions stay here
    proposer = EndpointModel(proposer_endpoint, session, "proposer")
    if reporter is None and progress:
        reporter = EstimatePrinter()
    outcome = await optimize_mipro(task, proposer, Candidate.from_template(initial_template), config,
                                   reporter=reporter)
    usage = {role: stats.to_dict() for role, stats in session.stats.items()}
    return outcome.to_result(initial_template, method="mipro", seed=config.seed, usage=usage,
                             config=config.to_dict())
