"""GEPAConfig: the spec's knobs plus the budget, the search's sample sizes, strategies by name, the seed and the
checkpoint. Validated at construction; fields left unset (None) are chosen for the data and the budget
(`gepa/sizing.py`), and an explicitly set field always wins."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ...errors import ConfigError
from ..objectives import check_objectives
from ..validation import (
    check_budget,
    check_int,
    check_optional_int,
    check_probability,
    check_seed,
    check_seeds,
)
from .sizing import choose_sizes, minimum_rollouts

__all__ = ["CANDIDATE_SELECTIONS", "COMPONENT_SELECTIONS", "PARETO_SPLITS", "GEPAConfig"]

OWNER = "GEPAConfig"
CANDIDATE_SELECTIONS = ("pareto", "current_best")
COMPONENT_SELECTIONS = ("round_robin", "all")
PARETO_SPLITS = ("train", "val")
DEFAULT_MUTATION_RATE = 0.3
DEFAULT_CROSSOVER_RATE = 0.3
DEFAULT_MAX_CONCURRENT = 10
DEFAULT_REFLECTION_MINIBATCH = 32
DEFAULT_MUTATION_ATTEMPTS = 3
DEFAULT_VAL_CANDIDATES = 3
DEFAULT_MAX_STALE_GENERATIONS = 3

_FREE_ON_RESUME = frozenset({"generations", "max_rollouts", "max_cost_usd", "max_concurrent", "checkpoint_dir",
                             "max_stale_generations", "max_reflection_calls"})
"""Fields a resumed run may change (to extend a run or use more concurrency): nothing the search decides by."""


@dataclass(frozen=True, kw_only=True)
class GEPAConfig:
    """GEPA hyperparameters (docs/gepa.md explains each; fields left None are chosen for the data and budget).

    Spec fields: `population_size` (children per generation + elites), `generations`, `mutation_rate` (a merged
    child also gets a reflective mutation with this probability), `crossover_rate` (a step merges two Pareto
    candidates instead of reflecting on one with this probability), `elite_size`, `train_seeds`, `val_seeds`,
    `max_concurrent`.

    Extras: `seed`; the hard budget `max_rollouts` (task-model calls on samples, validation included) and
    `max_cost_usd` (task + reflection dollars); `minibatch_size` (training samples a step runs its parent and child
    on: the reflection's evidence and the acceptance test); `reflection_minibatch_size` (rollouts shown to the
    reflection, failures first); `pareto_size` (with `pareto_split="train"`, the training samples every accepted
    candidate is scored on and compared by: the Pareto set); `pareto_split` ("train": the Pareto set is drawn
    from train_seeds and the best candidates are validated on val_seeds at the end; "val": the paper's scheme,
    candidates are compared on val_seeds themselves); `holdout_size` (split "train" without val_seeds:
    training samples kept out of the search to validate its best candidates on; 0: none); `val_candidates`;
    `perfect_score` (stop once a candidate reaches it on every sample of the Pareto set); `skip_perfect_score`
    (no reflection when every rollout shown already reaches it); `candidate_selection` ("pareto" |
    "current_best"); `component_selection` ("round_robin" | "all"); `max_merges`; `llm_merge`;
    `mutation_attempts`; `max_stale_generations`; `max_reflection_calls`; `optimize_user_template` (run_gepa:
    the user_template is a second component, rewritten like the system prompt; a rewrite that drops or invents a
    {placeholder} is rejected); `objectives` (multi-objective search: names of Score metrics, "prompt_length"
    or "tokens"; the candidates best on any of them stay parents, and the result holds the Pareto front over
    them and the score); `checkpoint_dir` (the run's journal: rerunning with it resumes).
    """

    population_size: int | None = None
    generations: int | None = None
    mutation_rate: float = DEFAULT_MUTATION_RATE
    crossover_rate: float = DEFAULT_CROSSOVER_RATE
    elite_size: int | None = None
    train_seeds: tuple[int, ...] = ()
    val_seeds: tuple[int, ...] = ()
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    seed: int = 0
    max_rollouts: int | None = None
    max_cost_usd: float | None = None
    minibatch_size: int | None = None
    reflection_minibatch_size: int = DEFAULT_REFLECTION_MINIBATCH
    pareto_size: int | None = None
    pareto_split: str = "train"
    holdout_size: int | None = None
    mutation_attempts: int = DEFAULT_MUTATION_ATTEMPTS
    val_candidates: int = DEFAULT_VAL_CANDIDATES
    perfect_score: float | None = 1.0
    skip_perfect_score: bool = True
    candidate_selection: str = "pareto"
    component_selection: str = "round_robin"
    max_merges: int | None = None
    llm_merge: bool = False
    optimize_user_template: bool = False
    objectives: tuple[str, ...] = ()
    checkpoint_dir: str | None = None
    max_stale_generations: int | None = DEFAULT_MAX_STALE_GENERATIONS
    max_reflection_calls: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "train_seeds", check_seeds(OWNER, "train_seeds", self.train_seeds))
        set_(self, "val_seeds", check_seeds(OWNER, "val_seeds", self.val_seeds))
        if not self.train_seeds:
            raise ConfigError("GEPAConfig.train_seeds must not be empty: give the row indices to optimize on, "
                              "e.g. train_seeds=tuple(range(100))")
        self._check_numbers()
        self._check_names()
        set_(self, "objectives", check_objectives(OWNER, self.objectives))
        for name, value in choose_sizes(self).items():
            set_(self, name, value)
        if self.elite_size >= self.population_size:  # type: ignore[operator]
            raise ConfigError(
                f"GEPAConfig: elite_size < population_size must hold (elites leave room for children), but got "
                f"elite_size={self.elite_size}, population_size={self.population_size}"
            )
        self._check_budget_pays_for_a_step()
        if self.checkpoint_dir is not None and not isinstance(self.checkpoint_dir, str):
            set_(self, "checkpoint_dir", str(self.checkpoint_dir))

    def _check_numbers(self) -> None:
        check_optional_int(OWNER, "population_size", self.population_size, 2)
        check_optional_int(OWNER, "generations", self.generations, 1)
        check_optional_int(OWNER, "elite_size", self.elite_size, 0)
        check_int(OWNER, "max_concurrent", self.max_concurrent, 1)
        check_int(OWNER, "reflection_minibatch_size", self.reflection_minibatch_size, 1)
        check_int(OWNER, "mutation_attempts", self.mutation_attempts, 1)
        check_int(OWNER, "val_candidates", self.val_candidates, 1)
        check_optional_int(OWNER, "minibatch_size", self.minibatch_size, 1)
        check_optional_int(OWNER, "pareto_size", self.pareto_size, 1)
        check_optional_int(OWNER, "holdout_size", self.holdout_size, 0)
        check_optional_int(OWNER, "max_merges", self.max_merges, 0)
        check_optional_int(OWNER, "max_stale_generations", self.max_stale_generations, 1)
        check_optional_int(OWNER, "max_reflection_calls", self.max_reflection_calls, 1)
        check_seed(OWNER, self.seed)
        check_probability(OWNER, "mutation_rate", self.mutation_rate)
        check_probability(OWNER, "crossover_rate", self.crossover_rate)
        check_budget(OWNER, self.max_rollouts, self.max_cost_usd)
        if self.perfect_score is not None and (isinstance(self.perfect_score, bool)
                                               or not isinstance(self.perfect_score, (int, float))):
            raise ConfigError(f"GEPAConfig.perfect_score must be a number or None, but got {self.perfect_score!r}")

    def _check_names(self) -> None:
        for name, allowed in (("pareto_split", PARETO_SPLITS), ("candidate_selection", CANDIDATE_SELECTIONS),
                              ("component_selection", COMPONENT_SELECTIONS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"GEPAConfig.{name} must be one of {list(allowed)}, but got {getattr(self, name)!r}")
        if self.pareto_split == "val" and not self.val_seeds:
            raise ConfigError("GEPAConfig.pareto_split='val' needs val_seeds (candidates are compared on them); give "
                              "val_seeds or use pareto_split='train'")

    def _check_budget_pays_for_a_step(self) -> None:
        pareto = min(self.pareto_size, len(self.val_seeds if self.pareto_split == "val" else self.train_seeds))  # type: ignore[type-var]
        minibatch = min(self.minibatch_size, len(self.train_seeds))  # type: ignore[type-var]
        need = minimum_rollouts(pareto, minibatch)
        if self.max_rollouts is not None and self.max_rollouts < need:
            raise ConfigError(
                f"GEPAConfig.max_rollouts={self.max_rollouts} cannot pay for one improvement step: scoring the start "
                f"on the Pareto set ({pareto}), a step's two minibatches (2 x {minibatch}) and the child on the "
                f"Pareto set ({pareto}) need at least {need} rollouts; raise max_rollouts or lower pareto_size / "
                "minibatch_size"
            )

    @property
    def children_per_generation(self) -> int:
        return self.population_size - self.elite_size  # type: ignore[operator]

    @property
    def overlap(self) -> tuple[int, ...]:
        """Indices in both train_seeds and val_seeds (allowed, but then validation is not held out)."""
        return tuple(sorted(set(self.train_seeds) & set(self.val_seeds)))

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["train_seeds"] = list(self.train_seeds)
        out["val_seeds"] = list(self.val_seeds)
        out["objectives"] = list(self.objectives)
        return out

    def fingerprint(self) -> dict[str, Any]:
        """The fields a checkpoint must agree on to be resumed: everything that shapes the search's decisions."""
        return {k: v for k, v in self.to_dict().items() if k not in _FREE_ON_RESUME}
