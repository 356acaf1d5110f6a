"""Rollouts dataset rows <-> `dspy.Example`s.

A row's fields that the template's user_template references are its inputs; the rest are its labels (the same
split `formatting.ground_truth` makes). An Example carries that split as `.with_inputs(...)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dspy

from ..errors import DatasetError
from ..prompt_optimization.formatting import placeholders
from ..prompt_optimization.types import PromptTemplate

__all__ = ["example_inputs", "example_labels", "examples_to_rows", "input_names", "rows_to_examples"]


def input_names(inputs: PromptTemplate | str | Sequence[str]) -> tuple[str, ...]:
    """Input field names from a template, a user_template string, or an explicit list of names."""
    if isinstance(inputs, PromptTemplate):
        return placeholders(inputs.user_template)
    if isinstance(inputs, str):
        return placeholders(inputs)
    names = tuple(inputs)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise DatasetError(f"input names must be a non-empty list of field names, but got {inputs!r}")
    return names


def rows_to_examples(rows: Iterable[Mapping[str, Any]], inputs: PromptTemplate | str | Sequence[str]
                     ) -> list[dspy.Example]:
    """Each row as a `dspy.Example` whose inputs are the template's placeholders (or the given names)."""
    names = input_names(inputs)
    examples = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise DatasetError(f"row {i} must be a mapping of field names to values, but got {type(row).__name__}")
        missing = [n for n in names if n not in row]
        if missing:
            raise DatasetError(f"row {i} has no input field {missing[0]!r} (its fields: {sorted(map(str, row))})")
        examples.append(dspy.Example(**dict(row)).with_inputs(*names))
    return examples


def examples_to_rows(examples: Iterable[dspy.Example]) -> list[dict[str, Any]]:
    """Each Example's fields as a plain dict row (DSPy's internal `dspy_*` keys left out)."""
    return [dict(ex.items()) if hasattr(ex, "items") else dict(ex) for ex in examples]


def example_inputs(example: dspy.Example, order: Sequence[str] = ()) -> dict[str, Any]:
    """The Example's input values, in a fixed order: the names in `order` first (pass the program's input
    fields, in signature order), then the Example's other inputs in its own field order. DSPy keeps the input
    names in a set (`Example._input_keys`), whose order changes with PYTHONHASHSEED; reading it in that order
    would make prompts, calls and results depend on the process.

    Examples without `.with_inputs(...)` (e.g. bootstrapped ones, whose `.inputs()` raises) use `order` as
    their input names."""
    keys = getattr(example, "_input_keys", None)
    if not keys:
        return {k: example[k] for k in order if k in example}
    ranked = [k for k in order if k in keys] + [k for k in example.keys() if k in keys and k not in order]
    return {k: example[k] for k in ranked if k in example}


def example_labels(example: dspy.Example, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The Example's non-input fields."""
    return {k: v for k, v in example.items() if k not in inputs}
