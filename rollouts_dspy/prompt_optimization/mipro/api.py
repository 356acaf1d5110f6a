"""The rollouts front door of MIPRO and the spec's template-level operations.

`run_mipro` is the shared front-door pipeline (`frontdoor.Method.search`) with the MIPRO engine.
`bootstrap_demos` and `propose_instructions` run one step of MIPRO on a PromptTemplate (the spec's operations).
This module imports the LLM layer; the engine modules do not.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...deprecations import moved_keywords
from ...dtypes import Endpoint, ScoreFn
from ...errors import ConfigError
from ...llm import LLMSession
from ...runtime import Budget, Runtime
from ..formatting import validate_dataset
from ..frontdoor import Method
from ..options import RUN_KEYWORDS, RunOptions, run_options
from ..template_task import EndpointModel, EnvironmentFactory, TemplateTask, check_score_fn
from ..types import SYSTEM, Candidate, FewShotExample, OptimizationResult, PromptTemplate
from .config import MIPROConfig
from .demos import succeeded
from .proposals import ProposalContext, ask_all, ask_one, collect_proposals, proposal_requests, summary_messages
from .runner import METHOD, optimize_mipro

__all__ = ["MIPRO", "bootstrap_demos", "propose_instructions", "run_mipro"]

MIPRO = Method(name=METHOD, model_role="proposer", config_type=MIPROConfig, engine=optimize_mipro)


@moved_keywords("options", RUN_KEYWORDS, run_options, "options=RunOptions(...)")
async def run_mipro(
    initial_template: PromptTemplate,
    config: MIPROConfig,
    dataset: Sequence[Mapping[str, Any]],
    endpoint: Endpoint,
    proposer_endpoint: Endpoint,
    score_fn: ScoreFn,
    environment_factory: EnvironmentFactory | None = None,
    *,
    options: RunOptions | None = None,
) -> OptimizationResult:
    """Optimize the system prompt and few-shot demos of `initial_template` with MIPRO (docs/mipro.md).

    `options` (RunOptions) says where progress goes (a line per trial on stderr by default) and where rollouts
    run. Dataset, seeds, template and score_fn are checked before any LLM call."""
    return await MIPRO.search(initial_template, config, dataset, endpoint, proposer_endpoint, score_fn,
                              environment_factory, options or RunOptions())


def _check_count(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, but got {value!r}")


def _setting(config: MIPROConfig | None, name: str) -> Any:
    """A step's setting: the run's config value, or MIPROConfig's default when the step runs on its own."""
    if config is None:
        return MIPROConfig.__dataclass_fields__[name].default
    if not isinstance(config, MIPROConfig):
        raise ConfigError(f"config must be a MIPROConfig or None, but got {type(config).__name__}")
    return getattr(config, name)


def _step_config(renames: Mapping[str, str], rows: str) -> Callable[[Mapping[str, Any], Mapping[str, Any]], Any]:
    """Fold a step's old keywords into the MIPROConfig the step now reads (`renames`: old keyword -> field;
    the config's train_seeds are the step's rows, the argument named `rows`, which the step does not read)."""

    def fold(old: Mapping[str, Any], arguments: Mapping[str, Any]) -> MIPROConfig:
        seeds = arguments.get(rows)
        train = tuple(range(len(arguments["dataset"]))) if seeds is None else tuple(seeds)
        return MIPROConfig(train_seeds=train, **{renames[k]: v for k, v in old.items()})

    return fold


_BOOTSTRAP_KEYWORDS = {"threshold": "bootstrap_threshold", "max_concurrent": "max_concurrent"}
_PROPOSAL_KEYWORDS = {"seed": "seed", "tips": "tips", "per_prompt": "proposal_demos",
                      "summary_examples": "summary_examples", "max_concurrent": "max_concurrent"}


@moved_keywords("config", tuple(_BOOTSTRAP_KEYWORDS), _step_config(_BOOTSTRAP_KEYWORDS, "seeds"),
                "config=MIPROConfig(..., bootstrap_threshold=..., max_concurrent=...)")
async def bootstrap_demos(
    template: PromptTemplate,
    dataset: Sequence[Mapping[str, Any]],
    seeds: Sequence[int],
    endpoint: Endpoint,
    score_fn: ScoreFn,
    max_demos: int,
    *,
    environment_factory: EnvironmentFactory | None = None,
    config: MIPROConfig | None = None,
) -> list[FewShotExample]:
    """Run `template` on the rows `seeds` (in that order) and keep up to `max_demos` runs that scored at least
    `config.bootstrap_threshold` as demos, `config.max_concurrent` at a time (MIPROConfig's defaults without a
    config). An agent run's demo keeps its tool calls and results as messages, so the demo shows the model *how*
    it used the tools."""
    threshold, max_concurrent = _setting(config, "bootstrap_threshold"), _setting(config, "max_concurrent")
    _check_count("max_demos", max_demos, 0)
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


@moved_keywords("config", tuple(_PROPOSAL_KEYWORDS), _step_config(_PROPOSAL_KEYWORDS, "seeds"),
                "config=MIPROConfig(..., seed=..., tips=..., proposal_demos=..., summary_examples=...)")
async def propose_instructions(
    template: PromptTemplate,
    dataset: Sequence[Mapping[str, Any]],
    endpoint: Endpoint,
    num_candidates: int,
    *,
    seeds: Sequence[int] | None = None,
    config: MIPROConfig | None = None,
) -> list[str]:
    """Instruction candidates for `template.system`, the original first (at most `num_candidates`), grounded in
    a summary of the rows `seeds` (all rows by default), the template's demos and labeled rows. From `config`
    (MIPROConfig's defaults without one): `seed`, `tips`, `proposal_demos` (demos shown per request),
    `summary_examples`, `max_concurrent` and the `data_aware` / `tip_aware` / `fewshot_aware` flags."""
    _check_count("num_candidates", num_candidates, 1)
    get = functools.partial(_setting, config)
    rows = list(range(len(dataset))) if seeds is None else list(seeds)
    validate_dataset(template, dataset, rows, what="seeds")
    session = LLMSession(max_concurrent=get("max_concurrent"), seed=get("seed"))
    runtime = Runtime(method=METHOD, budget=Budget(), max_concurrent=get("max_concurrent"))
    proposer = runtime.model(EndpointModel(endpoint, session, "proposer"), "proposer")
    task = TemplateTask(template, dataset, endpoint, _never_called, session)
    labeled = [d for d in (task.labeled_demo(i, SYSTEM) for i in rows) if d is not None]
    wants_summary = labeled and get("data_aware")
    summary = await ask_one(proposer, summary_messages(labeled[:get("summary_examples")])) if wants_summary else None
    pool = [ex.to_dict() for ex in template.few_shot_examples] + labeled
    context = ProposalContext(component=None, current=template.system,
                              summary=(summary.text or "").replace("```", "").strip() if summary else "",
                              pool=tuple(pool) if get("fewshot_aware") else ())
    requests = proposal_requests(context, num_candidates=num_candidates,
                                 tips=get("tips") if get("tip_aware") else (), per_prompt=get("proposal_demos"),
                                 failures_per_prompt=0, seed=get("seed"))
    return list(collect_proposals(template.system, await ask_all(proposer, requests)).instructions)
