"""The scale-out benchmark's smallest configuration runs end to end (scripted server process, the cluster's
workers, a PostgreSQL server, `rollouts-dspy worker` processes sharing a MIPRO study), so the script never rots; its
numbers are not judged here, but the MIPRO workers' rows must be the same search with no call made twice."""

from __future__ import annotations

import pytest

from benchmarks import scale_out

pytestmark = pytest.mark.distributed


def test_the_scale_out_benchmark_writes_its_tables(ray_cluster, tmp_path):
    out = tmp_path / "scale_out.md"
    scale_out.main(["--rollouts", "4", "--cpu-ms", "1", "--workers", "1", "2", "--repeats", "1",
                    "--overhead-rollouts", "3", "--mipro-workers", "1", "2", "--mipro-trials", "2",
                    "--latency", "0.01", "--out", str(out)])
    text = out.read_text()
    for row in ("| local (one process) | 1 |", "| ray, 1 worker | 1 |", "| ray, 2 workers | 2 |",
                "Ray's cost per rollout", "PostgreSQL: one budget admission", "PostgreSQL storage"):
        assert row in text
    assert "load average" in text

    mipro = text.split("## Scale-out: MIPRO workers sharing one PostgreSQL study", 1)[1]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in mipro.splitlines()
            if line.startswith(("| 1 |", "| 2 |"))]
    assert [r[0] for r in rows] == ["1", "2"]
    for _workers, rollouts, task_calls, *_, same_search in rows:
        assert int(rollouts) > 0 and task_calls == rollouts  # every stored rollout called once, none twice
        assert same_search == "yes"
