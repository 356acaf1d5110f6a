"""Checking DSPy-named constructor arguments at the public boundary: values of the right type and range
(ConfigError naming the argument and the value), and a warning, once, for the arguments that mean nothing
here, so nothing is accepted and silently ignored."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError
from ..prompt_optimization.events import Reporter

__all__ = ["check_bool", "check_callable", "check_choice", "check_int", "check_number", "check_reporter",
           "config_overrides", "not_used"]


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


def config_overrides(owner: str, config: Any, cls: type) -> dict[str, Any]:
    """The `config` argument's fields: a whole config object is the whole config, a mapping names some fields.
    The split always comes from compile's trainset/valset, so the seed fields are dropped."""
    names = {f.name for f in dataclasses.fields(cls)}
    if isinstance(config, cls):
        overrides = {name: getattr(config, name) for name in names}
    else:
        overrides = dict(config or {})
    bad = sorted(set(overrides) - names)
    if bad:
        raise ConfigError(f"{owner}: config has unknown {cls.__name__} fields {bad}")
    return {k: v for k, v in overrides.items() if k not in ("train_seeds", "val_seeds")}
