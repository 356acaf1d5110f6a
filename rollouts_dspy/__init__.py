"""rollouts-dspy: GEPA and MIPRO prompt optimization, natively, for rollouts templates and DSPy programs.

This module is the one list of what is public. Names load lazily so `import rollouts_dspy` stays fast and the
DSPy bridge, Optuna and litellm are imported only when used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # rollouts-style types
    "Endpoint": "rollouts_dspy.dtypes",
    "Environment": "rollouts_dspy.dtypes",
    "Message": "rollouts_dspy.dtypes",
    "Metric": "rollouts_dspy.dtypes",
    "Sample": "rollouts_dspy.dtypes",
    "Score": "rollouts_dspy.dtypes",
    "ScoreFn": "rollouts_dspy.dtypes",
    "Tool": "rollouts_dspy.dtypes",
    "ToolCall": "rollouts_dspy.dtypes",
    "ToolResult": "rollouts_dspy.dtypes",
    "Trajectory": "rollouts_dspy.dtypes",
    "Usage": "rollouts_dspy.dtypes",
    # errors
    "CheckpointError": "rollouts_dspy.errors",
    "ConfigError": "rollouts_dspy.errors",
    "DatasetError": "rollouts_dspy.errors",
    "ResultFileError": "rollouts_dspy.errors",
    "ScoreFnError": "rollouts_dspy.errors",
    "TemplateError": "rollouts_dspy.errors",
    # LLM layer and agents
    "LLMCallError": "rollouts_dspy.llm",
    "LLMSession": "rollouts_dspy.llm",
    "run_agent": "rollouts_dspy.agents",
    "run_completion": "rollouts_dspy.agents",
    "CalculatorEnvironment": "rollouts_dspy.environments.calculator",
    # templates, formatting, evaluation
    "FewShotExample": "rollouts_dspy.prompt_optimization.types",
    "GenerationStats": "rollouts_dspy.prompt_optimization.types",
    "OptimizationResult": "rollouts_dspy.prompt_optimization.types",
    "PromptTemplate": "rollouts_dspy.prompt_optimization.types",
    "format_prompt": "rollouts_dspy.prompt_optimization.formatting",
    "Budget": "rollouts_dspy.runtime",
    "EvaluationReport": "rollouts_dspy.prompt_optimization.evaluation",
    "evaluate_detailed": "rollouts_dspy.prompt_optimization.evaluation",
    "evaluate_template": "rollouts_dspy.prompt_optimization.evaluation",
    "SharedEvaluation": "rollouts_dspy.prompt_optimization.evaluation",
    "RunOptions": "rollouts_dspy.prompt_optimization.options",
    "ProviderUnavailableError": "rollouts_dspy.runtime",
    "Rollout": "rollouts_dspy.prompt_optimization.protocols",
    "LinePrinter": "rollouts_dspy.prompt_optimization.events",
    # GEPA
    "GEPAConfig": "rollouts_dspy.prompt_optimization.gepa",
    "MutationError": "rollouts_dspy.prompt_optimization.gepa",
    "crossover_templates": "rollouts_dspy.prompt_optimization.gepa",
    "mutate_template": "rollouts_dspy.prompt_optimization.gepa",
    "run_gepa": "rollouts_dspy.prompt_optimization.gepa",
    "select_elites": "rollouts_dspy.prompt_optimization.gepa",
    # MIPRO
    "MIPROConfig": "rollouts_dspy.prompt_optimization.mipro",
    "bootstrap_demos": "rollouts_dspy.prompt_optimization.mipro",
    "estimate_calls": "rollouts_dspy.prompt_optimization.mipro",
    "propose_instructions": "rollouts_dspy.prompt_optimization.mipro",
    "run_mipro": "rollouts_dspy.prompt_optimization.mipro",
    # shared studies: one search run by many worker processes through PostgreSQL
    "SharedStudy": "rollouts_dspy.studies",
    "load_study_result": "rollouts_dspy.studies.reading",
    # DSPy drop-in
    "RolloutsGEPA": "rollouts_dspy.dspy_integration",
    "RolloutsMIPRO": "rollouts_dspy.dspy_integration",
    "metric_to_score_fn": "rollouts_dspy.dspy_integration",
    "module_to_template": "rollouts_dspy.dspy_integration",
    "rows_to_examples": "rollouts_dspy.dspy_integration",
    "examples_to_rows": "rollouts_dspy.dspy_integration",
    "score_fn_to_metric": "rollouts_dspy.dspy_integration",
    "template_to_module": "rollouts_dspy.dspy_integration",
    # where rollouts run
    "RayExecutor": "rollouts_dspy.executors",
    # saving and loading
    "load_result": "rollouts_dspy.io",
    "load_template": "rollouts_dspy.io",
    "save_result": "rollouts_dspy.io",
    "save_template": "rollouts_dspy.io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rollouts_dspy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

