"""Experiment tracking for the teleprompters' `use_wandb` / `use_mlflow`: the run's steps and result logged to
Weights & Biases and/or MLflow, as dspy.GEPA logs its iterations there.

Both libraries are optional extras (`pip install "rollouts-dspy[wandb]"`, `"rollouts-dspy[mlflow]"`); asking
for one that is not installed is a ConfigError at construction, before any LM call. A wandb API key is handed
to wandb in memory (`wandb.Settings(api_key=...)`), never written to disk or logged.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from ..errors import ConfigError
from ..prompt_optimization.events import Event, RunFinished, StepFinished

__all__ = ["ExperimentTracker", "require"]


def require(module: str, extra: str, argument: str) -> Any:
    """Import an optional tracking library, or a ConfigError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{argument}=True needs the `{module}` package: pip install \"rollouts-dspy[{extra}]\" "
                          f"(or pip install {module})") from None


class ExperimentTracker:
    """A reporter that logs every step's scores and usage, and the final result, to wandb and/or MLflow."""

    def __init__(self, *, use_wandb: bool = False, wandb_api_key: str | None = None,
                 wandb_init_kwargs: Mapping[str, Any] | None = None, use_mlflow: bool = False) -> None:
        if wandb_init_kwargs is not None and not isinstance(wandb_init_kwargs, Mapping):
            raise ConfigError(f"wandb_init_kwargs must be a dict of wandb.init arguments, but got "
                              f"{type(wandb_init_kwargs).__name__}")
        self._wandb = require("wandb", "wandb", "use_wandb") if use_wandb else None
        self._mlflow = require("mlflow", "mlflow", "use_mlflow") if use_mlflow else None
        self._key = wandb_api_key
        self._init = dict(wandb_init_kwargs or {})
        self._run: Any = None
        self._own_mlflow_run = False

    @property
    def active(self) -> bool:
        return self._wandb is not None or self._mlflow is not None

    def start(self, method: str, config: Mapping[str, Any]) -> None:
        params = {k: v for k, v in config.items() if isinstance(v, (str, int, float, bool)) or v is None}
        if self._wandb is not None:
            kwargs = dict(self._init)
            if self._key:
                settings = kwargs.get("settings") or self._wandb.Settings()
                settings.api_key = self._key
                kwargs["settings"] = settings
            kwargs.setdefault("config", {"method": method, **params})
            self._run = self._wandb.init(**kwargs)
        if self._mlflow is not None:
            if self._mlflow.active_run() is None:
                self._mlflow.start_run()
                self._own_mlflow_run = True
            self._mlflow.log_params({f"rollouts_dspy.{k}": str(v)[:250] for k, v in params.items()})

    def _log(self, values: Mapping[str, float], step: int | None) -> None:
        if self._run is not None:
            self._run.log(dict(values), step=step)
        if self._mlflow is not None:
            self._mlflow.log_metrics(dict(values), step=step or 0)

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepFinished):
            stats = asdict(event.stats)
            # cost_usd is None for a model without a known price: left out, never logged as a made-up 0
            values = {k: float(stats[k]) for k in ("best_score", "mean_score", "num_evaluated", "rollouts_used",
                                                    "tokens", "cost_usd") if stats[k] is not None}
            if event.best_so_far is not None:
                values["best_score_so_far"] = float(event.best_so_far)
            self._log(values, event.stats.generation)
        elif isinstance(event, RunFinished):
            final = {"final_rollouts_used": float(event.rollouts_used)}
            if event.best_score is not None:
                final["final_best_score"] = float(event.best_score)
            self._log(final, None)
            if self._run is not None:
                self._run.summary["stop_reason"] = event.stop_reason
            if self._mlflow is not None:
                self._mlflow.set_tag("rollouts_dspy.stop_reason", event.stop_reason)

    def finish(self, failed: bool = False) -> None:
        if self._run is not None:
            self._run.finish(exit_code=1 if failed else 0)
            self._run = None
        if self._mlflow is not None and self._own_mlflow_run:
            self._mlflow.end_run(status="FAILED" if failed else "FINISHED")
            self._own_mlflow_run = False
