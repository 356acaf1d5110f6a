"""`RolloutsGEPA`: our GEPA engine as a DSPy teleprompter, a drop-in for `dspy.GEPA`.

    optimizer = RolloutsGEPA(metric=metric, reflection_lm=dspy.LM(...), auto="light", track_stats=True)
    optimized = optimizer.compile(program, trainset=trainset, valset=valset)

Every argument of `dspy.GEPA.__init__` is accepted with DSPy's meaning (docs/dspy.md has the table). It runs
`optimize_gepa`, the engine `run_gepa` runs, on a ProgramTask: each predictor's instructions are one component.
The student is never touched; the result is `student.deepcopy()` with only instructions changed, carrying
`detailed_results` (a `DspyGEPAResult`, with `track_stats=True`), `optimization_result` (our
OptimizationResult, single-predictor programs) and `search_outcome`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import dspy
from dspy.teleprompt import Teleprompter

from ..dtypes import Usage
from ..errors import ConfigError
from ..prompt_optimization.gepa import GEPAConfig, GEPAStrategies, optimize_gepa
from ..runtime import RunContext
from .candidates import candidate_of
from .gepa_options import GEPAOptions
from .gepa_result import RolloutsGEPAResult, detailed_results
from .gepa_strategies import DSPyComponentSelector, DSPyProposer
from .inputs import Split, check_student, default_metric, flex_paths, split_indices, task_lm
from .lm_model import DSPyLanguageModel
from .pipeline import CompileSpec, Tasks, compile_program, program_world
from .presets import gepa_auto_budget
from .program_task import ProgramTask, TaskOptions, check_priced_lms
from .progress import logger
from .run_memory import RunMemory

__all__ = ["GEPADetailedResults", "RolloutsGEPA"]

GEPADetailedResults = RolloutsGEPAResult  # the name this result had before it became a DspyGEPAResult
MAX_STALE_STEPS = 10
"""Steps in a row without a new child before the run stops early (dspy.GEPA runs until its budget is spent;
this bound only ends runs whose reflections keep producing nothing)."""


class NoReflectionLM:
    """The reflection model of a run whose custom instruction_proposer brings its own LMs (dspy.GEPA allows
    reflection_lm=None then): only the engine's optional LLM merges would call it."""

    calls = 0
    usage = Usage()

    async def complete(self, messages: Any) -> Any:
        raise ConfigError("RolloutsGEPA: this run has no reflection_lm (only an instruction_proposer); give "
                          "reflection_lm= to use LLM merges")


class RolloutsGEPA(Teleprompter):
    """GEPA (reflective prompt evolution) for any DSPy program, on rollouts-dspy's engine.

    Arguments are dspy.GEPA's, with its meaning (see docs/dspy.md for each): `metric` (either form; default:
    exact match of the output fields against the labels, with feedback naming the expected value),
    `reflection_lm` (default: the LM in effect at compile time), at most one of `auto` (the default, "light",
    when no budget is given), `max_full_evals`, `max_metric_calls` (= rollouts); every budget is a hard cap.

    Ours: `max_rollouts` (same as max_metric_calls), `max_cost_usd` (dollars, task + reflection, when the
    price is known), `checkpoint_dir` (alias of log_dir), `config` (a GEPAConfig or a mapping of its fields,
    overriding the preset; its train/val seeds are replaced by compile's split) and `reporter` (receives the
    engine's events; progress is logged on the "dspy.teleprompt.rollouts_dspy" logger with a progress bar) and
    `executor` ("local", "ray" or a RayExecutor: the program and metric run as Ray tasks, docs/cluster.md).
    """

    def __init__(
        self,
        metric: Callable[..., Any] | None = None,
        *,
        auto: str | None = None,
        max_full_evals: int | None = None,
        max_metric_calls: int | None = None,
        reflection_minibatch_size: int | None = None,
        candidate_selection_strategy: str = "pareto",
        reflection_lm: Any = None,
        skip_perfect_score: bool = True,
        add_format_failure_as_feedback: bool = False,
        instruction_proposer: Callable[..., Any] | None = None,
        code_proposer: Callable[..., Any] | None = None,
        component_selector: Any = "round_robin",
        use_merge: bool = True,
        max_merge_invocations: int | None = 5,
        num_threads: int | None = None,
        failure_score: float = 0.0,
        perfect_score: float = 1.0,
        log_dir: str | None = None,
        track_stats: bool = False,
        use_wandb: bool = False,
        wandb_api_key: str | None = None,
        wandb_init_kwargs: dict[str, Any] | None = None,
        track_best_outputs: bool = False,
        warn_on_score_mismatch: bool = True,
        use_mlflow: bool = False,
        seed: int | None = 0,
        gepa_kwargs: dict[str, Any] | None = None,
        max_rollouts: int | None = None,
        max_cost_usd: float | None = None,
        checkpoint_dir: str | None = None,
        config: GEPAConfig | Mapping[str, Any] | None = None,
        reporter: Callable[..., Any] | None = None,
        executor: Any = None,
    ) -> None:
        super().__init__()
        given = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.options = GEPAOptions.from_arguments(given)
        # dspy.GEPA keeps its arguments as attributes; code that reads them finds them here too.
        for name, value in given.items():
            setattr(self, name, value)
        self.metric_fn = metric

    # ------------------------------------------------------------------------------------------------------
    def budget(self, num_components: int, split: Split) -> int:
        """The run's hard rollout cap, as dspy.GEPA sizes its metric-call budget."""
        opts = self.options
        if opts.auto is not None:
            val = len(split.val_seeds) or len(split.train_seeds)
            return gepa_auto_budget(opts.auto, num_components=num_components, val_size=val)
        name, value = opts.budget  # type: ignore[misc]
        return value * len(split.examples) if name == "max_full_evals" else value

    def build_config(self, num_components: int, split: Split) -> GEPAConfig:
        """The engine's config for this compile: the budget, the split and the DSPy-named knobs; everything else
        is the engine's own choice for the data and budget (gepa/sizing.py), so both front doors run the same
        measured settings. With a valset candidates are compared on (a sample of) it, as dspy.GEPA compares on
        its valset; without one, on a sample of the trainset kept apart from the reflections' minibatches.
        `config` overrides come last. A budget too small for one step is the engine's ConfigError naming the
        minimum."""
        opts = self.options
        budget = self.budget(num_components, split)
        fields: dict[str, Any] = dict(
            max_rollouts=budget, train_seeds=split.train_seeds, val_seeds=split.val_seeds,
            pareto_split="val" if split.val_seeds else "train", seed=opts.seed, max_cost_usd=opts.max_cost_usd,
            max_concurrent=opts.threads, checkpoint_dir=opts.log_dir, perfect_score=opts.perfect_score,
            max_stale_generations=MAX_STALE_STEPS,
        )
        if opts.reflection_minibatch_size is not None:  # None: the engine's default, measured (GEPAConfig)
            fields["reflection_minibatch_size"] = opts.reflection_minibatch_size
        fields.update(candidate_selection=opts.candidate_selection_strategy,
                      skip_perfect_score=opts.skip_perfect_score, max_merges=opts.max_merge_invocations)
        if isinstance(opts.component_selector, str):  # a callable is passed as a strategy object (compile)
            fields["component_selection"] = opts.component_selector
        if not opts.use_merge or opts.max_merge_invocations == 0:
            fields["crossover_rate"] = 0.0
        fields.update(opts.config_overrides())
        try:
            return GEPAConfig(**fields)
        except ConfigError as exc:
            raise ConfigError(f"RolloutsGEPA: {exc}") from None

    def compile(self, student: dspy.Module, *, trainset: list[dspy.Example], teacher: dspy.Module | None = None,
                valset: list[dspy.Example] | None = None) -> dspy.Module:
        """Optimize every predictor's instructions; returns a new program (the student is not modified).
        With no valset the best candidate is chosen on the trainset, as dspy.GEPA does."""
        if teacher is not None:
            raise ConfigError("RolloutsGEPA: teacher is not supported (dspy.GEPA does not support it either: it "
                              "evolves the student's instructions from the student's own runs); drop teacher=")
        check_student(student, trainset, valset)
        opts = self.options
        if flex_paths(student):
            logger.warning("RolloutsGEPA: the dspy.Flex submodules %s keep their code; only predictors are "
                           "optimized", flex_paths(student))
        lm = task_lm(student)
        reflection_lm = opts.reflection_lm or lm
        if reflection_lm is None and opts.instruction_proposer is None:
            raise ConfigError("RolloutsGEPA: no reflection_lm given and no LM in effect (dspy.configure / "
                              "dspy.context)")
        metric = opts.metric or default_metric(student, trainset)
        split = split_indices(trainset, valset)
        config = self.build_config(len(list(student.named_predictors())), split)
        check_priced_lms(config.max_cost_usd, lm, reflection_lm)
        model = DSPyLanguageModel(reflection_lm) if reflection_lm is not None else NoReflectionLM()
        world = program_world(student, split, lm, reflection_lm)
        initial = candidate_of(student)

        async def search(tasks: Tasks, reporter: Any) -> Any:
            return await optimize_gepa(tasks.main, model, initial, config, reporter=reporter,
                                       context=RunContext(fingerprint=world),
                                       strategies=self.strategies(tasks.main, split, config, reflection_lm))

        # With track_best_outputs, the Predictions on the samples candidates may be compared on are kept.
        compared = config.val_seeds if config.pareto_split == "val" else config.train_seeds
        kept = compared if opts.track_best_outputs else ()
        memory = RunMemory(config.checkpoint_dir, predictions_for=kept)
        options = TaskOptions(max_concurrent=config.max_concurrent, failure_score=opts.failure_score,
                              add_format_failure_as_feedback=opts.add_format_failure_as_feedback,
                              warn_on_score_mismatch=opts.warn_on_score_mismatch, memory=memory,
                              keep_runs_for=frozenset(split.train_seeds))  # reflections are about these
        spec = CompileSpec("gepa", student, split, lm, metric, config, model, "reflection", options, search,
                           executor=opts.executor)
        compiled = compile_program(spec, reporter=opts.reporter, tracker=opts.tracker())
        if opts.track_stats:
            compiled.program.detailed_results = detailed_results(
                student, compiled.outcome, split, config, memory if opts.track_best_outputs else None)
        return compiled.program

    def strategies(self, task: ProgramTask, split: Split, config: GEPAConfig, reflection_lm: Any
                   ) -> GEPAStrategies:
        """DSPy's strategy callables (`component_selector`, `instruction_proposer`) as the engine's strategies;
        the named ones are the config's (`build_config`)."""
        opts = self.options
        selector = opts.component_selector
        return GEPAStrategies(
            component_selector=(DSPyComponentSelector(selector, task, split, config.pareto_split)
                                if callable(selector) else None),
            proposer=(DSPyProposer(opts.instruction_proposer, task, reflection_lm)
                      if opts.instruction_proposer is not None else None),
        )

    def get_params(self) -> dict[str, Any]:
        params = dict(super().get_params())
        params.pop("options", None)
        return params
