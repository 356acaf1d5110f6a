"""GEPA: reflective prompt evolution with Pareto-aware selection and merge.

Public names: GEPAConfig, optimize_gepa (the engine both front doors call), GEPAStrategies and the strategy
protocols, select_elites, crossover_templates, MutationError, and the rollouts front door run_gepa /
mutate_template (loaded lazily: importing the engine loads no LLM library).
"""

from __future__ import annotations

from typing import Any

from .config import GEPAConfig
from .merge import crossover_templates
from .reflection import MutationError
from .runner import optimize_gepa
from .selection import select_elites
from .strategies import (
    ComponentContext,
    ComponentSelector,
    GEPAStrategies,
    ProposalRequest,
    ProposalResult,
    Proposer,
)

__all__ = ["ComponentContext", "ComponentSelector", "GEPAConfig", "GEPAStrategies", "MutationError",
           "ProposalRequest", "ProposalResult", "Proposer", "crossover_templates", "mutate_template",
           "optimize_gepa", "run_gepa", "select_elites"]

_FRONT_DOOR = {"run_gepa", "mutate_template", "GEPA"}


def __getattr__(name: str) -> Any:
    if name in _FRONT_DOOR:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
