"""`RolloutsMIPRO`: our MIPRO engine as a DSPy teleprompter, a drop-in for `dspy.MIPROv2`.

    optimizer = RolloutsMIPRO(metric=metric, prompt_model=dspy.LM(...), auto="light")
    optimized = optimizer.compile(program, trainset=trainset, valset=valset)

It runs `optimize_mipro`, the engine `run_mipro` runs, on a ProgramTask: per predictor it proposes
instructions, builds demo sets (bootstrapped from the student's own successful runs and labeled from the
trainset) and searches the combinations with Optuna's TPE. The result is `student.deepcopy()` with only
instructions and demos changed, carrying MIPROv2's `score` (0-100), `trial_logs`, `candidate_programs`,
`mb_candidate_programs`, plus `optimization_result` (single-predictor programs) and `search_outcome`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

import dspy
from dspy.teleprompt import Teleprompter

from ..errors import ConfigError, DatasetError
from ..executors import Executor, resolve_executor
from ..prompt_optimization.events import Reporter
from ..prompt_optimization.mipro import MIPROConfig, optimize_mipro
from ..prompt_optimization.types import SearchOutcome
from . import bridge
from .lm_model import DSPyLanguageModel
from .presets import mipro_preset, resolve_auto
from .program_task import ProgramTask, apply_candidate, candidate_of, check_priced_lms

__all__ = ["RolloutsMIPRO"]

DEFAULT_THREADS = 8
STUDY_FILE = "mipro_study.json"


def mipro_split(trainset: list[dspy.Example], valset: list[dspy.Example] | None) -> bridge.Split:
    """MIPROv2's default when no valset is given: the last 80% of the trainset (at most 1000) validates."""
    if valset is not None:
        return bridge.split_indices(trainset, valset)
    if len(trainset) < 2:
        raise DatasetError("trainset must have at least 2 examples when no valset is given (it is split in two)")
    size = min(1000, max(1, int(len(trainset) * 0.8)))
    cut = len(trainset) - size
    return bridge.split_indices(trainset[:cut], trainset[cut:])


class RolloutsMIPRO(Teleprompter):
    """MIPRO (instructions + demos, Bayesian search) for any DSPy program, on rollouts-dspy's engine.

    DSPy-named arguments mean what they mean for `dspy.MIPROv2`: `metric` (either form; default: exact match
    of the output fields against the labels), `prompt_model` (proposes instructions; default: the LM in effect
    at compile time), `task_model` (runs the program; default: the LM in effect), `max_bootstrapped_demos`,
    `max_labeled_demos`, `auto` ("light" | "medium" | "heavy" | None), `num_candidates` (instruction
    candidates and demo sets; required when auto is None), `num_threads`, `seed`, `log_dir` (the Optuna study
    and proposals are stored there; rerunning with it resumes) and `metric_threshold` (a run becomes a
    bootstrapped demo when its score reaches it; default 1.0).

    Ours: `max_rollouts` and `max_cost_usd` (hard budgets), `config` (a MIPROConfig or a mapping of its fields,
    overriding everything else; its seeds are replaced by compile's split), `reporter` (engine events) and
    `executor` ("local", "ray" or a RayExecutor: the program and metric run as Ray tasks, docs/cluster.md).
    """

    def __init__(
        self,
        metric: Callable[..., Any] | None = None,
        prompt_model: Any = None,
        task_model: Any = None,
        *,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 4,
        auto: str | None = "light",
        num_candidates: int | None = None,
        num_threads: int | None = None,
        seed: int = 9,
        log_dir: str | None = None,
        metric_threshold: float | None = None,
        max_rollouts: int | None = None,
        max_cost_usd: float | None = None,
        config: MIPROConfig | Mapping[str, Any] | None = None,
        reporter: Reporter | None = None,
        executor: Executor | str | None = None,
    ) -> None:
        super().__init__()
        self.executor = resolve_executor(executor)
        if metric is not None and not callable(metric):
            raise ConfigError(f"metric must be callable, but got {type(metric).__name__}")
        self.auto = resolve_auto(auto, default=None)
        if self.auto is None and num_candidates is None:
            raise ConfigError("num_candidates must be given when auto is None (or set auto='light'|'medium'|'heavy')")
        if self.auto is not None and num_candidates is not None:
            raise ConfigError(f"auto={auto!r} sets num_candidates itself; pass auto=None to give num_candidates")
        if config is not None and not isinstance(config, (MIPROConfig, Mapping)):
            raise ConfigError(f"config must be a MIPROConfig or a mapping of its fields, but got "
                              f"{type(config).__name__}")
        self.metric = metric
        self.prompt_model = prompt_model
        self.task_model = task_model
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.num_candidates = num_candidates
        self.num_threads = num_threads
        self.seed = seed
        self.log_dir = str(log_dir) if log_dir else None
        self.metric_threshold = metric_threshold
        self.max_rollouts = max_rollouts
        self.max_cost_usd = max_cost_usd
        self.config = config
        self.reporter = reporter

    def _overrides(self) -> dict[str, Any]:
        names = {f.name for f in dataclasses.fields(MIPROConfig)}
        if isinstance(self.config, MIPROConfig):
            overrides = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(MIPROConfig)
                         if getattr(self.config, f.name) != f.default}
        else:
            overrides = dict(self.config or {})
        bad = sorted(set(overrides) - names)
        if bad:
            raise ConfigError(f"config has unknown MIPROConfig fields {bad}")
        return {k: v for k, v in overrides.items() if k not in ("train_seeds", "val_seeds")}

    def build_config(self, num_predictors: int, split: bridge.Split, *, num_trials: int | None,
                     max_bootstrapped_demos: int | None, max_labeled_demos: int | None, seed: int | None,
                     minibatch: bool, minibatch_size: int, minibatch_full_eval_steps: int) -> MIPROConfig:
        boot = self.max_bootstrapped_demos if max_bootstrapped_demos is None else max_bootstrapped_demos
        labeled = self.max_labeled_demos if max_labeled_demos is None else max_labeled_demos
        train, val = split.train_seeds, split.val_seeds
        fields: dict[str, Any] = dict(max_bootstrapped_demos=boot, max_labeled_demos=labeled)
        if self.auto is not None:
            preset = mipro_preset(self.auto, num_predictors=num_predictors, few_shot=bool(boot or labeled),
                                  train_size=len(train))
            fields.update(num_candidates=preset.num_candidates, num_demo_sets=preset.num_demo_sets,
                          num_trials=preset.num_trials, minibatch_size=preset.minibatch_size)
            val = val[: preset.val_size]
        else:
            fields.update(num_candidates=self.num_candidates, num_demo_sets=self.num_candidates,
                          num_trials=num_trials or max(10, 2 * self.num_candidates), minibatch_size=minibatch_size)
        if num_trials is not None:
            fields["num_trials"] = num_trials
        if not minibatch:
            fields["minibatch_size"] = len(train)
        fields.update(
            train_seeds=train, val_seeds=val, seed=self.seed if seed is None else seed,
            full_eval_every=minibatch_full_eval_steps, max_rollouts=self.max_rollouts,
            max_cost_usd=self.max_cost_usd, max_concurrent=self.num_threads or DEFAULT_THREADS,
            storage=os.path.join(self.log_dir, STUDY_FILE) if self.log_dir else None,
        )
        if self.metric_threshold is not None:
            fields["bootstrap_threshold"] = self.metric_threshold
        fields.update(self._overrides())
        return MIPROConfig(**fields)

    def compile(
        self,
        student: dspy.Module,
        *,
        trainset: list[dspy.Example],
        teacher: dspy.Module | None = None,
        valset: list[dspy.Example] | None = None,
        num_trials: int | None = None,
        max_bootstrapped_demos: int | None = None,
        max_labeled_demos: int | None = None,
        seed: int | None = None,
        minibatch: bool = True,
        minibatch_size: int = 35,
        minibatch_full_eval_steps: int = 5,
    ) -> dspy.Module:
        """Optimize every predictor's instructions and demos; returns a new program (the student is not
        modified). Without a valset, the last 80% of the trainset validates (as MIPROv2 does)."""
        bridge.check_student(student, trainset, teacher, valset)
        lm = self.task_model or bridge.task_lm(student)
        prompt_model = self.prompt_model or dspy.settings.lm or lm
        if prompt_model is None:
            raise ConfigError("no prompt_model given and no LM in effect (dspy.configure / dspy.context)")
        metric = self.metric or bridge.default_metric(student, trainset)
        split = mipro_split(trainset, valset)
        config = self.build_config(
            len(list(student.named_predictors())), split, num_trials=num_trials,
            max_bootstrapped_demos=max_bootstrapped_demos, max_labeled_demos=max_labeled_demos, seed=seed,
            minibatch=minibatch, minibatch_size=minibatch_size, minibatch_full_eval_steps=minibatch_full_eval_steps)
        check_priced_lms(config.max_cost_usd, lm, prompt_model)
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
        task = ProgramTask(student, split.examples, metric, lm, max_concurrent=config.max_concurrent)
        task = self.executor.task(task)  # Ray: program + metric run on the cluster
        proposer = DSPyLanguageModel(prompt_model)
        reporter = bridge.LoggingReporter(self.reporter)
        try:
            outcome = bridge.run_coroutine(lambda: optimize_mipro(task, proposer, candidate_of(student), config,
                                                                  reporter=reporter))
        finally:
            task.close()
        best = apply_candidate(student, outcome.record(outcome.best_id).candidate)
        usage = bridge.usage_dict(task, proposer, "proposer")
        result = bridge.optimization_result(student, outcome, method="mipro", seed=config.seed, usage=usage,
                                            config=config.to_dict())
        bridge.attach_common(best, outcome, result)
        self._attach(best, student, outcome, split)
        return best

    def _attach(self, best: dspy.Module, student: dspy.Module, outcome: SearchOutcome, split: bridge.Split) -> None:
        """MIPROv2's attributes: `score` and candidate scores in percent, best first."""
        on_val = bool(split.val_seeds)
        seeds = set(split.val_seeds or split.train_seeds)
        full, partial = [], []
        for record in outcome.records:
            scores = record.val_scores if on_val else record.train_scores
            entry = {"score": 100 * (bridge.record_score(record, on_val) or 0.0), "id": record.id,
                     "program": apply_candidate(student, record.candidate), "full_eval": seeds <= set(scores)}
            if scores and entry["full_eval"]:
                full.append(entry)
            elif record.train_scores:
                entry["score"] = 100 * (bridge.record_score(record, False) or 0.0)
                partial.append(entry)
        full.sort(key=lambda e: (e["id"] != outcome.best_id, -e["score"]))
        full.sort(key=lambda e: -e["score"])  # stable: among ties the chosen best stays first
        partial.sort(key=lambda e: -e["score"])
        chosen = outcome.record(outcome.best_id)
        best.score = 100 * (bridge.record_score(chosen, on_val) or bridge.record_score(chosen, False) or 0.0)
        best.candidate_programs = full
        best.mb_candidate_programs = partial
        by_trial: dict[int, list[str]] = {}
        for record in outcome.records:
            by_trial.setdefault(record.generation, []).append(record.id)
        best.trial_logs = {
            stats.generation: {
                "score": 100 * stats.best_score, "num_evaluated": stats.num_evaluated,
                "total_eval_calls_so_far": stats.rollouts_used, "candidate_ids": by_trial.get(stats.generation, []),
            }
            for stats in outcome.history
        }
        best.total_calls = outcome.rollouts_used
