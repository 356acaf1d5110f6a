"""Checking DSPy-named constructor arguments at the public boundary: values of the right type and range
(ConfigError naming the argument and the value), and a warning, once, for the arguments that mean nothing
here, so nothing is accepted and silently ignored."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError
from ..prompt_optimization.events import Reporter

__all__ = ["check_bool", "check_callable", "check_choice", "check_int", "check_number", "check_reporter",
           "not_used"]


def check_bool(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}: {name} must be True or False, but got {value!r}")
    return value


def check_int(owner: str, name: str, value: Any, low: int, *, optional: bool = True) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{owner}: {name} must be an integer >= {low}{' or None' if optional else ''}, "
                          f"but got {value!r}")
    return value


def check_number(owner: str, name: str, value: Any, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{owner}: {name} must be a number, but got {value!r}")
    return float(value)


def check_choice(owner: str, name: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ConfigError(f"{owner}: {name} must be one of {list(options)}, but got {value!r}")
    return value


def check_callable(owner: str, name: str, value: Any) -> Callable[..., Any] | None:
    if value is not None and not callable(value):
        raise ConfigError(f"{owner}: {name} must be callable or None, but got {type(value).__name__}")
    return value


def check_reporter(owner: str, value: Any) -> Reporter | None:
    return check_callable(owner, "reporter", value)


def not_used(owner: str, name: str, why: str) -> None:
    """Warn (once per construction) that an accepted DSPy argument has no effect here, and why."""
    warnings.warn(f"{owner}: {name} is accepted for compatibility with DSPy but not used: {why}", UserWarning,
                  stacklevel=4)


def check_mapping(owner: str, name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{owner}: {name} must be a dict or None, but got {type(value).__name__}")
    return dict(value)
