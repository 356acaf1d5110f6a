"""Benchmark presets. `full` is what BENCHMARKS.md reports; `smoke` is the tiny one the test suite runs.

Budget choice for `full` (2 cores, ~20 minutes for everything): Banking77 restricted to the queries of its 10 most
frequent intents (the server still knows all 77 labels), 50 training rows, 30 dev rows (the optimizers' own
validation set, paid from the budget) and 200 held-out rows, 300 rollouts per run -- enough for dspy.GEPA's 30-row
full evaluations to happen several times and for MIPROv2 to finish its bootstrapping plus a handful of trials.
Why 10 intents: with all 77, 300 rollouts teach keyword rules for too few intents to move any optimizer off the
weak start on held-out rows (measured: every contender 0.31-0.33 against the start's 0.315; see BENCHMARKS.md).
The calculator world: 20 / 10 / 30 rows, 120 rollouts (each rollout is 3-7 model calls).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PRESETS", "Preset", "WorldSetup"]


@dataclass(frozen=True)
class WorldSetup:
    n_train: int
    n_dev: int
    n_val: int
    budget: int

    n_intents: int | None = None  # Banking77 only: keep the queries of the n most frequent intents

    def world_args(self) -> dict[str, int | None]:
        args: dict[str, int | None] = {"n_train": self.n_train, "n_dev": self.n_dev, "n_val": self.n_val}
        if self.n_intents is not None:
            args["n_intents"] = self.n_intents
        return args


@dataclass(frozen=True)
class Preset:
    name: str
    seeds: tuple[int, ...]
    latency: float
    concurrency: int
    worlds: dict[str, WorldSetup]
    contenders: tuple[str, ...] | None = None  # None: every registered contender
    world_contenders: dict[str, tuple[str, ...]] = field(default_factory=dict)  # per-world override
    checkpoint_fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0)
    scale_sizes: tuple[int, ...] = ()
    scale_populations: tuple[int, ...] = ()
    scale_rollout_cap: int = 0
    one_process: bool = False  # every run in one worker process (smoke: saves the ~10 s import cost per worker)


PRESETS: dict[str, Preset] = {
    "full": Preset(
        name="full",
        seeds=(0, 1, 2),
        latency=0.1,
        concurrency=32,
        worlds={"banking77": WorldSetup(50, 30, 200, 300, n_intents=10),
                "calculator": WorldSetup(20, 10, 30, 120)},
        scale_sizes=(100, 1_000, 10_000),
        scale_populations=(10, 20, 50),
        scale_rollout_cap=2_000,
    ),
    "smoke": Preset(
        name="smoke",
        seeds=(0,),
        latency=0.0,
        concurrency=8,
        worlds={"banking77": WorldSetup(12, 6, 20, 24), "calculator": WorldSetup(4, 3, 4, 12)},
        contenders=("run_gepa", "dspy.GEPA", "gepa.optimize", "run_mipro", "dspy.MIPROv2"),
        world_contenders={"calculator": ("run_gepa",)},
        scale_sizes=(100,),
        scale_populations=(10,),
        scale_rollout_cap=60,
        one_process=True,
    ),
}
