"""Template + dataset row -> messages, and dataset rows -> Samples. Pure functions.

Placeholders use `str.format` syntax: `{query}` is a field of the row, `{{` and `}}` are literal braces.
The fields of a row that the user_template does not reference are its labels (its ground truth).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

from ..dtypes import Message, Sample
from ..errors import DatasetError, TemplateError
from .types import FewShotExample, PromptTemplate

__all__ = ["format_prompt", "ground_truth", "placeholders", "to_sample", "validate_dataset"]


def placeholders(user_template: str) -> tuple[str, ...]:
    """The field names a user_template references, in order of first use. Raises TemplateError on bad syntax."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(user_template))
    except ValueError as exc:
        raise TemplateError(
            f"user_template has unbalanced braces ({exc}); write literal braces as '{{{{' and '}}}}': "
            f"{user_template!r}"
        ) from None
    for _literal, name, _spec, _conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise TemplateError(
                f"user_template placeholder {{{name}}} is not a plain field name; use {{field}} with a name made "
                "of letters, digits and underscores (positional {} and attribute/index access are not supported)"
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def format_prompt(template: PromptTemplate, sample: Mapping[str, Any] | Sample) -> list[Message]:
    """System message, each few-shot example as a user/assistant pair (with its tool-call messages between),
    then the user message built from `user_template` and the sample's fields."""
    row = sample.input if isinstance(sample, Sample) else sample
    if not isinstance(row, Mapping):
        raise DatasetError(f"a sample must be a mapping of field names to values, but got {type(row).__name__}")
    fields = placeholders(template.user_template)
    missing = [name for name in fields if name not in row]
    if missing:
        sample_id = sample.id if isinstance(sample, Sample) else row.get("id", "<no id>")
        raise TemplateError(
            f"sample {sample_id!r} has no field {missing[0]!r} that user_template references "
            f"(its fields: {sorted(map(str, row))})"
        )
    messages = [Message("system", template.system)] if template.system else []
    for example in template.few_shot_examples:
        messages.extend(_demo_messages(example))
    try:
        user = template.user_template.format_map({name: row[name] for name in fields})
    except (ValueError, TypeError) as exc:
        raise TemplateError(f"cannot format user_template with sample fields: {exc}") from None
    messages.append(Message("user", user))
    return messages


def _demo_messages(example: FewShotExample) -> list[Message]:
    # An agent demo that ended with a tool call (e.g. complete_task) has no final text: no empty turn for it.
    final = [Message("assistant", example.output)] if example.output or not example.messages else []
    return [Message("user", example.input), *example.messages, *final]


def ground_truth(user_template: str, row: Mapping[str, Any]) -> Any:
    """The row's labels: the fields the template does not reference (one value, a dict of several, or None)."""
    used = set(placeholders(user_template))
    labels = {k: v for k, v in row.items() if k not in used and k != "id"}
    if not labels:
        return None
    if len(labels) == 1:
        return next(iter(labels.values()))
    return labels


def to_sample(template: PromptTemplate, dataset: Sequence[Mapping[str, Any]], index: int) -> Sample:
    row = dataset[index]
    used = placeholders(template.user_template)
    return Sample(
        id=str(row.get("id", index)),
        input={name: row[name] for name in used},
        ground_truth=ground_truth(template.user_template, row),
        metadata={"index": index, "row": dict(row)},
    )


def validate_dataset(
    template: PromptTemplate, dataset: Sequence[Mapping[str, Any]], seeds: Sequence[int], *, what: str = "seeds"
) -> None:
    """Raise DatasetError/TemplateError unless every seed names a row that has every placeholder."""
    if isinstance(dataset, (str, bytes)) or not isinstance(dataset, Sequence):
        raise DatasetError(f"dataset must be a sequence (list) of mappings, but got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise DatasetError("dataset is empty: give at least one row")
    fields = placeholders(template.user_template)
    seen: set[int] = set()
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise DatasetError(f"{what} must be integers (row indices), but got {seed!r}")
        if not 0 <= seed < len(dataset):
            raise DatasetError(f"{what} contains {seed}, outside the dataset (valid: 0..{len(dataset) - 1})")
        if seed in seen:
            raise DatasetError(f"{what} contains {seed} more than once")
        seen.add(seed)
        row = dataset[seed]
        if not isinstance(row, Mapping):
            raise DatasetError(f"dataset row {seed} must be a mapping of field names to values, "
                               f"but got {type(row).__name__}")
        missing = [name for name in fields if name not in row]
        if missing:
            raise TemplateError(
                f"dataset row {seed} (id {row.get('id', seed)!r}) has no field {missing[0]!r} that "
                f"user_template references (its fields: {sorted(map(str, row))})"
            )
