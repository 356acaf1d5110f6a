"""RunOptions: how a run talks to its caller and where its rollouts execute, apart from what it optimizes.

The config (GEPAConfig / MIPROConfig) says what the search is and is saved with its result; RunOptions holds the
live objects a run uses but never saves (a reporter callback, an executor), so they stay out of the config's
fingerprint and its result file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..executors import Executor, resolve_executor
from .events import Reporter

__all__ = ["RUN_KEYWORDS", "RunOptions", "run_options"]


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """`reporter` receives every event (docs/api.md, Events); without one a line per step is printed to stderr
    unless `progress=False`. `executor` says where rollouts run: "local" (the default), "ray", or an Executor
    such as RayExecutor(address=...) (docs/cluster.md). After construction `executor` is an Executor object."""

    reporter: Reporter | None = None
    progress: bool = True
    executor: Executor | str | None = None

    def __post_init__(self) -> None:
        if self.reporter is not None and not callable(self.reporter):
            raise ConfigError(f"RunOptions.reporter must be a callable taking an event, or None, but got "
                              f"{type(self.reporter).__name__}")
        if not isinstance(self.progress, bool):
            raise ConfigError(f"RunOptions.progress must be True or False, but got {self.progress!r}")
        object.__setattr__(self, "executor", resolve_executor(self.executor, field="RunOptions.executor"))


RUN_KEYWORDS = ("reporter", "progress", "executor")
"""The keywords run_gepa/run_mipro took before RunOptions (deprecated aliases until rollouts_dspy.deprecations'
REMOVED_IN)."""


def run_options(old: Mapping[str, Any], arguments: Mapping[str, Any]) -> RunOptions:
    return RunOptions(**old)
