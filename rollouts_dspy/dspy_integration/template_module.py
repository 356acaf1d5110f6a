"""PromptTemplate <-> a single-predictor `dspy.Module` that sends exactly the messages `format_prompt` builds.

`template_to_module(template)` gives a `TemplateModule`: one `dspy.Predict` whose input fields are the
template's placeholders, whose instructions are the system prompt and whose demos are the few-shot examples.
Its forward runs under its own adapter (`TemplateAdapter`, scoped with `dspy.context(adapter=...)`, never the
global one), which formats the call with `format_prompt` itself, so the bytes on the wire are the rollouts
path's bytes, and returns the whole answer as the one output field. A score therefore means the same on both
paths. `module_to_template` goes back (instructions and demos), for a TemplateModule or any single-predictor
program.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import dspy

from ..errors import TemplateError
from ..prompt_optimization.formatting import format_prompt, placeholders
from ..prompt_optimization.types import FewShotExample, PromptTemplate

__all__ = [
    "DEFAULT_OUTPUT_FIELD",
    "TemplateAdapter",
    "TemplateModule",
    "demo_to_example",
    "example_to_demo",
    "module_to_template",
    "raw_instructions",
    "system_prompt",
    "template_to_module",
]

DEFAULT_OUTPUT_FIELD = "answer"

# Reserved demo keys for few-shot examples whose user message cannot be split back into placeholder values
# (hand-written inputs) and for agent demos' tool-call turns. Only TemplateAdapter reads them.
RAW_INPUT_KEY = "_input"
RAW_MESSAGES_KEY = "_messages"


def raw_instructions(signature: type[dspy.Signature]) -> str:
    """The instruction text exactly as set. `Signature.instructions` is whitespace-normalized (`cleandoc`);
    the class docstring keeps the bytes `with_instructions(text)` was given."""
    doc = signature.__doc__
    return doc if isinstance(doc, str) else signature.instructions


def _default_instructions(signature: type[dspy.Signature]) -> str:
    # What DSPy writes when a signature is given no (or empty) instructions.
    inputs = ", ".join(f"`{name}`" for name in signature.input_fields)
    outputs = ", ".join(f"`{name}`" for name in signature.output_fields)
    return f"Given the fields {inputs}, produce the fields {outputs}."


def system_prompt(signature: type[dspy.Signature]) -> str:
    """The template system prompt a signature stands for. DSPy cannot store empty instructions (it substitutes
    its default sentence), so that default sentence means "no system prompt"."""
    text = raw_instructions(signature)
    return "" if text.strip() == _default_instructions(signature) else text


def _field_pattern(user_template: str, fields: Sequence[str]) -> re.Pattern[str] | None:
    """A regex that splits a formatted user message back into placeholder values (None for repeated fields)."""
    import string

    parts: list[str] = []
    seen: set[str] = set()
    for literal, name, _spec, _conv in string.Formatter().parse(user_template):
        parts.append(re.escape(literal))
        if name is None:
            continue
        if name in seen:
            return None
        seen.add(name)
        parts.append(f"(?P<{name}>.*?)")
    if set(fields) != seen:
        return None
    return re.compile("".join(parts) + r"\Z", re.S)


def example_to_demo(example: FewShotExample, user_template: str, output_field: str) -> dict[str, Any]:
    """A FewShotExample as a predictor demo: placeholder values and the answer as the output field.

    The values are recovered from the formatted user message; when that is ambiguous (the re-rendered message
    would differ) the message is kept verbatim under a reserved key so the bytes still match."""
    fields = placeholders(user_template)
    demo: dict[str, Any] = {}
    pattern = _field_pattern(user_template, fields)
    match = pattern.match(example.input) if pattern else None
    if match is not None and user_template.format_map(match.groupdict()) == example.input:
        demo.update(match.groupdict())
    else:
        demo[RAW_INPUT_KEY] = example.input
    if example.messages:
        demo[RAW_MESSAGES_KEY] = [m.to_openai() for m in example.messages]
    demo[output_field] = example.output
    return demo


def demo_to_example(demo: Mapping[str, Any], user_template: str, output_field: str) -> FewShotExample | None:
    """A predictor demo (an Example or, after `load()`, a plain dict) as a FewShotExample; None when it lacks
    the answer or an input (DSPy drops such demos too)."""
    values = dict(demo.items()) if hasattr(demo, "items") else dict(demo)
    if values.get(output_field) is None:
        return None
    if RAW_INPUT_KEY in values:
        user = str(values[RAW_INPUT_KEY])
    else:
        fields = placeholders(user_template)
        if any(values.get(name) is None for name in fields):
            return None
        user = user_template.format_map({name: values[name] for name in fields})
    data: dict[str, Any] = {"input": user, "output": str(values[output_field])}
    if values.get(RAW_MESSAGES_KEY):
        data["messages"] = list(values[RAW_MESSAGES_KEY])
    return FewShotExample.from_dict(data)


class TemplateAdapter(dspy.Adapter):
    """Formats a call exactly as `format_prompt(template, inputs)` and parses the whole answer as one field.

    The system prompt is the signature's raw instruction text (empty: no system message); the demos become
    the template's few-shot examples."""

    def __init__(self, user_template: str, output_field: str = DEFAULT_OUTPUT_FIELD) -> None:
        super().__init__()
        self.user_template = user_template
        self.output_field = output_field

    def template(self, signature: type[dspy.Signature], demos: Sequence[Mapping[str, Any]]) -> PromptTemplate:
        examples = [demo_to_example(d, self.user_template, self.output_field) for d in demos]
        return PromptTemplate(
            system=system_prompt(signature),
            user_template=self.user_template,
            few_shot_examples=tuple(e for e in examples if e is not None),
        )

    def format(self, signature: type[dspy.Signature], demos: list[dict[str, Any]],
               inputs: dict[str, Any]) -> list[dict[str, Any]]:
        return [m.to_openai() for m in format_prompt(self.template(signature, demos), inputs)]

    def parse(self, signature: type[dspy.Signature], completion: str) -> dict[str, Any]:
        names = list(signature.output_fields)
        field = self.output_field if self.output_field in names else names[0]
        return {field: completion}


class TemplateModule(dspy.Module):
    """A PromptTemplate as a DSPy program with one predictor, `predict`. Calling it sends `format_prompt`'s
    messages for the given placeholder values and returns `dspy.Prediction(<output_field>=<answer>)`."""

    def __init__(self, user_template: str, system: str = "", output_field: str = DEFAULT_OUTPUT_FIELD,
                 demos: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__()
        fields = placeholders(user_template)
        if not fields:
            raise TemplateError(f"user_template has no {{placeholder}}, so the module would have no input field: "
                                f"{user_template!r}")
        if not output_field.isidentifier() or output_field in fields or output_field.startswith("_"):
            raise TemplateError(f"output_field must be an identifier that is not a placeholder of user_template "
                                f"{fields}, but got {output_field!r}")
        spec: dict[str, Any] = {name: (str, dspy.InputField()) for name in fields}
        spec[output_field] = (str, dspy.OutputField())
        self.user_template = user_template
        self.output_field = output_field
        self.predict = dspy.Predict(dspy.Signature(spec, system))
        self.predict.demos = [dspy.Example(**dict(d)) for d in demos]

    def forward(self, **inputs: Any) -> dspy.Prediction:
        with dspy.context(adapter=TemplateAdapter(self.user_template, self.output_field)):
            return self.predict(**inputs)

    async def aforward(self, **inputs: Any) -> dspy.Prediction:
        with dspy.context(adapter=TemplateAdapter(self.user_template, self.output_field)):
            return await self.predict.acall(**inputs)


def template_to_module(template: PromptTemplate, *, output_field: str = DEFAULT_OUTPUT_FIELD) -> TemplateModule:
    """The template as a TemplateModule. Name `output_field` after your rows' label (e.g. "intent") so that
    `rows_to_examples` labels and the default exact-match metric line up."""
    demos = [example_to_demo(ex, template.user_template, output_field) for ex in template.few_shot_examples]
    return TemplateModule(template.user_template, template.system, output_field, demos)


def _single_predictor(program: dspy.Module) -> tuple[str, dspy.Predict]:
    predictors = list(program.named_predictors())
    if len(predictors) != 1:
        names = [name for name, _ in predictors]
        raise TemplateError(f"only a single-predictor program converts to a PromptTemplate, but this one has "
                            f"{len(predictors)}: {names}")
    return predictors[0]


def module_to_template(program: dspy.Module, *, user_template: str | None = None,
                       output_field: str | None = None) -> PromptTemplate:
    """The program's one predictor as a PromptTemplate: its instructions as the system prompt, its demos as
    few-shot examples. A TemplateModule knows its user_template; for another program pass one, else each
    input field becomes a `name: {name}` line."""
    _, predictor = _single_predictor(program)
    signature = predictor.signature
    if user_template is None:
        user_template = getattr(program, "user_template", None)
    if user_template is None:
        user_template = "\n".join(f"{name}: {{{name}}}" for name in signature.input_fields)
    if output_field is None:
        output_field = getattr(program, "output_field", None) or list(signature.output_fields)[-1]
    examples = [demo_to_example(d, user_template, output_field) for d in predictor.demos]
    return PromptTemplate(
        system=system_prompt(signature),
        user_template=user_template,
        few_shot_examples=tuple(e for e in examples if e is not None),
    )
