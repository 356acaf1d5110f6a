"""The scale-out benchmark's smallest configuration runs end to end (scripted server process, the cluster's
workers, a PostgreSQL server), so the script never rots; its numbers are not judged here."""

from __future__ import annotations

import pytest

from benchmarks import scale_out

pytestmark = pytest.mark.distributed


def test_the_scale_out_benchmark_writes_its_tables(ray_cluster, tmp_path):
    out = tmp_path / "scale_out.md"
    scale_out.main(["--rollouts", "4", "--cpu-ms", "1", "--workers", "1", "2", "--repeats", "1",
                    "--overhead-rollouts", "3", "--out", str(out)])
    text = out.read_text()
    for row in ("| local (one process) | 1 |", "| ray, 1 worker | 1 |", "| ray, 2 workers | 2 |",
                "Ray's cost per rollout", "PostgreSQL: one budget admission", "PostgreSQL storage"):
        assert row in text
    assert "load average" in text
