"""Saving and loading templates and results as JSON files with a schema name and version.

    save_template(result.best_template, "best.json")
    template = load_template("best.json")        # also accepts a result file: its best template
    save_result(result, "result.json")
    result = load_result("result.json")

Every file carries `"schema": "rollouts-dspy/template"` or `"rollouts-dspy/result"` and `"schema_version"`. A
file from a newer schema, another kind of file or a corrupted one is a `ResultFileError` naming the file and the
problem. Files are written atomically (a crash mid-write leaves the previous file) and never hold an API key.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any

from .errors import ResultFileError
from .prompt_optimization.checkpoint import write_json_atomic
from .prompt_optimization.objectives import ObjectiveFront
from .prompt_optimization.types import (
    Candidate,
    CandidateRecord,
    FewShotExample,
    GenerationStats,
    OptimizationResult,
    PromptTemplate,
)

__all__ = [
    "RESULT_SCHEMA",
    "SCHEMA_VERSION",
    "TEMPLATE_SCHEMA",
    "load_result",
    "load_template",
    "result_from_dict",
    "result_to_dict",
    "save_result",
    "save_template",
    "template_from_dict",
    "template_to_dict",
]

TEMPLATE_SCHEMA = "rollouts-dspy/template"
RESULT_SCHEMA = "rollouts-dspy/result"
SCHEMA_VERSION = 1
"""The newest schema version this package writes and reads. Older versions stay readable when it grows."""

# Keys whose values are secrets wherever they appear in a config: dropped before anything is written.
_SECRET_KEYS = frozenset({"api_key", "apikey", "api_token", "token", "secret", "password", "authorization"})


class _Bad(Exception):
    """A field that does not parse; turned into a ResultFileError that names the file."""


# ---------------------------------------------------------------------------------------------------------------
# Templates


def template_to_dict(template: PromptTemplate) -> dict[str, Any]:
    """A JSON-safe dict of a template (without the schema header)."""
    return {
        "system": template.system,
        "user_template": template.user_template,
        "few_shot_examples": [ex.to_dict() for ex in template.few_shot_examples],
        "score": template.score,
        "generation": template.generation,
        "id": template.id,
    }


def template_from_dict(data: Mapping[str, Any]) -> PromptTemplate:
    """The inverse of `template_to_dict`. Raises ValueError naming the field that is missing or malformed."""
    try:
        return _template(data, "template")
    except _Bad as exc:
        raise ValueError(str(exc)) from None


def _template(data: Any, where: str) -> PromptTemplate:
    if not isinstance(data, Mapping):
        raise _Bad(f"{where} must be a JSON object, but is {type(data).__name__}")
    system = _field(data, "system", str, where)
    user_template = _field(data, "user_template", str, where)
    examples_raw = data.get("few_shot_examples", [])
    if not isinstance(examples_raw, list):
        raise _Bad(f"{where}.few_shot_examples must be a list, but is {type(examples_raw).__name__}")
    examples = []
    for i, ex in enumerate(examples_raw):
        try:
            examples.append(FewShotExample.from_dict(ex))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _Bad(f"{where}.few_shot_examples[{i}] is malformed ({type(exc).__name__}: {exc}); "
                       "expected {\"input\": str, \"output\": str, \"messages\": [...]}") from None
    score = data.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise _Bad(f"{where}.score must be a number or null, but is {score!r}")
    generation = data.get("generation", 0)
    if isinstance(generation, bool) or not isinstance(generation, int):
        raise _Bad(f"{where}.generation must be an integer, but is {generation!r}")
    kwargs: dict[str, Any] = {}
    if data.get("id") is not None:
        kwargs["id"] = str(data["id"])
    return PromptTemplate(system=system, user_template=user_template, few_shot_examples=tuple(examples),
                          score=None if score is None else float(score), generation=generation, **kwargs)


def save_template(template: PromptTemplate, path: str | os.PathLike[str]) -> Path:
    """Write `template` to `path` as JSON; returns the path."""
    if not isinstance(template, PromptTemplate):
        raise TypeError(f"save_template expects a PromptTemplate, but got {type(template).__name__}")
    data = {"schema": TEMPLATE_SCHEMA, "schema_version": SCHEMA_VERSION, **template_to_dict(template)}
    return _write(path, data)


def load_template(path: str | os.PathLike[str]) -> PromptTemplate:
    """Read a template file, or a result file's best template. ResultFileError when unreadable or newer."""
    data = _read(path, (TEMPLATE_SCHEMA, RESULT_SCHEMA))
    try:
        if data["schema"] == RESULT_SCHEMA:
            return _template(data.get("best_template"), "best_template")
        return _template(data, "template")
    except _Bad as exc:
        raise ResultFileError(f"{path}: {exc}") from None


# ---------------------------------------------------------------------------------------------------------------
# Results


def result_to_dict(result: OptimizationResult) -> dict[str, Any]:
    """A JSON-safe dict of everything in a result (without the schema header). Secrets in `config` are dropped;
    per-sample score keys (row indices) become strings, as JSON requires."""
    return {
        "method": result.method,
        "seed": result.seed,
        "best_candidate_id": result.best_candidate_id,
        "stop_reason": result.stop_reason,
        "rollouts_used": result.rollouts_used,
        "best_template": template_to_dict(result.best_template),
        "initial_template": None if result.initial_template is None else template_to_dict(result.initial_template),
        "final_population": [template_to_dict(t) for t in result.final_population],
        "history": [asdict(s) for s in result.history],
        "candidates": [_record_to_dict(r) for r in result.candidates],
        "usage": _json_safe(result.usage),
        "config": _json_safe(result.config),
        **({"front": result.front.to_dict()} if result.front is not None else {}),
        "compared_on": list(result.compared_on),
        "compared_split": result.compared_split,
    }


def _record_to_dict(record: CandidateRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "candidate": record.candidate.to_dict(),
        "generation": record.generation,
        "origin": record.origin,
        "parents": list(record.parents),
        "train_scores": {str(k): v for k, v in sorted(record.train_scores.items())},
        "val_scores": {str(k): v for k, v in sorted(record.val_scores.items())},
        "failures": record.failures,
    }


def result_from_dict(data: Mapping[str, Any]) -> OptimizationResult:
    """The inverse of `result_to_dict`. Raises ValueError naming the field that is missing or malformed."""
    try:
        return _result(data)
    except _Bad as exc:
        raise ValueError(str(exc)) from None


def _result(data: Mapping[str, Any]) -> OptimizationResult:
    initial = data.get("initial_template")
    population = data.get("final_population", [])
    if not isinstance(population, list):
        raise _Bad("final_population must be a list")
    return OptimizationResult(
        best_template=_template(data.get("best_template"), "best_template"),
        final_population=tuple(_template(t, f"final_population[{i}]") for i, t in enumerate(population)),
        history=tuple(_stats(s, i) for i, s in enumerate(_list(data, "history"))),
        method=str(data.get("method", "")),
        seed=_int(data.get("seed", 0), "seed"),
        best_candidate_id=str(data.get("best_candidate_id", "")),
        initial_template=None if initial is None else _template(initial, "initial_template"),
        candidates=tuple(_record(r, i) for i, r in enumerate(_list(data, "candidates"))),
        usage=_mapping(data.get("usage", {}), "usage"),
        rollouts_used=_int(data.get("rollouts_used", 0), "rollouts_used"),
        stop_reason=str(data.get("stop_reason", "")),
        config=_mapping(data.get("config", {}), "config"),
        front=_front(data.get("front")),
        compared_on=tuple(_int(i, "compared_on") for i in _list(data, "compared_on")),
        compared_split=str(data.get("compared_split", "train")),
    )


def _front(data: Any) -> ObjectiveFront | None:
    if data is None:
        return None
    try:
        return ObjectiveFront.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _Bad(f"front is malformed ({type(exc).__name__}: {exc})") from None


def _stats(data: Any, i: int) -> GenerationStats:
    if not isinstance(data, Mapping):
        raise _Bad(f"history[{i}] must be an object")
    known = {f.name for f in fields(GenerationStats)}
    try:
        return GenerationStats(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise _Bad(f"history[{i}] is malformed: {exc}") from None


def _record(data: Any, i: int) -> CandidateRecord:
    where = f"candidates[{i}]"
    if not isinstance(data, Mapping):
        raise _Bad(f"{where} must be an object")
    try:
        candidate = Candidate.from_dict(data["candidate"])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise _Bad(f"{where}.candidate is malformed ({type(exc).__name__}: {exc})") from None
    return CandidateRecord(
        id=_field(data, "id", str, where),
        candidate=candidate,
        generation=_int(data.get("generation", 0), f"{where}.generation"),
        origin=str(data.get("origin", "")),
        parents=tuple(str(p) for p in data.get("parents", ())),
        train_scores=_scores(data.get("train_scores", {}), f"{where}.train_scores"),
        val_scores=_scores(data.get("val_scores", {}), f"{where}.val_scores"),
        failures=_int(data.get("failures", 0), f"{where}.failures"),
    )


def _scores(data: Any, where: str) -> dict[int, float]:
    if not isinstance(data, Mapping):
        raise _Bad(f"{where} must be an object mapping row index to score")
    try:
        return {int(k): float(v) for k, v in data.items()}
    except (TypeError, ValueError):
        raise _Bad(f"{where} must map row indices (\"12\") to numbers") from None


def save_result(result: OptimizationResult, path: str | os.PathLike[str]) -> Path:
    """Write everything in `result` to `path` as JSON; returns the path."""
    if not isinstance(result, OptimizationResult):
        raise TypeError(f"save_result expects an OptimizationResult, but got {type(result).__name__}")
    data = {"schema": RESULT_SCHEMA, "schema_version": SCHEMA_VERSION, **result_to_dict(result)}
    return _write(path, data)


def load_result(path: str | os.PathLike[str]) -> OptimizationResult:
    """Read a result file. ResultFileError when it is missing, corrupted, not a result or from a newer schema."""
    data = _read(path, (RESULT_SCHEMA,))
    try:
        return _result(data)
    except _Bad as exc:
        raise ResultFileError(f"{path}: {exc}") from None


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers


def _field(data: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in data:
        raise _Bad(f"{where} has no {name!r} field")
    value = data[name]
    if not isinstance(value, kind):
        raise _Bad(f"{where}.{name} must be a {kind.__name__}, but is {type(value).__name__}")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{where} must be an integer, but is {value!r}")
    return value


def _list(data: Mapping[str, Any], name: str) -> list[Any]:
    value = data.get(name, [])
    if not isinstance(value, list):
        raise _Bad(f"{name} must be a list, but is {type(value).__name__}")
    return value


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _Bad(f"{where} must be an object, but is {type(value).__name__}")
    return dict(value)


def _json_safe(value: Any) -> Any:
    """Plain JSON values: dataclasses and objects with `to_dict` become dicts, tuples lists, paths strings,
    non-finite floats strings; secret-named keys are dropped at any depth."""
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return _json_safe(value.to_dict())
    if is_dataclass(value) and not isinstance(value, type):
        return _json_safe({f.name: getattr(value, f.name) for f in fields(value)})
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items() if str(k).lower() not in _SECRET_KEYS}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_json_safe(v) for v in items]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


def _write(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    write_json_atomic(path, data, indent=2)
    return Path(path)


def _read(path: str | os.PathLike[str], schemas: tuple[str, ...]) -> dict[str, Any]:
    target = Path(path)
    wanted = " or ".join(repr(s) for s in schemas)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultFileError(f"{target}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultFileError(f"{target}: cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultFileError(f"{target}: corrupted, not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ResultFileError(f"{target}: expected a JSON object with \"schema\": {wanted}, "
                              f"but found a JSON {type(data).__name__}")
    schema = data.get("schema")
    if schema not in schemas:
        raise ResultFileError(f"{target}: expected \"schema\": {wanted}, but found {schema!r}")
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ResultFileError(f"{target}: \"schema_version\" must be a positive integer, but is {version!r}")
    if version > SCHEMA_VERSION:
        raise ResultFileError(f"{target}: written with schema_version {version} by a newer rollouts-dspy; this "
                              f"version reads up to schema_version {SCHEMA_VERSION}: upgrade rollouts-dspy")
    return data
