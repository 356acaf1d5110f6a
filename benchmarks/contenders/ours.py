"""Our contenders: run_gepa / run_mipro (the rollouts front door) and RolloutsGEPA / RolloutsMIPRO (the DSPy one).

No settings are chosen here: each front door gets the world's training rows, the budget, the concurrency and the
seed, and nothing else, so what is measured is the front door's defaults (the issue: "the defaults of both front
doors are the settings that reach it"). The rollouts front door gets the training rows as `train_seeds` and no
`val_seeds` (as the DSPy front door does with valset=None: the engine decides on training scores); the DSPy front
door is called exactly as the peer it replaces (`RolloutsGEPA` with dspy.GEPA's arguments, `RolloutsMIPRO` with
`max_rollouts` = the budget and its default `auto`), with no valset. Candidates are logged from the score_fn (the
prompt prefix of each scored trajectory) or, for DSPy programs, by the recording callback.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..breakdown import records_breakdown, settings_of
from ..evaluator import messages_spec
from ..metering import METER
from ..worlds import World
from . import Contender, ContenderResult, RunContext

__all__ = ["CONTENDERS"]

_GEPA_SETTINGS = ("population_size", "elite_size", "generations", "minibatch_size", "reflection_minibatch_size",
                  "val_candidates", "pareto_split", "mutation_rate", "crossover_rate", "max_rollouts")
_MIPRO_SETTINGS = ("num_candidates", "num_demo_sets", "num_trials", "minibatch_size", "full_eval_every",
                   "max_bootstrapped_demos", "max_labeled_demos", "trials_per_batch", "max_rollouts")


def _endpoints(ctx: RunContext):
    from rollouts_dspy.dtypes import Endpoint

    common = dict(provider="openai", api_base=ctx.base_url, api_key="scripted", timeout=60.0, max_retries=2,
                  retry_backoff=0.05)
    return Endpoint(model="scripted-task", **common), Endpoint(model="scripted-reflect", **common)


def _score_fn(world: World):
    from rollouts_dspy.dtypes import Metric, Score
    from rollouts_dspy.scorers import answer_text

    def score_fn(trajectory, sample) -> Score:  # noqa: ANN001 - the rollouts ScoreFn shape
        messages = [m.to_openai() for m in trajectory.messages]
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        METER.see(messages_spec(messages[:last_user]))
        METER.count()
        score, feedback = world.judge(answer_text(trajectory), sample.ground_truth)
        return Score(metrics=(Metric("correct", score),), feedback=feedback)

    return score_fn


def _rollouts_inputs(ctx: RunContext):
    from rollouts_dspy.prompt_optimization.types import PromptTemplate

    world = ctx.world
    template = PromptTemplate(system=world.instruction, user_template=world.user_template)
    factory = None
    if world.uses_tools:
        from rollouts_dspy.environments.calculator import CalculatorEnvironment

        def factory(row: dict[str, Any]) -> CalculatorEnvironment:
            return CalculatorEnvironment()

    return template, list(world.train), factory


def template_spec(template: Any) -> dict[str, Any]:
    """The held-out evaluator's spec of a rollouts PromptTemplate."""
    from rollouts_dspy.prompt_optimization.formatting import format_prompt, placeholders

    # The prefix format_prompt builds before the sample's user turn: exactly what the template sends.
    probe = format_prompt(template, {name: "" for name in placeholders(template.user_template)})
    return messages_spec([m.to_openai() for m in probe[:-1]])


def _breakdown(result: Any, config: dict[str, Any], train: tuple[int, ...]) -> dict[str, Any]:
    """The budget breakdown of a rollouts front-door result. An engine that compares candidates on a subset
    (SearchOutcome.compared_on) needs that subset to classify rollouts; the result must then say it too."""
    from rollouts_dspy.prompt_optimization.types import SearchOutcome

    compared = getattr(result, "compared_on", None)
    if compared is None and "compared_on" in getattr(SearchOutcome, "__dataclass_fields__", {}):
        return {"unknown": "OptimizationResult does not say which samples candidates were compared on"}
    return records_breakdown(result.candidates, train, tuple(config.get("val_seeds") or ()),
                             config.get("minibatch_size"), result.rollouts_used, tuple(compared or ()))


def _extra(result: Any, names: tuple[str, ...], train: tuple[int, ...]) -> dict[str, Any]:
    config = dict(result.config or {})
    return {
        "usage": {k: dict(v) for k, v in result.usage.items()}, "stop_reason": result.stop_reason,
        "rollouts_used": result.rollouts_used, "candidates": len(result.candidates),
        "settings": settings_of(config, names), "generations_run": len(result.history),
        "breakdown": _breakdown(result, config, train),
    }


def rollouts_gepa(ctx: RunContext, **settings: Any) -> tuple[Any, ContenderResult]:
    """run_gepa given the training rows, the budget, the concurrency and the seed, plus `settings` (a variant's
    one stated difference, e.g. its objectives): the OptimizationResult and the run's ContenderResult."""
    from rollouts_dspy import GEPAConfig, RunOptions, run_gepa

    world = ctx.world
    template, dataset, factory = _rollouts_inputs(ctx)
    config = GEPAConfig(train_seeds=world.train_seeds, max_rollouts=ctx.budget, max_concurrent=ctx.concurrency,
                        seed=ctx.seed, **settings)
    task_endpoint, reflect_endpoint = _endpoints(ctx)
    result = asyncio.run(run_gepa(template, config, dataset, task_endpoint, reflect_endpoint, _score_fn(world),
                                  factory, options=RunOptions(progress=False)))
    return result, ContenderResult(template_spec(result.best_template),
                                   _extra(result, _GEPA_SETTINGS, world.train_seeds))


def run_run_gepa(ctx: RunContext) -> ContenderResult:
    return rollouts_gepa(ctx)[1]


def run_run_mipro(ctx: RunContext) -> ContenderResult:
    from rollouts_dspy import MIPROConfig, RunOptions, run_mipro

    world = ctx.world
    template, dataset, factory = _rollouts_inputs(ctx)
    config = MIPROConfig(train_seeds=world.train_seeds, max_rollouts=ctx.budget, max_concurrent=ctx.concurrency,
                         seed=ctx.seed)
    task_endpoint, reflect_endpoint = _endpoints(ctx)
    result = asyncio.run(run_mipro(template, config, dataset, task_endpoint, reflect_endpoint, _score_fn(world),
                                   factory, options=RunOptions(progress=False)))
    return ContenderResult(template_spec(result.best_template), _extra(result, _MIPRO_SETTINGS, world.train_seeds))


def _no_tools_for_dspy(world: World) -> str | None:
    from .peers import _DSPY_NO_TOOLS

    return _DSPY_NO_TOOLS if world.uses_tools else None


def _dspy_extra(compiled: Any, names: tuple[str, ...], n_train: int) -> dict[str, Any]:
    result, outcome = getattr(compiled, "optimization_result", None), getattr(compiled, "search_outcome", None)
    if result is None or outcome is None:
        return {}
    config = dict(result.config or {})
    train = tuple(config.get("train_seeds") or range(n_train))
    return {
        "stop_reason": outcome.stop_reason, "rollouts_used": outcome.rollouts_used,
        "candidates": len(outcome.records), "settings": settings_of(config, names),
        "generations_run": len(outcome.history), "usage": {k: dict(v) for k, v in result.usage.items()},
        "breakdown": records_breakdown(outcome.records, train, tuple(config.get("val_seeds") or ()),
                                       config.get("minibatch_size"), outcome.rollouts_used,
                                       tuple(getattr(outcome, "compared_on", ()) or ())),
    }


def run_rollouts_gepa(ctx: RunContext) -> ContenderResult:
    from rollouts_dspy.dspy_integration import RolloutsGEPA

    from ..dspy_side import program_spec
    from .peers import _dspy_setup

    _task_lm, reflect_lm, (_, feedback_metric), student, trainset = _dspy_setup(ctx)
    optimizer = RolloutsGEPA(metric=feedback_metric, max_metric_calls=ctx.budget, reflection_lm=reflect_lm,
                             num_threads=ctx.concurrency, seed=ctx.seed)
    compiled = optimizer.compile(student, trainset=trainset)
    return ContenderResult(program_spec(compiled), _dspy_extra(compiled, _GEPA_SETTINGS, len(trainset)))


def run_rollouts_mipro(ctx: RunContext) -> ContenderResult:
    from rollouts_dspy.dspy_integration import RolloutsMIPRO

    from ..dspy_side import program_spec
    from .peers import _dspy_setup

    task_lm, reflect_lm, (score_metric, _), student, trainset = _dspy_setup(ctx)
    optimizer = RolloutsMIPRO(metric=score_metric, prompt_model=reflect_lm, task_model=task_lm,
                              num_threads=ctx.concurrency, seed=ctx.seed, max_rollouts=ctx.budget)
    compiled = optimizer.compile(student, trainset=trainset)
    return ContenderResult(program_spec(compiled), _dspy_extra(compiled, _MIPRO_SETTINGS, len(trainset)))


CONTENDERS = [
    Contender("run_gepa", "gepa", True, "messages", run_run_gepa,
              validation="train_seeds = the training rows, no val_seeds: the engine selects on training scores"),
    Contender("RolloutsGEPA", "gepa", True, "dspy", run_rollouts_gepa, _no_tools_for_dspy,
              validation="valset=None (the engine selects on training scores, as dspy.GEPA does)"),
    Contender("run_mipro", "mipro", True, "messages", run_run_mipro,
              validation="train_seeds = the training rows, no val_seeds: the best combination is chosen on "
                         "training scores"),
    Contender("RolloutsMIPRO", "mipro", True, "dspy", run_rollouts_mipro, _no_tools_for_dspy,
              validation="valset=None: like MIPROv2, the last 80% of the training rows validate, the first 20% "
                         "bootstrap demos"),
]
