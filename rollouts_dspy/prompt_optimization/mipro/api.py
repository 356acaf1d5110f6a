"""The rollouts front door of MIPRO and the spec's template-level operations.

`run_mipro` is the shared front-door pipeline (`frontdoor.run_template_search`) with the MIPRO engine.
`bootstrap_demos` and `propose_instructions` run one step of MIPRO on a PromptTemplate (the spec's operations).
This module imports the LLM layer; the engine modules do not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...dtypes import Endpoint, ScoreFn
from ...errors import ConfigError
from ...executors import Executor
from ...llm import LLMSession
from ...runtime import Budget, Runtime
from ..events import Reporter
from ..formatting import validate_dataset
from ..frontdoor import Method, run_template_search
from ..template_task import EndpointModel, EnvironmentFactory, TemplateTask, check_score_fn
from ..types import SYSTEM, Candidate, FewShotExample, OptimizationResult, PromptTemplate
from .config import DEFAULT_TIPS, MIPROConfig
from .demos import succeeded
from .proposals import ProposalContext, ask_all, ask_one, collect_proposals, proposal_requests, summary_messages
from .runner import METHOD, optimize_mipro

__all__ = ["MIPRO", "bootstrap_demos", "propose_instructions", "run_mipro"]

MIPRO = Method(name=METHOD, model_role="proposer", config_type=MIPROConfig, engine=optimize_mipro)


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
    executor: Executor | str | None = None,
) -> OptimizationResult:
    """Optimize the system prompt and few-shot demos of `initial_template` with MIPRO (docs/mipro.md).

    Progress goes to `reporter` (events); without one, one line per trial is printed to stderr unless
    `progress=False`. `executor` ("local", "ray" or e.g. RayExecutor(address=...)) says where rollouts run
    (docs/cluster.md). Dataset, seeds, template and score_fn are checked before any LLM call."""
    return await run_template_search(MIPRO, initial_template, config, dataset, endpoint, proposer_endpoint, score_fn,
                                     environment_factory, reporter=reporter, progress=progress, executor=executor)


def _check_count(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, but got {value!r}")


async def bootstrap_demos(
    template: PromptTemplate,
    dataset: Sequence[Mapping[str, Any]],
    seeds: Sequence[int],
    endpoint: Endpoint,
    score_fn: ScoreFn,
    max_demos: int,
    *,
    threshold: float = 1.0,
    environment_factory: EnvironmentFactory | None = None,
    max_concurrent: int = 10,
) -> list[FewShotExample]:
    """Run `template` on the rows `seeds` (in that order, `max_concurrent` at a time) and keep up to `max_demos`
    runs that scored at least `threshold` as demos. An agent run's demo keeps its tool calls and results as
    messages, so the demo shows the model *how* it used the tools."""
    _check_count("max_demos", max_demos, 0)
    _check_count("max_concurrent", max_concurrent, 1)
    validate_dataset(template, dataset, seeds, what="seeds")
    check_score_fn(score_fn)
    session = LLMSession(max_concurrent=max_concurrent)
    task = TemplateTask(template, dataset, endpoint, score_fn, session, environment_factory=environment_factory)
    evaluator = Runtime(method=METHOD, budget=Budget(), max_concurrent=max_concurrent).evaluator(task)
    candidate, order, found = Candidate.from_template(template), list(seeds), []
    for start in range(0, len(order), max_concurrent):
        if len(found) >= max_demos:
            break
        chunk = order[start:start + max_concurrent]
        results = await evaluator.evaluate(candidate, chunk)
        found.extend(results[i] for i in chunk if i in results and succeeded(results[i], threshold))
    return [FewShotExample.from_dict(r.demos[SYSTEM]) for r in found[:max_demos] if SYSTEM in r.demos]


def _never_called(*_: Any) -> Any:  # TemplateTask wants a score_fn; rendering labeled demos never scores
    raise AssertionError("not used")


async def propose_instructions(
    template: PromptTemplate,
    dataset: Sequence[Mapping[str, Any]],
    endpoint: Endpoint,
    num_candidates: int,
    *,
    seeds: Sequence[int] | None = None,
    seed: int = 0,
    tips: Sequence[str] = DEFAULT_TIPS,
    per_prompt: int = 10,
    summary_examples: int = 12,
    max_concurrent: int = 10,
) -> list[str]:
    """Instruction candidates for `template.system`, the original first (at most `num_candidates`), grounded in
    a summary of the rows `seeds` (all rows by default), the template's demos and labeled rows."""
    _check_count("num_candidates", num_candidates, 1)
    rows = list(range(len(dataset))) if seeds is None else list(seeds)
    validate_dataset(template, dataset, rows, what="seeds")
    session = LLMSession(max_concurrent=max_concurrent, seed=seed)
    runtime = Runtime(method=METHOD, budget=Budget(), max_concurrent=max_concurrent)
    proposer = runtime.model(EndpointModel(endpoint, session, "proposer"), "proposer")
    task = TemplateTask(template, dataset, endpoint, _never_called, session)
    labeled = [d for d in (task.labeled_demo(i, SYSTEM) for i in rows) if d is not None]
    summary = await ask_one(proposer, summary_messages(labeled[:summary_examples])) if labeled else None
    context = ProposalContext(component=None, current=template.system,
                              summary=(summary.text or "").replace("```", "").strip() if summary else "",
                              pool=tuple([ex.to_dict() for ex in template.few_shot_examples] + labeled))
    requests = proposal_requests(context, num_candidates=num_candidates, tips=tips, per_prompt=per_prompt,
                                 failures_per_prompt=0, seed=seed)
    return list(collect_proposals(template.system, await ask_all(proposer, requests)).instructions)
