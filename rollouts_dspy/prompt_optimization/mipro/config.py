"""MIPROConfig: the hyperparameters of one MIPRO run, validated at construction (before any LLM call).

The search-size fields (`num_candidates`, `num_trials`, `minibatch_size`, `num_demo_sets`, `full_eval_every`)
default to None: without a budget they become the spec's defaults (50, 100, 35, 6, 5); with `max_rollouts` they
are chosen for the budget (`settings.plan_for_budget`). A field given explicitly always wins. After construction
every field holds the value the run uses, and `chosen_for_budget` names the ones picked for the budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ...errors import ConfigError
from ...studies.options import SharedStudy
from ..validation import check_budget, check_int, check_optional_int, check_seed, check_seeds
from .settings import SEARCH_FIELDS, minimum_rollouts, resolve_search_settings

__all__ = ["DEFAULT_TIPS", "MIPROConfig"]

OWNER = "MIPROConfig"

DEFAULT_TIPS: tuple[str, ...] = (
    "",
    "Be creative: find a new angle on how to state the task.",
    "Keep the instruction clear and concise.",
    "Make the instruction informative and descriptive: say exactly what a correct answer looks like.",
    "Describe the situation as high stakes: mistakes are costly, so the model must be careful.",
    'Give the model a persona that fits the task (e.g. "You are a ...").',
)
"""One tip per proposal, cycled: varied tips give varied candidates (the MIPROv2 paper's tip set, reworded)."""

NOT_FINGERPRINTED = ("num_trials", "max_rollouts", "max_cost_usd", "max_concurrent", "storage", "checkpoint_dir",
                     "trials_per_batch", "num_top_for_validation", "study")
"""Fields a resumed run may change: more trials or budget, other concurrency, another place for the files."""


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{OWNER}.{name} must be True or False, but got {value!r}")


@dataclass(frozen=True, kw_only=True)
class MIPROConfig:
    """MIPRO optimization hyperparameters. The first seven fields are the spec's; the rest extend MIPROv2.

    `train_seeds` must be given (the split is a decision of the caller, not something to guess). `val_seeds` may
    be empty: the best combination is then chosen by its full evaluation on the training rows.
    `checkpoint_dir` keeps the run's journal (rerunning with it resumes); `storage` is an Optuna RDB URL (e.g.
    `sqlite:///study.db`) where the study is kept for inspection. `study` makes this run one worker of a search
    shared through a PostgreSQL database (docs/cluster.md, MIPRO across workers; the database is then the checkpoint, so
    `checkpoint_dir` and `storage` stay None). The `*_aware` flags choose what each proposal
    request shows: the task's steps and inputs, a dataset summary, a tip, demos (and observed failures).
    """

    num_candidates: int | None = None
    num_trials: int | None = None
    max_bootstrapped_demos: int = 4
    max_labeled_demos: int = 4
    minibatch_size: int | None = None
    train_seeds: tuple[int, ...] = ()
    val_seeds: tuple[int, ...] = ()
    seed: int = 0
    num_demo_sets: int | None = None
    bootstrap_threshold: float = 1.0
    max_bootstrap_rollouts: int | None = None
    full_eval_every: int | None = None
    num_top_for_validation: int = 3
    trials_per_batch: int | None = None
    max_rollouts: int | None = None
    max_cost_usd: float | None = None
    max_concurrent: int = 10
    checkpoint_dir: str | None = None
    storage: str | None = None
    study: SharedStudy | None = None
    tips: tuple[str, ...] = DEFAULT_TIPS
    proposal_demos: int = 40
    proposal_failures: int = 0
    summary_examples: int = 12
    program_aware: bool = True
    data_aware: bool = True
    tip_aware: bool = True
    fewshot_aware: bool = True
    chosen_for_budget: tuple[str, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        for name in SEARCH_FIELDS:
            check_optional_int(OWNER, name, getattr(self, name), 1)
        check_int(OWNER, "max_bootstrapped_demos", self.max_bootstrapped_demos, 0)
        check_int(OWNER, "max_labeled_demos", self.max_labeled_demos, 0)
        check_seed(OWNER, self.seed)
        for name in ("num_top_for_validation", "max_concurrent", "summary_examples"):
            check_int(OWNER, name, getattr(self, name), 1)
        check_int(OWNER, "proposal_demos", self.proposal_demos, 0)
        check_int(OWNER, "proposal_failures", self.proposal_failures, 0)
        check_optional_int(OWNER, "max_bootstrap_rollouts", self.max_bootstrap_rollouts, 1)
        check_optional_int(OWNER, "trials_per_batch", self.trials_per_batch, 1)
        check_budget(OWNER, self.max_rollouts, self.max_cost_usd)
        for name in ("program_aware", "data_aware", "tip_aware", "fewshot_aware"):
            _flag(name, getattr(self, name))
        if isinstance(self.bootstrap_threshold, bool) or not isinstance(self.bootstrap_threshold, (int, float)):
            raise ConfigError(f"{OWNER}.bootstrap_threshold must be a number, but got {self.bootstrap_threshold!r}")
        train = check_seeds(OWNER, "train_seeds", self.train_seeds)
        val = check_seeds(OWNER, "val_seeds", self.val_seeds)
        if not train:
            raise ConfigError(
                f"{OWNER}.train_seeds is empty: pass the dataset rows to optimize on, e.g. "
                "train_seeds=tuple(range(100)), val_seeds=tuple(range(100, 150))"
            )
        self._check_paths()
        if isinstance(self.tips, str) or not self.tips or not all(isinstance(t, str) for t in self.tips):
            raise ConfigError(f"{OWNER}.tips must be a non-empty tuple of strings, but got {self.tips!r}")
        object.__setattr__(self, "train_seeds", train)
        object.__setattr__(self, "val_seeds", val)
        object.__setattr__(self, "tips", tuple(self.tips))
        self._resolve_search()

    def _check_paths(self) -> None:
        if self.checkpoint_dir is not None and (not isinstance(self.checkpoint_dir, str) or not self.checkpoint_dir):
            raise ConfigError(f"{OWNER}.checkpoint_dir must be a directory path (str) or None, but got "
                              f"{self.checkpoint_dir!r}")
        if self.storage is not None and (not isinstance(self.storage, str) or "://" not in self.storage):
            raise ConfigError(f"{OWNER}.storage must be an Optuna RDB URL such as 'sqlite:///study.db', but got "
                              f"{self.storage!r} (to make a run resumable, set checkpoint_dir)")
        if self.study is None:
            return
        if not isinstance(self.study, SharedStudy):
            raise ConfigError(f"{OWNER}.study must be a SharedStudy or None, but got {self.study!r}")
        for name in ("checkpoint_dir", "storage"):
            if getattr(self, name) is not None:
                raise ConfigError(f"{OWNER}.{name} must be None in a shared study (study=SharedStudy(...)), but got "
                                  f"{getattr(self, name)!r}: the study's database, study.storage, is its checkpoint")

    def _resolve_search(self) -> None:
        """Fill the search-size fields (see the module doc) and refuse a budget too small for one trial."""
        given = {name: getattr(self, name) for name in SEARCH_FIELDS if getattr(self, name) is not None}
        values, chosen = resolve_search_settings(
            given, max_rollouts=self.max_rollouts, num_train=len(self.train_seeds), num_val=len(self.val_seeds),
            num_top=self.num_top_for_validation, max_concurrent=self.max_concurrent)
        for name, value in values.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "chosen_for_budget", chosen)
        if self.max_rollouts is not None:
            needed = minimum_rollouts(self)
            if self.max_rollouts < needed:
                raise ConfigError(
                    f"{OWNER}.max_rollouts={self.max_rollouts} cannot pay for one trial: the starting point's trial "
                    f"and one searched trial ({min(self.minibatch_size, len(self.train_seeds))} rollouts each) plus "
                    f"validating {self.num_top_for_validation + 1} combinations on {len(self.val_seeds)} rows needs "
                    f"at least {needed} rollouts; raise max_rollouts to {needed} or more, or use a smaller "
                    "minibatch_size, fewer val_seeds or a smaller num_top_for_validation")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["train_seeds"] = list(self.train_seeds)
        data["val_seeds"] = list(self.val_seeds)
        data["tips"] = list(self.tips)
        data["chosen_for_budget"] = list(self.chosen_for_budget)
        data["study"] = None if self.study is None else self.study.to_dict()
        return data

    def fingerprint_fields(self) -> dict[str, Any]:
        """What must not change between a run and its resume (see NOT_FINGERPRINTED for what may)."""
        data = self.to_dict()
        for name in (*NOT_FINGERPRINTED, "chosen_for_budget"):
            data.pop(name)
        return data
