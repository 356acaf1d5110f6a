"""Where rollouts run: in the calling process (`"local"`, the default) or as Ray tasks on a cluster (`"ray"`,
`RayExecutor(address=...)`). See docs/cluster.md.

Importing this package loads neither Ray nor DSPy: Ray is imported when a Ray executor is first used.
"""

from .base import EXECUTOR_NAMES, CountsRetries, Executor, KeepsRuns, LocalExecutor, resolve_executor
from .ray_executor import RayExecutor, RayTask
from .recipes import ProgramTaskRecipe, TaskRecipe, TemplateTaskRecipe, recipe_of

__all__ = [
    "EXECUTOR_NAMES",
    "CountsRetries",
    "Executor",
    "KeepsRuns",
    "LocalExecutor",
    "ProgramTaskRecipe",
    "RayExecutor",
    "RayTask",
    "TaskRecipe",
    "TemplateTaskRecipe",
    "recipe_of",
    "resolve_executor",
]
