"""Benchmark presets: named lists of suites. A suite is a grid (worlds x budgets x contenders x seeds) run at one
concurrency and one simulated latency; every contender of a grid cell gets the same rows, budget, concurrency and
latency.

Seeds are kept apart: settings may be chosen on the TUNING seeds (100-105, `--preset tuning`, its own results
file); BENCHMARKS.md reports the REPORT seeds (0-5) only, and a reporting preset refuses tuning seeds.

- `quality` (issue 14): Banking77 20 and 77 intents, train 300 / held-out 200, budgets 1500 and 3000 task calls,
  six seeds, 16 in flight (as the issue measured) at 50 ms a call; plus the calculator world (must stay 1.000).
- `wallclock` (issue 12): the same Banking77 worlds at 1500 task calls, 32 in flight at 100 ms a call, seeds 0-2:
  wall-time ratios, efficiency and dependent rounds (the latency table is projected from those rounds).
- `objectives` suite (issue 14's multi-objective row; in `quality` and `full`): `run_gepa+length` (run_gepa with
  `objectives=("prompt_length",)`) on the 20-intent world at 1500 task calls, six seeds, the quality suite's
  concurrency and latency: the front's shortest prompt within 1 pt of the best against the best.
- `scale`: the scale grid (peak memory with 10,000 samples).
- `full`: all of the above (what BENCHMARKS.md reports). `smoke`: tiny, runs in the test suite.
Estimates for this 2-core machine are printed by `python -m benchmarks.run --preset NAME --plan`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["PRESETS", "REPORT_SEEDS", "TUNING_SEEDS", "Preset", "Suite"]

REPORT_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
TUNING_SEEDS: tuple[int, ...] = (100, 101, 102, 103, 104, 105)

BANKING = ("banking77-20", "banking77-77")


@dataclass(frozen=True, kw_only=True)
class Suite:
    name: str
    worlds: tuple[str, ...]
    budgets: tuple[int, ...]
    seeds: tuple[int, ...]
    concurrency: int
    latency: float
    contenders: tuple[str, ...] | None = None  # None: every registered contender
    checkpoint_fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True, kw_only=True)
class Preset:
    name: str
    suites: tuple[Suite, ...]
    scale_sizes: tuple[int, ...] = ()
    scale_populations: tuple[int, ...] = ()
    scale_rollout_cap: int = 0
    one_process: bool = False  # every run in one worker process (smoke: saves the ~10 s import cost per worker)
    tuning: bool = False  # runs on TUNING_SEEDS, stored apart, never reported in BENCHMARKS.md
    overhead: bool = False  # the LLM layer's CPU per call, memory floor and CLI start-up (benchmarks/overhead.py)


QUALITY = Suite(name="quality", worlds=BANKING, budgets=(1500, 3000), seeds=REPORT_SEEDS, concurrency=16,
                latency=0.05)
CALCULATOR = Suite(name="calculator", worlds=("calculator",), budgets=(120,), seeds=(0, 1, 2), concurrency=16,
                   latency=0.05, contenders=("run_gepa", "run_mipro"))
OBJECTIVES = Suite(name="objectives", worlds=("banking77-20",), budgets=(1500,), seeds=REPORT_SEEDS,
                   concurrency=QUALITY.concurrency, latency=QUALITY.latency, contenders=("run_gepa+length",))
WALLCLOCK = Suite(name="wallclock", worlds=BANKING, budgets=(1500,), seeds=(0, 1, 2), concurrency=32, latency=0.1)
SMOKE = (Suite(name="smoke", worlds=("banking77-10",), budgets=(24,), seeds=(0,), concurrency=8, latency=0.0,
               contenders=("run_gepa", "dspy.GEPA", "gepa.optimize", "run_mipro", "dspy.MIPROv2", "run_gepa+length")),
         Suite(name="smoke-tools", worlds=("calculator-mini",), budgets=(12,), seeds=(0,), concurrency=8,
               latency=0.0, contenders=("run_gepa",)))
_SCALE = dict(scale_sizes=(100, 1_000, 10_000), scale_populations=(10, 20, 50), scale_rollout_cap=2_000)

PRESETS: dict[str, Preset] = {
    "quality": Preset(name="quality", suites=(QUALITY, CALCULATOR, OBJECTIVES)),
    "wallclock": Preset(name="wallclock", suites=(WALLCLOCK,)),
    "scale": Preset(name="scale", suites=(), overhead=True, **_SCALE),
    "full": Preset(name="full", suites=(QUALITY, CALCULATOR, OBJECTIVES, WALLCLOCK), overhead=True, **_SCALE),
    "tuning": Preset(name="tuning", suites=(replace(QUALITY, name="quality", seeds=TUNING_SEEDS),), tuning=True),
    "smoke": Preset(name="smoke", suites=SMOKE, scale_sizes=(100,), scale_populations=(10,),
                    scale_rollout_cap=60, one_process=True),
}
