"""`RolloutsGEPA`: our GEPA engine as a DSPy teleprompter, a drop-in for `dspy.GEPA`.

    optimizer = RolloutsGEPA(metric=metric, reflection_lm=dspy.LM(...), auto="light")
    optimized = optimizer.compile(program, trainset=trainset, valset=valset)

It runs `optimize_gepa`, the engine `run_gepa` runs, on a ProgramTask: each predictor's instructions are one
component. The student is never touched; the result is `student.deepcopy()` with only instructions changed
(demos are kept as they were), carrying `detailed_results` (dspy.GEPA's names, scores on a 0-1 scale),
`optimization_result` (our OptimizationResult, single-predictor programs) and `search_outcome`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.teleprompt import Teleprompter

from ..errors import ConfigError
from ..executors import Executor, resolve_executor
from ..prompt_optimization.events import Reporter
from ..prompt_optimization.gepa import GEPAConfig, optimize_gepa
from ..prompt_optimization.types import SearchOutcome
from ..runtime import RunContext
from . import bridge
from .lm_model import DSPyLanguageModel
from .presets import MINIBATCH_SIZE, gepa_preset, resolve_auto
from .program_task import ProgramTask, apply_candidate, candidate_of, check_priced_lms

__all__ = ["GEPADetailedResults", "RolloutsGEPA"]

DEFAULT_THREADS = 8
BUDGET_POPULATION = 2  # one child per generation: the paper's sequential scheme, best at small budgets
BUDGET_ELITES = 1
"""Population and elites when the run is sized by a rollout budget instead of `auto`."""


@dataclass(frozen=True)
class GEPADetailedResults:
    """The run as dspy.GEPA users read it from `program.detailed_results` (same attribute names).

    `candidates` are compiled programs, `val_aggregate_scores` their mean score (0-1) on the validation set
    (on the trainset when no valset was given), `val_subscores` per validation example index (0-based within
    the valset), `discovery_eval_counts` the rollouts used by the end of the generation that found each."""

    candidates: list[dspy.Module]
    parents: list[list[int | None]]
    val_aggregate_scores: list[float]
    val_subscores: list[dict[int, float]]
    per_val_instance_best_candidates: dict[int, set[int]]
    discovery_eval_counts: list[int]
    best_outputs_valset: Any = None
    total_metric_calls: int | None = None
    num_full_val_evals: int | None = None
    log_dir: str | None = None
    seed: int | None = None
    candidate_ids: list[str] = field(default_factory=list)

    @property
    def best_idx(self) -> int:
        return max(range(len(self.val_aggregate_scores)), key=lambda i: self.val_aggregate_scores[i])

    @property
    def best_candidate(self) -> dspy.Module:
        return self.candidates[self.best_idx]

    @property
    def highest_score_achieved_per_val_task(self) -> dict[int, float]:
        return {i: max(s[i] for s in self.val_subscores if i in s) for i in self.per_val_instance_best_candidates}


class RolloutsGEPA(Teleprompter):
    """GEPA (reflective prompt evolution) for any DSPy program, on rollouts-dspy's engine.

    DSPy-named arguments mean what they mean for `dspy.GEPA`: `metric` (either form; default: exact match of
    the program's output fields against the examples' labels, with feedback naming the expected value),
    `reflection_lm` (default: the LM in effect at compile time), at most one of `auto` ("light" | "medium" |
    "heavy"; the default when no budget is given), `max_full_evals`, `max_metric_calls` (= rollouts),
    `reflection_minibatch_size`, `use_merge`, `num_threads` (rollouts in flight), `failure_score` (score of a
    program that raised), `perfect_score` (stop once every training example scores this), `log_dir` (the run's
    checkpoint directory: rerunning with it resumes) and `seed`.

    Ours: `max_rollouts` (same as max_metric_calls), `max_cost_usd` (dollars, task + reflection, when litellm
    knows the price), `checkpoint_dir` (alias of log_dir), `config` (a GEPAConfig or a mapping of its fields,
    overriding the preset; its train/val seeds are replaced by compile's split) and `reporter` (receives the
    engine's events; by default steps are logged on the `rollouts_dspy.dspy` logger); `executor` ("local",
    "ray" or a RayExecutor: the program and metric run as Ray tasks on a cluster, docs/cluster.md).
    """

    def __init__(
        self,
        metric: Callable[..., Any] | None = None,
        *,
        auto: str | None = None,
        max_full_evals: int | None = None,
        max_metric_calls: int | None = None,
        reflection_minibatch_size: int | None = None,
        reflection_lm: Any = None,
        use_merge: bool = True,
        num_threads: int | None = None,
        failure_score: float = 0.0,
        perfect_score: float = 1.0,
        log_dir: str | None = None,
        seed: int = 0,
        max_rollouts: int | None = None,
        max_cost_usd: float | None = None,
        checkpoint_dir: str | None = None,
        config: GEPAConfig | Mapping[str, Any] | None = None,
        reporter: Reporter | None = None,
        executor: Executor | str | None = None,
    ) -> None:
        super().__init__()
        self.executor = resolve_executor(executor)
        if metric is not None and not callable(metric):
            raise ConfigError(f"metric must be callable, but got {type(metric).__name__}")
        budget = bridge.resolve_budget(auto=None, max_full_evals=max_full_evals, max_metric_calls=max_metric_calls,
                                       max_rollouts=max_rollouts)
        if budget is not None and auto is not None:
            raise ConfigError(f"set at most one of auto, max_full_evals, max_metric_calls, max_rollouts, but got "
                              f"auto={auto!r} and {budget[0]}={budget[1]}")
        if log_dir is not None and checkpoint_dir is not None and str(log_dir) != str(checkpoint_dir):
            raise ConfigError(f"log_dir and checkpoint_dir name the same thing; got {log_dir!r} and {checkpoint_dir!r}")
        if config is not None and not isinstance(config, (GEPAConfig, Mapping)):
            raise ConfigError(f"config must be a GEPAConfig or a mapping of its fields, but got "
                              f"{type(config).__name__}")
        self.metric = metric
        self.auto = resolve_auto(auto, default=None if budget else "light")
        self.budget = budget
        self.max_full_evals = max_full_evals
        self.max_metric_calls = max_metric_calls
        self.reflection_minibatch_size = reflection_minibatch_size
        self.reflection_lm = reflection_lm
        self.use_merge = use_merge
        self.num_threads = num_threads
        self.failure_score = failure_score
        self.perfect_score = perfect_score
        self.log_dir = str(log_dir or checkpoint_dir) if (log_dir or checkpoint_dir) else None
        self.seed = seed
        self.max_cost_usd = max_cost_usd
        self.config = config
        self.reporter = reporter

    # ------------------------------------------------------------------------------------------------------
    def _overrides(self) -> dict[str, Any]:
        if isinstance(self.config, GEPAConfig):
            overrides = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(GEPAConfig)
                         if getattr(self.config, f.name) != f.default}
        else:
            overrides = dict(self.config or {})
        bad = sorted(set(overrides) - {f.name for f in dataclasses.fields(GEPAConfig)})
        if bad:
            raise ConfigError(f"config has unknown GEPAConfig fields {bad}")
        # compile's trainset/valset decide the split.
        return {k: v for k, v in overrides.items() if k not in ("train_seeds", "val_seeds")}

    def build_config(self, num_components: int, split: bridge.Split) -> GEPAConfig:
        """The engine's config for this compile: preset or budget, DSPy-named knobs, then `config` overrides."""
        train, val = split.train_seeds, split.val_seeds
        overrides = self._overrides()
        fields: dict[str, Any] = {}
        if self.auto is not None:
            preset = gepa_preset(self.auto, num_components=num_components, train_size=len(train),
                                 val_size=len(val))
            fields.update(population_size=preset.population_size, generations=preset.generations,
                          minibatch_size=preset.minibatch_size, max_rollouts=preset.max_rollouts)
        else:
            name, value = self.budget  # type: ignore[misc]
            rollouts = value * len(split.examples) if name == "max_full_evals" else value
            minibatch = overrides.get("minibatch_size", MINIBATCH_SIZE if len(train) > MINIBATCH_SIZE else None)
            population = overrides.get("population_size", BUDGET_POPULATION)
            elites = overrides.get("elite_size", BUDGET_ELITES)
            # Enough generations to spend the budget; the budget, not the generation count, ends the run.
            per_generation = max(population - elites, 1) * min(minibatch or len(train), len(train))
            fields.update(max_rollouts=rollouts, population_size=population, elite_size=elites,
                          generations=max(2, rollouts // per_generation + 2), minibatch_size=minibatch)
        fields.update(
            train_seeds=train, val_seeds=val, seed=self.seed, max_cost_usd=self.max_cost_usd,
            max_concurrent=self.num_threads or DEFAULT_THREADS, checkpoint_dir=self.log_dir,
            perfect_score=self.perfect_score,
        )
        if self.reflection_minibatch_size is not None:  # None: the engine's default (measured, see GEPAConfig)
            fields["reflection_minibatch_size"] = self.reflection_minibatch_size
        if not self.use_merge:
            fields["crossover_rate"] = 0.0
        fields.update(overrides)
        fields["elite_size"] = min(fields.get("elite_size", 4), fields.get("population_size", 20) - 1)
        return GEPAConfig(**fields)

    def compile(
        self,
        student: dspy.Module,
        *,
        trainset: list[dspy.Example],
        teacher: dspy.Module | None = None,
        valset: list[dspy.Example] | None = None,
    ) -> dspy.Module:
        """Optimize every predictor's instructions; returns a new program (the student is not modified).
        With no valset the best candidate is chosen on the trainset, as dspy.GEPA does."""
        bridge.check_student(student, trainset, teacher, valset)
        lm = bridge.task_lm(student)
        reflection_lm = self.reflection_lm or lm
        if reflection_lm is None:
            raise ConfigError("no reflection_lm given and no LM in effect (dspy.configure / dspy.context)")
        metric = self.metric or bridge.default_metric(student, trainset)
        split = bridge.split_indices(trainset, valset)
        config = self.build_config(len(list(student.named_predictors())), split)
        check_priced_lms(config.max_cost_usd, lm, reflection_lm)
        task = ProgramTask(student, split.examples, metric, lm, max_concurrent=config.max_concurrent,
                           failure_score=self.failure_score)
        task = self.executor.task(task)  # Ray: program + metric run on the cluster
        reflection = DSPyLanguageModel(reflection_lm)
        world = {"program": [(n, p.signature.signature) for n, p in student.named_predictors()],
                 "examples": len(split.examples), "lm": getattr(lm, "model", repr(lm)),
                 "reflection_lm": getattr(reflection_lm, "model", repr(reflection_lm))}
        reporter = bridge.LoggingReporter(self.reporter)
        try:
            outcome = bridge.run_coroutine(lambda: optimize_gepa(
                task, reflection, candidate_of(student), config, reporter=reporter,
                context=RunContext(fingerprint=world)))
        finally:
            task.close()
        best = apply_candidate(student, outcome.record(outcome.best_id).candidate)
        usage = bridge.usage_dict(task, reflection, "reflection")
        result = bridge.optimization_result(student, outcome, method="gepa", seed=self.seed, usage=usage,
                                            config=config.to_dict())
        bridge.attach_common(best, outcome, result)
        best.detailed_results = self._detailed(student, outcome, split, config)
        return best

    def _detailed(self, student: dspy.Module, outcome: SearchOutcome, split: bridge.Split,
                  config: GEPAConfig) -> GEPADetailedResults:
        on_val = bool(split.val_seeds)
        seeds = split.val_seeds or split.train_seeds
        offset = len(split.train_seeds) if on_val else 0
        full = [r for r in outcome.records
                if set(seeds) <= set(r.val_scores if on_val else r.train_scores)]
        best = outcome.record(outcome.best_id)
        if best not in full:
            full.append(best)
        # The chosen best comes first so `best_idx` (first maximum) names it even among ties.
        full.sort(key=lambda r: r.id != outcome.best_id)
        index = {r.id: i for i, r in enumerate(full)}
        found = bridge.rollouts_by_generation(outcome)
        subscores = [{i - offset: s for i, s in (r.val_scores if on_val else r.train_scores).items()}
                     for r in full]
        best_per: dict[int, set[int]] = {}
        for i in range(len(seeds)):
            top = max((s.get(i, float("-inf")) for s in subscores), default=float("-inf"))
            best_per[i] = {k for k, s in enumerate(subscores) if s.get(i) == top}
        return GEPADetailedResults(
            candidates=[apply_candidate(student, r.candidate) for r in full],
            parents=[[index.get(p) for p in r.parents] or [None] for r in full],
            val_aggregate_scores=[bridge.record_score(r, on_val) or 0.0 for r in full],
            val_subscores=subscores,
            per_val_instance_best_candidates=best_per,
            discovery_eval_counts=[found.get(r.generation, 0) for r in full],
            total_metric_calls=outcome.rollouts_used,
            num_full_val_evals=len(full),
            log_dir=config.checkpoint_dir,
            seed=config.seed,
            candidate_ids=[r.id for r in full],
        )
