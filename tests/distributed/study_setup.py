"""What the shared-study tests set up besides rollouts_dspy.testing.studies (the config file, the worker processes,
the study's tables): the same search as one ordinary run in this process, to compare the workers' result with."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rollouts_dspy.config_file import load_config
from rollouts_dspy.prompt_optimization.mipro import run_mipro
from tests.conftest import QUIET

LEASE_SECONDS = 3.0  # short, so a killed worker's claims pass to the others quickly


async def single_run(config_path: Path, base_url: str, **overrides: Any) -> Any:
    """The same search as one ordinary run_mipro in this process (no study), on the server at `base_url`."""
    config = load_config(config_path)
    rows = config.rows()
    split = config.split(len(rows))
    mipro = config.method_config("mipro", split.train, split.val, None, overrides=overrides)
    endpoint = dataclasses.replace(config.endpoint.build(), api_base=base_url)
    proposer = dataclasses.replace(config.optimizer_endpoint.build(), api_base=base_url)
    return await run_mipro(config.template, mipro, rows, endpoint, proposer, config.score_fn(), options=QUIET)
