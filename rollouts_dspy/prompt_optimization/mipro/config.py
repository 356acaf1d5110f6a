"""MIPROConfig: the hyperparameters of one MIPRO run, validated at construction (before any LLM call)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ...errors import ConfigError

__all__ = ["DEFAULT_TIPS", "MIPROConfig"]

DEFAULT_TIPS: tuple[str, ...] = (
    "",
    "Be creative: find a new angle on how to state the task.",
    "Keep the instruction clear and concise.",
    "Make the instruction informative and descriptive: say exactly what a correct answer looks like.",
    "Describe the situation as high stakes: mistakes are costly, so the model must be careful.",
    'Give the model a persona that fits the task (e.g. "You are a ...").',
)
"""One tip per proposal, cycled: varied tips give varied candidates (the MIPROv2 paper's tip set, reworded)."""


def _int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"MIPROConfig.{name} must be an integer >= {low}, but got {value!r}")


def _seeds(name: str, seeds: Any) -> tuple[int, ...]:
    if isinstance(seeds, (str, bytes)):
        raise ConfigError(f"MIPROConfig.{name} must be a sequence of row indices, but got {seeds!r}")
    try:
        out = tuple(seeds)
    except TypeError:
        raise ConfigError(f"MIPROConfig.{name} must be a sequence of row indices, but got {seeds!r}") from None
    for s in out:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ConfigError(f"MIPROConfig.{name} must hold non-negative integer row indices, but got {s!r}")
    if len(set(out)) != len(out):
        dup = next(s for s in out if out.count(s) > 1)
        raise ConfigError(f"MIPROConfig.{name} contains {dup} more than once")
    return out


@dataclass(frozen=True, kw_only=True)
class MIPROConfig:
    """MIPRO optimization hyperparameters. The first seven fields are the spec's; the rest extend MIPROv2.

    `train_seeds` must be given (the spec example that omits it fails here with a clear message): the split is
    a decision of the caller, not something to guess. `val_seeds` may be empty, then the best combination is
    chosen by its full evaluation on the training rows.

    Proposer toggles (MIPROv2's): `program_aware` (a proposal for one step of a multi-step program names the
    step), `data_aware` (proposals see a summary of the data, one extra proposer call), `tip_aware` (each
    proposal gets one of `tips`), `fewshot_aware` (proposals are shown `proposal_demos` demos).
    """

    num_candidates: int = 50
    num_trials: int = 100
    max_bootstrapped_demos: int = 4
    max_labeled_demos: int = 4
    minibatch_size: int = 35
    train_seeds: tuple[int, ...] = ()
    val_seeds: tuple[int, ...] = ()
    seed: int = 0
    num_demo_sets: int = 6
    bootstrap_threshold: float = 1.0
    max_bootstrap_rollouts: int | None = None
    full_eval_every: int = 5
    num_top_for_validation: int = 3
    trials_per_batch: int | None = None
    max_rollouts: int | None = None
    max_cost_usd: float | None = None
    max_concurrent: int = 10
    storage: str | None = None
    tips: tuple[str, ...] = DEFAULT_TIPS
    proposal_demos: int = 10
    summary_examples: int = 12
    program_aware: bool = True
    data_aware: bool = True
    tip_aware: bool = True
    fewshot_aware: bool = True

    def __post_init__(self) -> None:
        _int("num_candidates", self.num_candidates, 1)
        _int("num_trials", self.num_trials, 1)
        _int("max_bootstrapped_demos", self.max_bootstrapped_demos, 0)
        _int("max_labeled_demos", self.max_labeled_demos, 0)
        _int("minibatch_size", self.minibatch_size, 1)
        _int("seed", self.seed, 0)
        _int("num_demo_sets", self.num_demo_sets, 1)
        _int("full_eval_every", self.full_eval_every, 1)
        _int("num_top_for_validation", self.num_top_for_validation, 1)
        _int("max_concurrent", self.max_concurrent, 1)
        _int("proposal_demos", self.proposal_demos, 0)
        _int("summary_examples", self.summary_examples, 1)
        for name in ("max_bootstrap_rollouts", "trials_per_batch", "max_rollouts"):
            if getattr(self, name) is not None:
                _int(name, getattr(self, name), 1)
        if self.max_cost_usd is not None and (isinstance(self.max_cost_usd, bool) or not self.max_cost_usd > 0):
            raise ConfigError(f"MIPROConfig.max_cost_usd must be > 0 or None, but got {self.max_cost_usd!r}")
        if isinstance(self.bootstrap_threshold, bool) or not isinstance(self.bootstrap_threshold, (int, float)):
            raise ConfigError(f"MIPROConfig.bootstrap_threshold must be a number, but got {self.bootstrap_threshold!r}")
        train = _seeds("train_seeds", self.train_seeds)
        val = _seeds("val_seeds", self.val_seeds)
        if not train:
            raise ConfigError(
                "MIPROConfig.train_seeds is empty: pass the dataset rows to optimize on, e.g. "
                "train_seeds=tuple(range(100)), val_seeds=tuple(range(100, 150))"
            )
        for name in ("program_aware", "data_aware", "tip_aware", "fewshot_aware"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"MIPROConfig.{name} must be True or False, but got {getattr(self, name)!r}")
        if self.storage is not None and (not isinstance(self.storage, str) or not self.storage):
            raise ConfigError(f"MIPROConfig.storage must be a file path (str) or None, but got {self.storage!r}")
        if isinstance(self.tips, str) or not all(isinstance(t, str) for t in self.tips) or not self.tips:
            raise ConfigError(f"MIPROConfig.tips must be a non-empty tuple of strings, but got {self.tips!r}")
        object.__setattr__(self, "train_seeds", train)
        object.__setattr__(self, "val_seeds", val)
        object.__setattr__(self, "tips", tuple(self.tips))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["train_seeds"] = list(self.train_seeds)
        data["val_seeds"] = list(self.val_seeds)
        data["tips"] = list(self.tips)
        return data

    def fingerprint_fields(self) -> dict[str, Any]:
        """What must not change between a run and its resume (the budget, concurrency, trial count and storage
        may: a resumed study can be given more trials or more budget)."""
        data = self.to_dict()
        for name in ("num_trials", "max_rollouts", "max_cost_usd", "max_concurrent", "storage", "trials_per_batch",
                     "num_top_for_validation"):
            data.pop(name)
        return data
