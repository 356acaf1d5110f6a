"""`RolloutsMIPRO`: our MIPRO engine as a DSPy teleprompter, a drop-in for `dspy.MIPROv2`.

    optimizer = RolloutsMIPRO(metric=metric, prompt_model=dspy.LM(...), auto="light")
    optimized = optimizer.compile(program, trainset=trainset, valset=valset)

Every argument of `dspy.MIPROv2.__init__` and `.compile` is accepted with MIPROv2's meaning (docs/dspy.md has
the table). It runs `optimize_mipro`, the engine `run_mipro` runs, on a ProgramTask: per predictor it proposes
instructions, builds demo sets (bootstrapped from the student's, or the teacher's, successful runs and labeled
from the trainset) and searches the combinations with Optuna's TPE. The result is `student.deepcopy()` with
only instructions and demos changed, carrying MIPROv2's attributes (`score`, `trial_logs`, `candidate_programs`,
...), plus `optimization_result` (single-predictor programs) and `search_outcome`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import dspy
from dspy.teleprompt import Teleprompter

from ..errors import ConfigError, DatasetError
from ..prompt_optimization.mipro import MIPROConfig, optimize_mipro
from ..runtime import RunContext
from . import arguments as arg
from .candidates import candidate_of
from .inputs import Split, check_student, default_metric, split_indices, task_lm
from .lm_model import DSPyLanguageModel
from .mipro_options import CompileArguments, MIPROOptions
from .mipro_result import attach_mipro_results
from .pipeline import CompileSpec, Tasks, compile_program, program_world
from .presets import mipro_preset
from .program_task import TaskOptions, check_components, check_priced_lms
from .progress import logger

__all__ = ["RolloutsMIPRO"]

ANY_POSITIVE = sys.float_info.min
"""MIPROv2 keeps a bootstrapped run whose metric value is truthy when no metric_threshold is given."""


def mipro_split(trainset: list[dspy.Example], valset: list[dspy.Example] | None) -> Split:
    """MIPROv2's default when no valset is given: the last 80% of the trainset (at most 1000) validates."""
    if valset is not None:
        return split_indices(trainset, valset)
    if len(trainset) < 2:
        raise DatasetError("trainset must have at least 2 examples when no valset is given (it is split in two)")
    size = min(1000, max(1, int(len(trainset) * 0.8)))
    cut = len(trainset) - size
    return split_indices(trainset[:cut], trainset[cut:])


class RolloutsMIPRO(Teleprompter):
    """MIPRO (instructions + demos, Bayesian search) for any DSPy program, on rollouts-dspy's engine.

    Arguments are MIPROv2's, with its meaning (see docs/dspy.md for each). Ours: `max_rollouts` and
    `max_cost_usd` (hard budgets; every `auto` level is a hard cap too), `config` (a MIPROConfig or a mapping
    of its fields, overriding everything else; its seeds are replaced by compile's split), `reporter`
    (engine events; progress is logged on the "dspy.teleprompt.rollouts_dspy" logger with a progress bar) and
    `executor` ("local", "ray" or a RayExecutor: the program and metric run as Ray tasks, docs/cluster.md).
    """

    def __init__(
        self,
        metric: Callable[..., Any] | None = None,
        prompt_model: Any = None,
        task_model: Any = None,
        teacher_settings: dict[str, Any] | None = None,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 4,
        auto: str | None = "light",
        num_candidates: int | None = None,
        num_threads: int | None = None,
        max_errors: int | None = None,
        seed: int = 9,
        init_temperature: float = 1.0,
        verbose: bool = False,
        track_stats: bool = True,
        log_dir: str | None = None,
        metric_threshold: float | None = None,
        *,
        max_rollouts: int | None = None,
        max_cost_usd: float | None = None,
        config: MIPROConfig | Mapping[str, Any] | None = None,
        reporter: Callable[..., Any] | None = None,
        executor: Any = None,
    ) -> None:
        super().__init__()
        given = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.options = MIPROOptions.from_arguments(given)
        for name, value in given.items():  # MIPROv2 keeps its arguments as attributes
            setattr(self, name, value)
        self.prompt_model_total_calls = 0
        self.total_calls = 0

    def build_config(self, num_predictors: int, split: Split, args: CompileArguments) -> MIPROConfig:
        """The engine's config for this compile (the auto preset's sizes and rollout cap, compile's MIPROv2
        arguments, then `config` overrides); a budget too small for one trial beyond the start is a
        ConfigError naming the minimum."""
        opts = self.options
        boot = opts.max_bootstrapped_demos if args.max_bootstrapped_demos is None else args.max_bootstrapped_demos
        labeled = opts.max_labeled_demos if args.max_labeled_demos is None else args.max_labeled_demos
        train, val = split.train_seeds, split.val_seeds
        fields: dict[str, Any] = dict(max_bootstrapped_demos=boot, max_labeled_demos=labeled,
                                      minibatch_size=args.minibatch_size, max_rollouts=opts.max_rollouts)
        if opts.auto is not None:
            preset = mipro_preset(opts.auto, num_predictors=num_predictors, few_shot=bool(boot or labeled),
                                  train_size=len(train), val_size=len(val), minibatch_size=args.minibatch_size,
                                  full_eval_steps=args.minibatch_full_eval_steps)
            fields.update(num_candidates=preset.num_candidates, num_demo_sets=preset.num_demo_sets,
                          num_trials=preset.num_trials, minibatch_size=preset.minibatch_size)
            fields["max_rollouts"] = min(preset.max_rollouts, opts.max_rollouts or preset.max_rollouts)
            if opts.max_rollouts is not None and opts.max_rollouts > preset.max_rollouts:
                # Both are hard caps, so the smaller wins; say so, since a budget given explicitly reads as the
                # one that will be spent.
                logger.warning("RolloutsMIPRO: auto=%r caps this compile at %d program runs, below max_rollouts=%d; "
                               "pass auto='medium' or 'heavy', or auto=None with num_candidates and num_trials, "
                               "to spend more", opts.auto, preset.max_rollouts, opts.max_rollouts)
            val = val[: preset.val_size]
        else:
            n = opts.num_candidates
            fields.update(num_candidates=n, num_demo_sets=n, num_trials=max(10, 2 * n))  # type: ignore[operator]
        if args.num_trials is not None:
            fields["num_trials"] = args.num_trials
        if not args.minibatch:
            fields["minibatch_size"] = len(train)
        seed = opts.seed if args.seed is None else args.seed
        fields.update(
            train_seeds=train, val_seeds=val, seed=seed, full_eval_every=args.minibatch_full_eval_steps,
            max_cost_usd=opts.max_cost_usd, max_concurrent=opts.threads,
            checkpoint_dir=opts.log_dir,
            bootstrap_threshold=ANY_POSITIVE if opts.metric_threshold is None else opts.metric_threshold,
            program_aware=args.program_aware_proposer, data_aware=args.data_aware_proposer,
            tip_aware=args.tip_aware_proposer, fewshot_aware=args.fewshot_aware_proposer,
            summary_examples=args.view_data_batch_size,
        )
        fields.update(opts.config_overrides())
        # A budget too small for one trial beyond the start is refused here, naming the minimum (MIPROConfig);
        # the engine keeps bootstrapping within what the budget leaves after that.
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
        program_aware_proposer: bool = True,
        data_aware_proposer: bool = True,
        view_data_batch_size: int = 10,
        tip_aware_proposer: bool = True,
        fewshot_aware_proposer: bool = True,
        requires_permission_to_run: bool | None = None,
        provide_traceback: bool | None = None,
    ) -> dspy.Module:
        """Optimize every predictor's instructions and demos; returns a new program (the student is not
        modified). Without a valset, the last 80% of the trainset validates (as MIPROv2 does). With a
        `teacher`, demos are bootstrapped from the teacher's runs."""
        if requires_permission_to_run is not None:
            arg.not_used("RolloutsMIPRO.compile", "requires_permission_to_run",
                         "rollouts-dspy never asks for confirmation (MIPROv2 deprecated it too)")
        args = CompileArguments(
            num_trials=num_trials, max_bootstrapped_demos=max_bootstrapped_demos,
            max_labeled_demos=max_labeled_demos, seed=seed, minibatch=minibatch, minibatch_size=minibatch_size,
            minibatch_full_eval_steps=minibatch_full_eval_steps, program_aware_proposer=program_aware_proposer,
            data_aware_proposer=data_aware_proposer, view_data_batch_size=view_data_batch_size,
            tip_aware_proposer=tip_aware_proposer, fewshot_aware_proposer=fewshot_aware_proposer,
            provide_traceback=provide_traceback)
        return self._compile(student, trainset, teacher, valset, args)

    def _compile(self, student: dspy.Module, trainset: list[dspy.Example], teacher: dspy.Module | None,
                 valset: list[dspy.Example] | None, args: CompileArguments) -> dspy.Module:
        opts = self.options
        check_student(student, trainset, valset, teacher)
        if teacher is not None:
            check_components(student, teacher)
        lm = opts.task_model or task_lm(student)
        prompt_model = opts.prompt_model or dspy.settings.lm or lm
        if prompt_model is None:
            raise ConfigError("RolloutsMIPRO: no prompt_model given and no LM in effect (dspy.configure / "
                              "dspy.context)")
        metric = opts.metric or default_metric(student, trainset)
        split = mipro_split(trainset, valset)
        config = self.build_config(len(list(student.named_predictors())), split, args)
        check_priced_lms(config.max_cost_usd, lm, prompt_model)
        if opts.log_dir:
            os.makedirs(opts.log_dir, exist_ok=True)
        model = DSPyLanguageModel(prompt_model, temperature=opts.init_temperature, verbose=opts.verbose)
        options = TaskOptions(max_concurrent=config.max_concurrent, max_errors=opts.max_errors,
                              provide_traceback=bool(args.provide_traceback))
        bootstrap = (teacher or student, TaskOptions(
            max_concurrent=config.max_concurrent, bootstrap=True, fixed_program=teacher is not None,
            settings=opts.teacher_settings, max_errors=opts.max_errors, provide_traceback=bool(args.provide_traceback)))
        initial, trials = candidate_of(student), {}

        world = program_world(student, split, lm, prompt_model)

        async def search(tasks: Tasks, reporter: Any) -> Any:
            return await optimize_mipro(tasks.main, model, initial, config, reporter=reporter,
                                        context=RunContext(fingerprint=world), bootstrap_task=tasks.bootstrap,
                                        trial_log=trials)

        spec = CompileSpec("mipro", student, split, lm, metric, config, model, "proposer", options, search, bootstrap,
                           executor=opts.executor)
        compiled = compile_program(spec, reporter=opts.reporter)
        tasks = [t for t in (compiled.tasks.main, compiled.tasks.bootstrap) if t is not None]
        self.total_calls = sum(t.rollouts_run for t in tasks)
        self.prompt_model_total_calls = model.calls
        if opts.track_stats:
            attach_mipro_results(compiled.program, student, compiled.outcome, config, trials,
                                 total_calls=self.total_calls, prompt_calls=model.calls, log_dir=opts.log_dir)
        if opts.verbose:
            _log_trials(trials)
        return compiled.program

    def get_params(self) -> dict[str, Any]:
        params = dict(super().get_params())
        params.pop("options", None)
        return params


def _log_trials(trials: Mapping[int, Any]) -> None:
    for number, trial in sorted(trials.items()):
        score = "n/a" if trial.value is None else f"{100 * trial.value:.1f}"
        logger.info("trial %d: %s score %s on %d examples", number, trial.combo, score, len(trial.scores))
