"""Recipes: how to rebuild a Task in another process.

A Task holds per-process things (an LLMSession with its asyncio limit, a thread pool, DSPy program caches) that
cannot travel. A recipe is the picklable rest -- template, dataset, endpoint, score_fn, environment factory; or
program, examples, metric, LM -- and `build()` makes an equivalent Task wherever it is unpickled. The front doors'
two Tasks have recipes here; any other Task can travel by having a `recipe()` method that returns one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ..dtypes import Endpoint, ScoreFn
from ..errors import ConfigError
from ..prompt_optimization.protocols import Task
from ..prompt_optimization.types import PromptTemplate

__all__ = ["ProgramTaskRecipe", "TaskRecipe", "TemplateTaskRecipe", "recipe_of"]


class TaskRecipe(Protocol):
    """Picklable (with cloudpickle, as Ray pickles) and rebuilds an equivalent Task in any process."""

    def build(self) -> Task: ...


@dataclass(frozen=True)
class TemplateTaskRecipe:
    """A TemplateTask (the rollouts front door's Task) with a fresh LLMSession of the same settings.

    The endpoint travels with its api_key when one was given in code; with none, the worker's provider key
    comes from the worker's own environment (e.g. OPENAI_API_KEY set on every node)."""

    base: PromptTemplate
    dataset: Sequence[Mapping[str, Any]]
    endpoint: Endpoint
    score_fn: ScoreFn
    environment_factory: Callable[[dict], Any] | None
    max_turns: int
    seed: int
    max_concurrent: int

    def build(self) -> Task:
        from ..llm import LLMSession
        from ..prompt_optimization.template_task import TemplateTask

        session = LLMSession(max_concurrent=self.max_concurrent, seed=self.seed)
        return TemplateTask(self.base, self.dataset, self.endpoint, self.score_fn, session,
                            environment_factory=self.environment_factory, max_turns=self.max_turns)


@dataclass(frozen=True)
class ProgramTaskRecipe:
    """A ProgramTask (the DSPy front door's Task). `options` are the task's, minus what belongs to the calling
    process (its progress callback, the error count that stops the run, its memory of runs and predictions: the
    driver's ProgramTask does that from what comes back, see KeepsRuns), with the DSPy adapter in effect when
    the run started among its `settings`, so the worker formats prompts as the calling process would."""

    student: Any
    examples: Sequence[Any]
    metric: Callable[..., Any]
    lm: Any
    options: Any

    def build(self) -> Task:
        from ..dspy_integration.program_task import ProgramTask

        return ProgramTask(self.student, self.examples, self.metric, self.lm, self.options)


def recipe_of(task: Task) -> TaskRecipe:
    """The recipe of `task`: its own `recipe()` when it has one, else the front doors' Tasks' recipes. A Task
    with none cannot run in another process: ConfigError (raised before any LLM call)."""
    own = getattr(task, "recipe", None)
    if callable(own):
        return own()
    from ..prompt_optimization.template_task import TemplateTask

    if isinstance(task, TemplateTask):
        return TemplateTaskRecipe(task.base, task.dataset, task.endpoint, task.score_fn, task.environment_factory,
                                  task.max_turns, task.session.seed, task.session.max_concurrent)
    if "dspy" in sys.modules:  # a ProgramTask exists only once DSPy is loaded; never load it here
        from ..dspy_integration.program_task import ProgramTask

        if isinstance(task, ProgramTask):
            return _program_recipe(task)
    raise ConfigError(f"a {type(task).__name__} cannot run its rollouts in other processes: give it a recipe() "
                      "method returning a picklable object whose build() makes an equivalent Task")


def _program_recipe(task: Any) -> ProgramTaskRecipe:
    import dspy

    settings = dict(task.options.settings)
    if dspy.settings.adapter is not None:
        settings = {"adapter": dspy.settings.adapter, **settings}
    # One rollout at a time runs in a worker process: one thread is all its pool needs. What the driver keeps
    # (its RunMemory and its checkpoint file, the runs kept for the whole run) stays with the driver's task.
    options = replace(task.options, max_concurrent=1, on_rollout=None, max_errors=None, memory=None,
                      keep_runs_for=frozenset(), settings=settings)
    return ProgramTaskRecipe(task.student, task.examples, task.caller.metric, task.lm, options)
