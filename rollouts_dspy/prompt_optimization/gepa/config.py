"""GEPAConfig: the spec's knobs plus the budget, minibatches, seed and checkpointing. Validated at construction."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from ...errors import ConfigError

__all__ = ["GEPAConfig"]

DEFAULT_POPULATION = 20
DEFAULT_GENERATIONS = 10
DEFAULT_MUTATION_RATE = 0.3
DEFAULT_CROSSOVER_RATE = 0.5
DEFAULT_ELITES = 4
DEFAULT_MAX_CONCURRENT = 10
DEFAULT_REFLECTION_MINIBATCH = 8
DEFAULT_MUTATION_ATTEMPTS = 3
DEFAULT_VAL_CANDIDATES = 3
DEFAULT_MAX_STALE_GENERATIONS = 3


def _int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"GEPAConfig.{name} must be an integer >= {low}, but got {value!r}")


def _seeds(name: str, value: Any) -> tuple[int, ...]:
    try:
        seeds = tuple(value)
    except TypeError:
        raise ConfigError(f"GEPAConfig.{name} must be a sequence of row indices, but got {value!r}") from None
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad:
        raise ConfigError(f"GEPAConfig.{name} must hold non-negative integer row indices, but got {bad[0]!r}")
    if len(set(seeds)) != len(seeds):
        twice = sorted(s for s in set(seeds) if seeds.count(s) > 1)
        raise ConfigError(f"GEPAConfig.{name} holds duplicate indices: {twice}")
    return seeds


@dataclass(frozen=True, kw_only=True)
class GEPAConfig:
    """GEPA optimization hyperparameters (docs/gepa.md, "GEPAConfig", says what each field does).

    Spec fields: `population_size`, `generations` (including generation 0, the initial population),
    `mutation_rate`, `crossover_rate`, `elite_size`, `train_seeds`, `val_seeds`, `max_concurrent`.
    Extras: `seed`; the hard budget `max_rollouts` (task-model calls on samples, validation included) and
    `max_cost_usd`; `minibatch_size` (None: every child is evaluated on all of `train_seeds`; else on a seeded
    subset first, and fully only when it beats its parent there); `reflection_minibatch_size` (rollouts shown to
    the reflection model, failures first); `mutation_attempts` (tries per mutation before the child is dropped);
    `val_candidates` (how many top candidates are scored on `val_seeds`); `perfect_score` (early stop when a
    candidate reaches it on every training sample); `llm_merge` (crossover asks the reflection model to merge,
    falling back to the section-wise merge); `checkpoint_dir` (JSON state after every generation; resumes);
    `max_stale_generations` (stop, reason "stalled", after this many generations in a row without a new evaluated
    child; None: never); `max_reflection_calls` (no generation starts once this many reflection requests were
    made; None: only `generations` bounds them); `pareto_split` ("train": every child that passes gating is
    evaluated on all of `train_seeds`, Pareto/elites/parents use training scores and the top `val_candidates` are
    validated at the end; "val": the GEPA paper's scheme -- a child that beats its parent on the gating minibatch
    is evaluated on `val_seeds` only, and Pareto/elites/parents/best use those validation scores; measured no
    better on the Banking77 benchmark, see docs/gepa.md, "Why the defaults").
    """

    population_size: int = DEFAULT_POPULATION
    generations: int = DEFAULT_GENERATIONS
    mutation_rate: float = DEFAULT_MUTATION_RATE
    crossover_rate: float = DEFAULT_CROSSOVER_RATE
    elite_size: int = DEFAULT_ELITES
    train_seeds: tuple[int, ...] = ()
    val_seeds: tuple[int, ...] = ()
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    seed: int = 0
    max_rollouts: int | None = None
    max_cost_usd: float | None = None
    minibatch_size: int | None = None
    reflection_minibatch_size: int = DEFAULT_REFLECTION_MINIBATCH
    mutation_attempts: int = DEFAULT_MUTATION_ATTEMPTS
    val_candidates: int = DEFAULT_VAL_CANDIDATES
    perfect_score: float | None = 1.0
    llm_merge: bool = False
    checkpoint_dir: str | None = None
    max_stale_generations: int | None = DEFAULT_MAX_STALE_GENERATIONS
    max_reflection_calls: int | None = None
    pareto_split: str = "train"

    def __post_init__(self) -> None:
        _int("population_size", self.population_size, 2)
        _int("generations", self.generations, 1)
        _int("elite_size", self.elite_size, 0)
        _int("max_concurrent", self.max_concurrent, 1)
        _int("reflection_minibatch_size", self.reflection_minibatch_size, 1)
        _int("mutation_attempts", self.mutation_attempts, 1)
        _int("val_candidates", self.val_candidates, 1)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"GEPAConfig.seed must be an integer, but got {self.seed!r}")
        if self.elite_size >= self.population_size:
            raise ConfigError(
                f"GEPAConfig: elite_size < population_size must hold (elites leave room for children), but got "
                f"elite_size={self.elite_size}, population_size={self.population_size}"
            )
        for name in ("mutation_rate", "crossover_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"GEPAConfig.{name} must be a probability in [0, 1], but got {value!r}")
        object.__setattr__(self, "train_seeds", _seeds("train_seeds", self.train_seeds))
        object.__setattr__(self, "val_seeds", _seeds("val_seeds", self.val_seeds))
        if not self.train_seeds:
            raise ConfigError("GEPAConfig.train_seeds must not be empty: give the row indices to optimize on, "
                              "e.g. train_seeds=tuple(range(100))")
        if self.max_rollouts is not None:
            _int("max_rollouts", self.max_rollouts, 1)
        if self.max_cost_usd is not None and (
            isinstance(self.max_cost_usd, bool) or not isinstance(self.max_cost_usd, (int, float))
            or not math.isfinite(self.max_cost_usd) or self.max_cost_usd <= 0
        ):
            raise ConfigError(f"GEPAConfig.max_cost_usd must be > 0 or None, but got {self.max_cost_usd!r}")
        if self.minibatch_size is not None:
            _int("minibatch_size", self.minibatch_size, 1)
        if self.perfect_score is not None and not isinstance(self.perfect_score, (int, float)):
            raise ConfigError(f"GEPAConfig.perfect_score must be a number or None, but got {self.perfect_score!r}")
        if self.max_stale_generations is not None:
            _int("max_stale_generations", self.max_stale_generations, 1)
        if self.max_reflection_calls is not None:
            _int("max_reflection_calls", self.max_reflection_calls, 1)
        if self.pareto_split not in ("train", "val"):
            raise ConfigError(f"GEPAConfig.pareto_split must be 'train' or 'val', but got {self.pareto_split!r}")
        if self.pareto_split == "val" and not self.val_seeds:
            raise ConfigError("GEPAConfig.pareto_split='val' needs val_seeds (children are scored on them); give "
                              "val_seeds or use pareto_split='train'")
        if self.checkpoint_dir is not None and not isinstance(self.checkpoint_dir, str):
            object.__setattr__(self, "checkpoint_dir", str(self.checkpoint_dir))

    @property
    def split(self) -> str:
        """The split candidates are compared on (`pareto_split`)."""
        return self.pareto_split

    @property
    def selection_seeds(self) -> tuple[int, ...]:
        """The samples of the per-sample Pareto bookkeeping (and of an accepted child's full evaluation)."""
        return self.val_seeds if self.split == "val" else self.train_seeds

    @property
    def overlap(self) -> tuple[int, ...]:
        """Indices in both train_seeds and val_seeds (allowed, but validation is then not held out)."""
        val = set(self.val_seeds)
        return tuple(s for s in self.train_seeds if s in val)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["train_seeds"] = list(self.train_seeds)
        out["val_seeds"] = list(self.val_seeds)
        return out

    def fingerprint(self) -> dict[str, Any]:
        """The fields a checkpoint must agree on to be resumed: everything that shapes the search's decisions.
        `generations`, the budget, `max_concurrent` and `checkpoint_dir` may change between runs (e.g. to extend
        a finished run by more generations or a larger budget)."""
        free = {"generations", "max_rollouts", "max_cost_usd", "max_concurrent", "checkpoint_dir",
                "max_stale_generations", "max_reflection_calls"}
        out = {k: v for k, v in self.to_dict().items() if k not in free}
        if out["pareto_split"] == "train":  # the search before this field existed: its checkpoints still resume
            del out["pareto_split"]
        return out
