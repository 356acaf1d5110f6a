"""The package root is the one list of what is public; this pins it so a change to it is a decision."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import rollouts_dspy

PUBLIC = {
    # the spec's names
    "PromptTemplate", "FewShotExample", "GEPAConfig", "MIPROConfig", "OptimizationResult", "GenerationStats",
    "format_prompt", "evaluate_template", "select_elites", "mutate_template", "crossover_templates",
    "bootstrap_demos", "propose_instructions", "run_gepa", "run_mipro",
    # the rollouts types the spec imports
    "Endpoint", "Message", "Trajectory", "Score", "Metric", "Sample", "ScoreFn", "Environment", "Tool", "ToolCall",
    "ToolResult", "Usage", "run_agent", "run_completion", "CalculatorEnvironment",
    # ours
    "Budget", "EvaluationReport", "evaluate_detailed", "Rollout", "LinePrinter", "LLMSession", "LLMCallError",
    "ProviderUnavailableError", "MutationError", "estimate_calls",
    "CheckpointError", "ConfigError", "DatasetError", "ResultFileError", "ScoreFnError", "TemplateError",
    "RayExecutor", "RolloutsGEPA", "RolloutsMIPRO", "template_to_module", "module_to_template", "score_fn_to_metric",
    "metric_to_score_fn", "rows_to_examples", "examples_to_rows",
    "save_template", "load_template", "save_result", "load_result",
    "SharedStudy", "load_study_result", "RunOptions", "SharedEvaluation",
}

MIRRORS_DSPY = {"RolloutsGEPA", "RolloutsMIPRO"}
"""Their constructors take dspy.GEPA's / dspy.MIPROv2's own arguments, so DSPy code runs unchanged (tests in
tests/dspy_integration pin that); their size is DSPy's decision, not ours."""


def test_public_names_are_exactly_the_list_and_all_resolve():
    assert set(rollouts_dspy.__all__) == PUBLIC
    assert rollouts_dspy.__all__ == sorted(rollouts_dspy.__all__)
    for name in rollouts_dspy.__all__:
        assert getattr(rollouts_dspy, name) is not None, name


def test_importing_the_package_is_cheap():
    # dspy, litellm and optuna load only when a name that needs them is used.
    code = "import sys, rollouts_dspy; print(sorted(m for m in ('dspy', 'litellm', 'optuna') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_functions_take_at_most_eight_parameters_the_rest_lives_in_config_objects():
    # Budget, concurrency and checkpoint are GEPAConfig/MIPROConfig fields; reporter, progress and executor are
    # RunOptions; a shared session and rollout cache are SharedEvaluation. Config and value types (dataclasses)
    # are the objects the parameters went into, so their fields are not counted.
    too_many = {}
    for name in sorted(PUBLIC - MIRRORS_DSPY):
        value = getattr(rollouts_dspy, name)
        if not callable(value) or (inspect.isclass(value) and dataclasses.is_dataclass(value)):
            continue
        try:
            parameters = inspect.signature(value).parameters
        except (TypeError, ValueError):  # e.g. a Protocol or a type alias
            continue
        count = len([p for p in parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)])
        if count > 8:
            too_many[name] = count
    assert too_many == {}
