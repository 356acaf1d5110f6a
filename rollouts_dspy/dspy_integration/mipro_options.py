"""RolloutsMIPRO's constructor arguments (MIPROv2's, plus ours), checked once at construction: a wrong type or
value is a ConfigError naming the argument before any LM call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..executors import Executor, LocalExecutor, resolve_executor
from ..prompt_optimization.mipro import MIPROConfig
from . import arguments as arg
from .presets import resolve_auto
from .program_task import DEFAULT_THREADS

__all__ = ["CompileArguments", "MIPROOptions"]

OWNER = "RolloutsMIPRO"


@dataclass(frozen=True, kw_only=True)
class MIPROOptions:
    """The checked constructor arguments."""

    metric: Callable[..., Any] | None
    prompt_model: Any
    task_model: Any
    teacher_settings: Mapping[str, Any]
    max_bootstrapped_demos: int
    max_labeled_demos: int
    auto: str | None
    num_candidates: int | None
    num_threads: int | None
    max_errors: int | None
    seed: int
    init_temperature: float
    verbose: bool
    track_stats: bool
    log_dir: str | None
    metric_threshold: float | None
    max_rollouts: int | None
    max_cost_usd: float | None
    config: MIPROConfig | Mapping[str, Any] | None
    reporter: Callable[..., Any] | None
    executor: Executor = field(default_factory=LocalExecutor)

    @property
    def threads(self) -> int:
        return self.num_threads or DEFAULT_THREADS

    @classmethod
    def from_arguments(cls, a: Mapping[str, Any]) -> MIPROOptions:
        arg.check_callable(OWNER, "metric", a["metric"])
        auto = resolve_auto(a["auto"], default=None)
        if auto is None and a["num_candidates"] is None:
            raise ConfigError(f"{OWNER}: num_candidates must be given when auto is None (or set "
                              "auto='light'|'medium'|'heavy')")
        if auto is not None and a["num_candidates"] is not None:
            raise ConfigError(f"{OWNER}: auto={a['auto']!r} sets num_candidates itself; pass auto=None to give "
                              "num_candidates")
        if a["config"] is not None and not isinstance(a["config"], (MIPROConfig, Mapping)):
            raise ConfigError(f"{OWNER}: config must be a MIPROConfig or a mapping of its fields, but got "
                              f"{type(a['config']).__name__}")
        return cls(
            metric=a["metric"], prompt_model=a["prompt_model"], task_model=a["task_model"],
            teacher_settings=arg.check_mapping(OWNER, "teacher_settings", a["teacher_settings"]),
            max_bootstrapped_demos=arg.check_int(OWNER, "max_bootstrapped_demos", a["max_bootstrapped_demos"], 0,
                                                 optional=False),
            max_labeled_demos=arg.check_int(OWNER, "max_labeled_demos", a["max_labeled_demos"], 0, optional=False),
            auto=auto, num_candidates=arg.check_int(OWNER, "num_candidates", a["num_candidates"], 1),
            num_threads=arg.check_int(OWNER, "num_threads", a["num_threads"], 1),
            max_errors=arg.check_int(OWNER, "max_errors", a["max_errors"], 1),
            seed=arg.check_int(OWNER, "seed", a["seed"], 0, optional=False),
            init_temperature=arg.check_number(OWNER, "init_temperature", a["init_temperature"]),
            verbose=arg.check_bool(OWNER, "verbose", a["verbose"]),
            track_stats=arg.check_bool(OWNER, "track_stats", a["track_stats"]),
            log_dir=str(a["log_dir"]) if a["log_dir"] else None,
            metric_threshold=arg.check_number(OWNER, "metric_threshold", a["metric_threshold"], optional=True),
            max_rollouts=arg.check_int(OWNER, "max_rollouts", a["max_rollouts"], 1),
            max_cost_usd=a["max_cost_usd"], config=a["config"], reporter=arg.check_reporter(OWNER, a["reporter"]),
            executor=resolve_executor(a["executor"], field=f"{OWNER}: executor"),
        )

    def config_overrides(self) -> dict[str, Any]:
        return arg.config_overrides(OWNER, self.config, MIPROConfig)


@dataclass(frozen=True, kw_only=True)
class CompileArguments:
    """`compile`'s MIPROv2 arguments, checked."""

    num_trials: int | None = None
    max_bootstrapped_demos: int | None = None
    max_labeled_demos: int | None = None
    seed: int | None = None
    minibatch: bool = True
    minibatch_size: int = 35
    minibatch_full_eval_steps: int = 5
    program_aware_proposer: bool = True
    data_aware_proposer: bool = True
    view_data_batch_size: int = 10
    tip_aware_proposer: bool = True
    fewshot_aware_proposer: bool = True
    provide_traceback: bool | None = None

    def __post_init__(self) -> None:
        for name in ("num_trials", "max_bootstrapped_demos", "max_labeled_demos", "seed"):
            arg.check_int(OWNER, name, getattr(self, name), 0 if name != "num_trials" else 1)
        for name in ("minibatch_size", "minibatch_full_eval_steps", "view_data_batch_size"):
            arg.check_int(OWNER, name, getattr(self, name), 1, optional=False)
        for name in ("minibatch", "program_aware_proposer", "data_aware_proposer", "tip_aware_proposer",
                     "fewshot_aware_proposer"):
            arg.check_bool(OWNER, name, getattr(self, name))
        if self.provide_traceback is not None:
            arg.check_bool(OWNER, "provide_traceback", self.provide_traceback)
