"""JSON files written atomically (saved templates and results): a crash mid-write leaves the previous file,
never half a new one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["write_json_atomic"]


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
