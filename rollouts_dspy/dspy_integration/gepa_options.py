"""RolloutsGEPA's constructor arguments (dspy.GEPA's, plus ours), checked once at construction: a wrong type or
value is a ConfigError naming the argument before any LM call, an argument that means nothing here warns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..executors import Executor, LocalExecutor, resolve_executor
from ..prompt_optimization.gepa import GEPAConfig
from . import arguments as arg
from .inputs import resolve_budget
from .presets import resolve_auto
from .program_task import DEFAULT_THREADS
from .tracking import ExperimentTracker

__all__ = ["COMPONENT_SELECTORS", "GEPAOptions", "SELECTION_STRATEGIES"]

OWNER = "RolloutsGEPA"
SELECTION_STRATEGIES = ("pareto", "current_best")
COMPONENT_SELECTORS = ("round_robin", "all")


@dataclass(frozen=True, kw_only=True)
class GEPAOptions:
    """The checked arguments. `budget` is (name, value) of the one rollout budget given, None with `auto`."""

    metric: Callable[..., Any] | None
    auto: str | None
    budget: tuple[str, int] | None
    reflection_minibatch_size: int | None
    candidate_selection_strategy: str
    reflection_lm: Any
    skip_perfect_score: bool
    add_format_failure_as_feedback: bool
    instruction_proposer: Callable[..., Any] | None
    component_selector: str | Callable[..., Any]
    use_merge: bool
    max_merge_invocations: int | None
    num_threads: int | None
    failure_score: float
    perfect_score: float
    log_dir: str | None
    track_stats: bool
    track_best_outputs: bool
    warn_on_score_mismatch: bool
    seed: int
    max_cost_usd: float | None
    config: GEPAConfig | Mapping[str, Any] | None
    reporter: Callable[..., Any] | None
    executor: Executor = field(default_factory=LocalExecutor)
    tracking: Mapping[str, Any] = field(default_factory=dict)

    @property
    def threads(self) -> int:
        return self.num_threads or DEFAULT_THREADS

    @classmethod
    def from_arguments(cls, a: Mapping[str, Any]) -> GEPAOptions:
        arg.check_callable(OWNER, "metric", a["metric"])
        budget = resolve_budget(auto=None, max_full_evals=a["max_full_evals"], max_metric_calls=a["max_metric_calls"],
                                max_rollouts=a["max_rollouts"])
        if a["auto"] is not None and budget is not None:
            raise ConfigError(f"{OWNER}: set at most one of auto, max_full_evals, max_metric_calls, max_rollouts, "
                              f"but got auto={a['auto']!r} and {budget[0]}={budget[1]!r}")
        if a["log_dir"] and a["checkpoint_dir"] and str(a["log_dir"]) != str(a["checkpoint_dir"]):
            raise ConfigError(f"{OWNER}: log_dir and checkpoint_dir name the same thing; got {a['log_dir']!r} and "
                              f"{a['checkpoint_dir']!r}")
        if a["config"] is not None and not isinstance(a["config"], (GEPAConfig, Mapping)):
            raise ConfigError(f"{OWNER}: config must be a GEPAConfig or a mapping of its fields, but got "
                              f"{type(a['config']).__name__}")
        if a["track_best_outputs"] and not a["track_stats"]:
            raise ConfigError(f"{OWNER}: track_best_outputs=True needs track_stats=True (the best outputs are part "
                              "of detailed_results), as in dspy.GEPA")
        selector = a["component_selector"]
        if not callable(selector):
            arg.check_choice(OWNER, "component_selector", selector, COMPONENT_SELECTORS)
        seed = 0 if a["seed"] is None else arg.check_int(OWNER, "seed", a["seed"], 0, optional=False)
        log_dir = a["log_dir"] or a["checkpoint_dir"]
        options = cls(
            metric=a["metric"], auto=resolve_auto(a["auto"], default=None if budget else "light"), budget=budget,
            reflection_minibatch_size=arg.check_int(OWNER, "reflection_minibatch_size",
                                                    a["reflection_minibatch_size"], 1),
            candidate_selection_strategy=arg.check_choice(OWNER, "candidate_selection_strategy",
                                                          a["candidate_selection_strategy"], SELECTION_STRATEGIES),
            reflection_lm=a["reflection_lm"],
            skip_perfect_score=arg.check_bool(OWNER, "skip_perfect_score", a["skip_perfect_score"]),
            add_format_failure_as_feedback=arg.check_bool(OWNER, "add_format_failure_as_feedback",
                                                          a["add_format_failure_as_feedback"]),
            instruction_proposer=arg.check_callable(OWNER, "instruction_proposer", a["instruction_proposer"]),
            component_selector=selector,
            use_merge=arg.check_bool(OWNER, "use_merge", a["use_merge"]),
            max_merge_invocations=arg.check_int(OWNER, "max_merge_invocations", a["max_merge_invocations"], 0),
            num_threads=arg.check_int(OWNER, "num_threads", a["num_threads"], 1),
            failure_score=arg.check_number(OWNER, "failure_score", a["failure_score"]),
            perfect_score=arg.check_number(OWNER, "perfect_score", a["perfect_score"]),
            log_dir=str(log_dir) if log_dir else None,
            track_stats=arg.check_bool(OWNER, "track_stats", a["track_stats"]),
            track_best_outputs=arg.check_bool(OWNER, "track_best_outputs", a["track_best_outputs"]),
            warn_on_score_mismatch=arg.check_bool(OWNER, "warn_on_score_mismatch", a["warn_on_score_mismatch"]),
            seed=seed, max_cost_usd=a["max_cost_usd"], config=a["config"],
            reporter=arg.check_reporter(OWNER, a["reporter"]),
            executor=resolve_executor(a["executor"], field=f"{OWNER}: executor"),
            tracking=dict(use_wandb=arg.check_bool(OWNER, "use_wandb", a["use_wandb"]),
                          wandb_api_key=a["wandb_api_key"], wandb_init_kwargs=a["wandb_init_kwargs"],
                          use_mlflow=arg.check_bool(OWNER, "use_mlflow", a["use_mlflow"])),
        )
        options.tracker()  # an extra that is not installed is an error now, not after the run
        _warn_unused(a)
        return options

    def tracker(self) -> ExperimentTracker:
        return ExperimentTracker(**self.tracking)

    def config_overrides(self) -> dict[str, Any]:
        return arg.config_overrides(OWNER, self.config, GEPAConfig)


def _warn_unused(a: Mapping[str, Any]) -> None:
    if a["gepa_kwargs"]:
        keys = sorted(a["gepa_kwargs"]) if isinstance(a["gepa_kwargs"], Mapping) else a["gepa_kwargs"]
        arg.not_used(OWNER, "gepa_kwargs", f"it passes options to the `gepa` package's engine, which rollouts-dspy "
                                           f"does not run (got {keys})")
    if a["code_proposer"] is not None:
        arg.not_used(OWNER, "code_proposer", "it rewrites dspy.Flex code components, which rollouts-dspy does not "
                                             "optimize (dspy.GEPA ignores it too for programs without dspy.Flex)")
