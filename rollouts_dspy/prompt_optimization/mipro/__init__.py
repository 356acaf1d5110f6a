"""MIPRO: joint instruction and few-shot demo optimization (MIPROv2, Opsahl-Ong et al. 2024) with Optuna's TPE.

`optimize_mipro` is the engine both front doors call; `run_mipro` is the rollouts front door;
`bootstrap_demos` and `propose_instructions` are the spec's template-level operations."""

from .api import run_mipro
from .config import DEFAULT_TIPS, MIPROConfig
from .demos import bootstrap_demos, build_demo_sets
from .estimate import estimate_calls
from .proposals import dedupe_instructions, parse_instruction, propose_instructions
from .runner import optimize_mipro

__all__ = [
    "DEFAULT_TIPS",
    "MIPROConfig",
    "bootstrap_demos",
    "build_demo_sets",
    "dedupe_instructions",
    "estimate_calls",
    "optimize_mipro",
    "parse_instruction",
    "propose_instructions",
    "run_mipro",
]
