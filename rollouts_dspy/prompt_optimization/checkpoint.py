"""JSON state files written atomically: a crash mid-write leaves the previous file, never half a new one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

__all__ = ["read_json_state", "write_json_atomic"]


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, indent: int | None = None) -> None:
    """Write `data` as JSON to `path` via a temp file in the same folder, fsync, then rename over it.
    `indent` makes a file meant for people (saved templates and results); checkpoints stay compact."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            if indent is None:
                json.dump(data, fh, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            else:
                fh.write(json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json_state(path: str | os.PathLike[str], *, kind: str, version: int) -> dict[str, Any] | None:
    """Read a state file written by `write_json_atomic`; None when it does not exist. A corrupted file, another
    kind's file or a newer version is a CheckpointError that says which file and what is wrong."""
    target = Path(path)
    if not target.exists():
        return None
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {target} is corrupted and cannot be resumed ({exc}); "
                              "delete it to start over") from None
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise CheckpointError(f"checkpoint {target} is not a {kind} checkpoint (kind={data.get('kind')!r})"
                              if isinstance(data, dict) else f"checkpoint {target} is not a JSON object")
    found = data.get("version")
    if not isinstance(found, int) or found > version:
        raise CheckpointError(f"checkpoint {target} has version {found!r}; this rollouts-dspy reads up to "
                              f"version {version}: upgrade rollouts-dspy or start a fresh run")
    return data
