"""Fixtures of the CLI tests (helpers in tests/cli/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import write_tiny_config


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    return write_tiny_config(tmp_path / "cfg")
