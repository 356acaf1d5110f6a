"""The DSPy bridge: our GEPA and MIPRO as DSPy teleprompters, and conversions between rollouts and DSPy objects.

Importing this package imports DSPy; the package root loads it lazily.
"""

from .data import examples_to_rows, rows_to_examples
from .gepa import GEPADetailedResults, RolloutsGEPA
from .gepa_result import RolloutsGEPAResult
from .lm_model import DSPyLanguageModel
from .metrics import ExactMatch, MetricCaller, metric_to_score_fn, score_fn_to_metric
from .mipro import RolloutsMIPRO
from .program_task import ProgramTask, TaskOptions
from .template_module import TemplateAdapter, TemplateModule, module_to_template, template_to_module

__all__ = [
    "DSPyLanguageModel",
    "ExactMatch",
    "GEPADetailedResults",
    "MetricCaller",
    "ProgramTask",
    "RolloutsGEPA",
    "RolloutsGEPAResult",
    "RolloutsMIPRO",
    "TaskOptions",
    "TemplateAdapter",
    "TemplateModule",
    "examples_to_rows",
    "metric_to_score_fn",
    "module_to_template",
    "rows_to_examples",
    "score_fn_to_metric",
    "template_to_module",
]
