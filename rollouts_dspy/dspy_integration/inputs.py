"""What both teleprompters check and derive from `compile`'s inputs, before any LM call: the student (and
teacher), the datasets, the LM in effect, the default metric, the train/validation split as indices, budgets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dspy

from ..errors import ConfigError, DatasetError
from .data import example_inputs
from .metrics import ExactMatch

__all__ = ["Split", "check_student", "default_metric", "flex_paths", "resolve_budget", "split_indices", "task_lm"]


def flex_paths(program: dspy.Module) -> list[str]:
    """Where the program has `dspy.Flex` submodules (code components, which only dspy.GEPA evolves)."""
    flex = getattr(dspy, "Flex", None)
    return [] if flex is None else [name for name, sub in program.named_parameters() if isinstance(sub, flex)]


def task_lm(student: dspy.Module) -> Any:
    """The LM in effect now (`dspy.configure` or `dspy.context`), checked against predictors without an LM."""
    lm = dspy.settings.lm
    if lm is None:
        bare = [name for name, p in student.named_predictors() if getattr(p, "lm", None) is None]
        if bare:
            raise ConfigError(
                f"no LM is in effect for predictors {bare}: call compile inside `with dspy.context(lm=...)`, "
                "after `dspy.configure(lm=...)`, or give every predictor its own LM (`program.set_lm(lm)`)"
            )
    return lm


def _check_program(program: Any, role: str) -> None:
    if not isinstance(program, dspy.Module):
        raise ConfigError(f"{role} must be a dspy.Module, but got {type(program).__name__}")
    if not list(program.named_predictors()):
        flex = flex_paths(program)
        found = (f"; it has dspy.Flex submodules {flex}, whose code rollouts-dspy does not evolve (dspy.GEPA does)"
                 if flex else "")
        raise ConfigError(f"{role} {type(program).__name__} has no predictors to optimize: rollouts-dspy "
                          f"optimizes the instructions (and demos) of dspy.Predict-based modules (Predict, "
                          f"ChainOfThought, ReAct, ...) reachable as attributes of the program{found}")


def check_student(student: Any, trainset: Any, valset: Any, teacher: Any = None) -> None:
    _check_program(student, "student")
    if teacher is not None:
        _check_program(teacher, "teacher")
    for name, data in (("trainset", trainset), ("valset", valset)):
        if data is None and name == "valset":
            continue
        if isinstance(data, (str, bytes, Mapping)) or not isinstance(data, Sequence) or not data:
            raise DatasetError(f"{name} must be a non-empty list of dspy.Example, but got {data!r:.100}")
        bad = next((i for i, ex in enumerate(data) if not isinstance(ex, dspy.Example)), None)
        if bad is not None:
            raise DatasetError(f"{name}[{bad}] must be a dspy.Example, but got {type(data[bad]).__name__}")


def default_metric(student: dspy.Module, trainset: Sequence[dspy.Example]) -> ExactMatch:
    """Exact match of the program's output fields against the example's labels; refuses a program whose
    outputs share no name with the labels (the metric could only ever say 0)."""
    outputs = {name for _, p in student.named_predictors() for name in p.signature.output_fields}
    first = trainset[0]
    labels = [k for k in first.keys() if k not in example_inputs(first)]
    if not set(labels) & outputs:
        raise ConfigError(
            f"no metric given and the examples' labels {labels} match none of the program's output fields "
            f"{sorted(outputs)}: pass metric=..., or name an output field after the label"
        )
    return ExactMatch()


@dataclass(frozen=True)
class Split:
    """trainset followed by valset as one dataset, and the indices of each part."""

    examples: list[dspy.Example]
    train_seeds: tuple[int, ...]
    val_seeds: tuple[int, ...]

    def instance_id(self, index: int) -> int:
        """The id dspy.GEPA gives sample `index`: its position in the valset, or in the trainset for a training
        sample (the trainset comes first in `examples`)."""
        return index - len(self.train_seeds) if index >= len(self.train_seeds) else index


def split_indices(trainset: Sequence[dspy.Example], valset: Sequence[dspy.Example] | None) -> Split:
    examples = list(trainset) + list(valset or ())
    n = len(trainset)
    return Split(examples, tuple(range(n)), tuple(range(n, len(examples))))


def resolve_budget(**limits: int | None) -> tuple[str, int] | None:
    """The one budget limit that is set among the given ones (None when none is); two set is an error."""
    given = {k: v for k, v in limits.items() if v is not None}
    if len(given) > 1:
        raise ConfigError(f"set at most one of {sorted(limits)}, but got {given}")
    for name, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, but got {value!r}")
        return name, value
    return None
