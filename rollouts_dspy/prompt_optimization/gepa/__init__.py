"""GEPA: reflective prompt evolution with Pareto-aware selection and merge, inside the spec's generational loop.

Public names: GEPAConfig, run_gepa, optimize_gepa (the engine entry point both front doors call), select_elites,
mutate_template, crossover_templates, MutationError.
"""

from .api import run_gepa
from .config import GEPAConfig
from .merge import crossover_templates
from .reflection import MutationError, mutate_template
from .runner import optimize_gepa
from .selection import select_elites

__all__ = ["GEPAConfig", "MutationError", "crossover_templates", "mutate_template", "optimize_gepa", "run_gepa",
           "select_elites"]
