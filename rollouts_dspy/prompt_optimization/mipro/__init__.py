"""MIPRO: joint instruction and few-shot demo optimization (MIPROv2, Opsahl-Ong et al. 2024) with Optuna's TPE.

`optimize_mipro` is the engine both front doors call; `run_mipro` is the rollouts front door;
`bootstrap_demos` and `propose_instructions` are the spec's template-level operations. The front-door names load
lazily: importing the engine loads neither the LLM layer nor litellm.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import DEFAULT_TIPS, MIPROConfig
from .demos import build_demo_sets
from .engine import MiproEngine
from .estimate import estimate_calls
from .proposals import dedupe_instructions, parse_instruction
from .runner import optimize_mipro

_FRONT_DOOR = {"run_mipro", "bootstrap_demos", "propose_instructions"}

__all__ = [
    "DEFAULT_TIPS",
    "MIPROConfig",
    "MiproEngine",
    "bootstrap_demos",
    "build_demo_sets",
    "dedupe_instructions",
    "estimate_calls",
    "optimize_mipro",
    "parse_instruction",
    "propose_instructions",
    "run_mipro",
]


def __getattr__(name: str) -> Any:
    if name in _FRONT_DOOR:
        value = getattr(importlib.import_module(f"{__name__}.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
