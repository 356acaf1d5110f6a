"""A DSPy program's prompts as the engines' Candidate, and back: instructions and demos per predictor.

Components are `named_predictors()` names. `Candidate.instructions[name]` is that predictor's instruction text
and `Candidate.demos[name]` its demos as JSON-safe field dicts (demos live in checkpoints).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dspy

from ..prompt_optimization.types import Candidate
from .template_module import raw_instructions

__all__ = ["apply_candidate", "candidate_of", "json_safe"]


def json_safe(value: Any) -> Any:
    """A field value as JSON data: primitives and lists/dicts of them, else text."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return json_safe(dump())
        except Exception:  # noqa: BLE001 - fall back to text
            pass
    return str(value)


def _demo_dict(demo: Any) -> dict[str, Any]:
    items = demo.items() if hasattr(demo, "items") else dict(demo).items()
    return {str(k): json_safe(v) for k, v in items if not str(k).startswith("dspy_")}


def candidate_of(program: dspy.Module) -> Candidate:
    """The program's current instructions and demos as a Candidate (the optimization's starting point)."""
    instructions: dict[str, str] = {}
    demos: dict[str, tuple[dict[str, Any], ...]] = {}
    for name, predictor in program.named_predictors():
        instructions[name] = raw_instructions(predictor.signature)
        if predictor.demos:
            demos[name] = tuple(_demo_dict(d) for d in predictor.demos)
    return Candidate(instructions, demos)


def apply_candidate(student: dspy.Module, candidate: Candidate) -> dspy.Module:
    """A deep copy of `student` with the candidate's instructions and demos; nothing else changes.

    Deep copies share Signature classes, so instructions are replaced with `with_instructions` (a new class),
    never by assigning to the shared one."""
    program = student.deepcopy()
    for name, predictor in program.named_predictors():
        text = candidate.instructions.get(name)
        if text is not None and text != raw_instructions(predictor.signature):
            predictor.signature = predictor.signature.with_instructions(text)
        predictor.demos = [dspy.Example(**dict(d)) for d in candidate.demos.get(name, ())]
    return program
