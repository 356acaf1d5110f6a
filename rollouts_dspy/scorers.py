"""Built-in score_fns for the common cases, and loading a custom one from `module:function`.

Each built-in compares the model's answer with the sample's ground truth and explains itself in `feedback`
("expected: request_refund, got: card_arrival"), which is what GEPA's reflection learns from.

The answer is the last assistant text; for agent rollouts that end with a tool call (the calculator's
`complete_task(final_result=...)`) it is that call's argument.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .dtypes import Metric, Sample, Score, ScoreFn, Trajectory
from .errors import ConfigError

__all__ = [
    "BUILTIN_SCORERS",
    "answer_text",
    "contains",
    "exact_match",
    "load_callable",
    "make_scorer",
    "numeric_tolerance",
    "regex_extract",
]

_NUMBER = re.compile(r"[-+]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def answer_text(trajectory: Trajectory) -> str:
    """The model's final answer: the last assistant text, or the argument of the final tool call that ended the
    rollout (e.g. `complete_task(final_result="42")`) when the last assistant turn was a tool call."""
    for m in reversed(trajectory.messages):
        if m.role != "assistant":
            continue
        if m.content.strip():
            return m.content
        for call in reversed(m.tool_calls):
            args = dict(call.args)
            for key in ("final_result", "answer", "result", "final_answer"):
                if key in args:
                    return str(args[key])
            if len(args) == 1:
                return str(next(iter(args.values())))
        return m.content
    return ""


def _expected(sample: Sample) -> str:
    truth = sample.ground_truth
    if isinstance(truth, Mapping) and len(truth) == 1:
        truth = next(iter(truth.values()))
    return "" if truth is None else str(truth)


def _normalize(text: str, case_sensitive: bool) -> str:
    text = " ".join(text.split())
    while text and (text[0] in "`'\"*" or text[-1] in "`'\"*."):
        text = text.strip("`'\"*").rstrip(".").strip()
    return text if case_sensitive else text.lower()


def _score(ok: bool, expected: str, got: str, name: str) -> Score:
    shown = got.strip().replace("\n", " ")
    if len(shown) > 200:
        shown = shown[:200] + "..."
    feedback = f"correct: {expected}" if ok else f"expected: {expected}, got: {shown or '(empty answer)'}"
    return Score(metrics=(Metric(name, 1.0 if ok else 0.0),), feedback=feedback)


def exact_match(*, case_sensitive: bool = False) -> ScoreFn:
    """1.0 when the answer equals the label, ignoring surrounding whitespace, quotes and a final period (and case
    unless `case_sensitive`)."""

    def score_fn(trajectory: Trajectory, sample: Sample) -> Score:
        expected, got = _expected(sample), answer_text(trajectory)
        ok = _normalize(got, case_sensitive) == _normalize(expected, case_sensitive)
        return _score(ok, expected, got, "exact_match")

    return score_fn


def contains(*, case_sensitive: bool = False) -> ScoreFn:
    """1.0 when the label appears anywhere in the answer."""

    def score_fn(trajectory: Trajectory, sample: Sample) -> Score:
        expected, got = _expected(sample), answer_text(trajectory)
        ok = bool(expected) and _normalize(expected, case_sensitive) in (got if case_sensitive else got.lower())
        return _score(ok, expected, got, "contains")

    return score_fn


def _to_float(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def numeric_tolerance(*, tolerance: float = 1e-6, relative: bool = False) -> ScoreFn:
    """1.0 when the last number in the answer is within `tolerance` of the label (absolute, or relative to the
    label when `relative`). A non-numeric label (e.g. "error") is compared as text."""
    if not tolerance >= 0:
        raise ConfigError(f"numeric tolerance must be >= 0, but got {tolerance!r}")

    def score_fn(trajectory: Trajectory, sample: Sample) -> Score:
        expected, got = _expected(sample), answer_text(trajectory)
        target = _to_float(expected)
        if target is None:
            return _score(_normalize(got, False) == _normalize(expected, False), expected, got, "numeric")
        numbers = _NUMBER.findall(got)
        value = _to_float(numbers[-1]) if numbers else None
        allowed = tolerance * abs(target) if relative else tolerance
        ok = value is not None and abs(value - target) <= allowed
        return _score(ok, expected, got, "numeric")

    return score_fn


def regex_extract(*, pattern: str, group: int | str = 1, case_sensitive: bool = False) -> ScoreFn:
    """Extract the answer with `pattern` (its `group`; the last match wins), then compare it with the label like
    `exact_match`. No match scores 0 with feedback saying so."""
    try:
        compiled = re.compile(pattern, re.S | (0 if case_sensitive else re.I))
    except re.error as exc:
        raise ConfigError(f"regex pattern {pattern!r} does not compile: {exc}") from None
    if isinstance(group, int) and group > compiled.groups:
        raise ConfigError(f"regex pattern {pattern!r} has {compiled.groups} group(s), but group={group}")

    def score_fn(trajectory: Trajectory, sample: Sample) -> Score:
        expected, text = _expected(sample), answer_text(trajectory)
        matches = list(compiled.finditer(text))
        if not matches:
            shown = text.strip().replace("\n", " ")[:200]
            return Score(metrics=(Metric("regex", 0.0),),
                         feedback=f"expected: {expected}, but the answer has no match for /{pattern}/: {shown}")
        got = matches[-1].group(group) or ""
        ok = _normalize(got, case_sensitive) == _normalize(expected, case_sensitive)
        return _score(ok, expected, got, "regex")

    return score_fn


BUILTIN_SCORERS: dict[str, Callable[..., ScoreFn]] = {
    "exact_match": exact_match,
    "contains": contains,
    "numeric": numeric_tolerance,
    "regex": regex_extract,
}
"""Name in a config's `[scorer] type = ...` -> factory taking that table's other keys."""


def make_scorer(name: str, **options: Any) -> ScoreFn:
    """A built-in score_fn by name, with its options; ConfigError for an unknown name or option."""
    factory = BUILTIN_SCORERS.get(name)
    if factory is None:
        raise ConfigError(f"unknown scorer {name!r}; built-ins: {', '.join(BUILTIN_SCORERS)} "
                          "(or a custom one as 'module:function')")
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"scorer {name!r}: {exc}") from None


def load_callable(spec: str, *, search_dir: str | Path | None = None) -> Any:
    """Import `module:attribute` (attribute may be dotted). `search_dir` (e.g. the config file's folder) is tried
    first, so a `my_scoring.py` next to a config can be named as `my_scoring:score`."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"expected 'module:function' (e.g. 'my_scoring:score'), but got {spec!r}")
    added = False
    if search_dir is not None and str(search_dir) not in sys.path:
        sys.path.insert(0, str(search_dir))
        added = True
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r} for {spec!r}: {exc}") from None
    finally:
        if added:
            sys.path.remove(str(search_dir))
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise ConfigError(f"module {module_name!r} has no attribute {attribute!r} (from {spec!r})")
        value = getattr(value, part)
    return value
