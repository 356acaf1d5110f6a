"""The package's own exceptions. Each names what was wrong and what was expected; all are ValueErrors or
RuntimeErrors so callers that do not know them still catch them sensibly."""

from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "DatasetError", "ResultFileError", "ScoreFnError", "TemplateError"]


class ConfigError(ValueError):
    """A config value out of range or of the wrong type (raised at construction, before any LLM call)."""


class TemplateError(ValueError):
    """A PromptTemplate that cannot be formatted: unknown placeholder, unbalanced braces, bad field."""


class DatasetError(ValueError):
    """A dataset or seed list that cannot be used: empty, not mappings, missing fields, seeds out of range."""


class ScoreFnError(TypeError):
    """A score_fn that is not callable or does not return a Score."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not belong to this run."""


class ResultFileError(ValueError):
    """A saved template or result file that is corrupted or from a newer schema."""
