"""The results store: one JSON line per finished run, appended as soon as the run ends (so a killed benchmark keeps
every finished run), read back with the last line of each run key winning (so a rerun replaces a result).

A run key names a grid cell and a seed: (suite, world, budget, contender, seed, concurrency, latency). Resuming
a preset skips the keys already stored for the same measured code (`code_hash`: a changed engine is run again,
a changed report is not); runs of several invocations (`--worlds ...`, `--seeds ...`, or separate store files
merged with `--merge`) add up to one report.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["KEY_FIELDS", "append", "code_hash", "code_version", "load", "merge", "run_key"]

KEY_FIELDS = ("suite", "world", "budget", "contender", "seed", "concurrency", "latency")
SCALE_FIELDS = ("engine", "samples", "population", "cap")


def run_key(record: dict[str, Any]) -> str:
    if record.get("mode") == "overhead":
        return "overhead"
    if record.get("mode") == "scale":
        return "scale|" + "|".join(str(record.get(k)) for k in SCALE_FIELDS)
    return "|".join(str(record.get(k)) for k in KEY_FIELDS)


def append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as out:
        fcntl.flock(out, fcntl.LOCK_EX)
        out.write(line)
        out.flush()
        fcntl.flock(out, fcntl.LOCK_UN)


def load(path: Path) -> dict[str, dict[str, Any]]:
    """Every run in the store, by run key (the last line of a key wins). A torn last line is skipped."""
    out: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        out[run_key(record)] = record
    return out


def merge(target: Path, sources: Iterable[Path]) -> int:
    """Append the runs of `sources` that `target` does not have (or has as errors). Returns how many."""
    have = load(target)
    added = 0
    for source in sources:
        for key, record in load(source).items():
            if key in have and "error" not in have[key]:
                continue
            append(target, record)
            have[key] = record
            added += 1
    return added


MEASURED = ("rollouts_dspy", "benchmarks/contenders", "benchmarks/worlds.py", "benchmarks/evaluator.py",
            "benchmarks/dspy_side.py", "benchmarks/worker.py", "benchmarks/metering.py", "benchmarks/scale.py",
            "benchmarks/metered_server.py", "benchmarks/breakdown.py")
"""The code a run's numbers depend on: the package and the harness parts that run or score it."""


def code_hash(root: Path) -> str:
    """A content hash of the MEASURED code (Python files): a stored run is reused only when this matches, so a
    changed engine is measured again while a changed report is not."""
    digest = hashlib.sha256()
    for part in MEASURED:
        path = root / part
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            digest.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def code_version(root: Path) -> str:
    """The commit the measured code is at ("+dirty" when the working tree differs from it)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *MEASURED], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")
