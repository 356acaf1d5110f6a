"""The config checks both engines' configs share: one rule per kind of field, one wording of the error.

Each check names the owner and the field (`GEPAConfig.population_size must be an integer >= 2, but got 0`) and runs
in the config's `__post_init__`, so a bad value is refused before any LLM call.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError

__all__ = ["check_budget", "check_int", "check_optional_int", "check_probability", "check_seed", "check_seeds"]


def check_int(owner: str, name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{owner}.{name} must be an integer >= {low}, but got {value!r}")
    return value


def check_optional_int(owner: str, name: str, value: Any, low: int) -> int | None:
    return None if value is None else check_int(owner, name, value, low)


def check_seed(owner: str, value: Any) -> int:
    """Any integer (negative ones too: every random decision derives its own RNG from it)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{owner}.seed must be an integer, but got {value!r}")
    return value


def check_probability(owner: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{owner}.{name} must be a probability in [0, 1], but got {value!r}")
    return float(value)


def check_seeds(owner: str, name: str, value: Any) -> tuple[int, ...]:
    """A sequence of distinct non-negative row indices, as a tuple."""
    if isinstance(value, (str, bytes)):
        raise ConfigError(f"{owner}.{name} must be a sequence of row indices, but got {value!r}")
    try:
        seeds = tuple(value)
    except TypeError:
        raise ConfigError(f"{owner}.{name} must be a sequence of row indices, but got {value!r}") from None
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad:
        raise ConfigError(f"{owner}.{name} must hold non-negative integer row indices, but got {bad[0]!r}")
    if len(set(seeds)) != len(seeds):
        twice = sorted(s for s in set(seeds) if seeds.count(s) > 1)
        raise ConfigError(f"{owner}.{name} holds duplicate indices: {twice}")
    return seeds


def check_budget(owner: str, max_rollouts: Any, max_cost_usd: Any) -> None:
    check_optional_int(owner, "max_rollouts", max_rollouts, 1)
    if max_cost_usd is not None and (isinstance(max_cost_usd, bool) or not isinstance(max_cost_usd, (int, float))
                                     or not math.isfinite(max_cost_usd) or max_cost_usd <= 0):
        raise ConfigError(f"{owner}.max_cost_usd must be a number > 0 or None, but got {max_cost_usd!r}")
