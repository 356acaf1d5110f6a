"""`SharedStudy`: where a shared study lives and how one worker takes part in it. Pure (no database import), so a
config can name a study without loading SQLAlchemy."""

from __future__ import annotations

import math
import os
import re
import socket
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["DEFAULT_LEASE_SECONDS", "SharedStudy", "mask_url"]

DEFAULT_LEASE_SECONDS = 30.0
"""How long a worker's claims outlive its last heartbeat (it beats every quarter of this): after a worker is killed,
the others take over its claims this long after its last beat. Long enough that a busy machine never misses it."""

MIN_LEASE_SECONDS = 1.0
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***: fit for messages and stored configs."""
    return _PASSWORD.sub(r"\1***@", url)


@dataclass(frozen=True, kw_only=True)
class SharedStudy:
    """One search shared by any number of worker processes through a PostgreSQL database.

    `storage` is the database (`postgresql://USER[:PASSWORD]@HOST:PORT/DB`; also Optuna's storage), `name` the
    study: every worker started with the same storage, name and config joins the same search. `worker` names this
    process in the database (default: HOST-PID); `lease_seconds` is how long its claims survive it when it dies.
    """

    storage: str
    name: str
    worker: str | None = None
    lease_seconds: float = DEFAULT_LEASE_SECONDS

    def __post_init__(self) -> None:
        if not isinstance(self.storage, str) or not self.storage.startswith("postgresql") or "://" not in self.storage:
            shown = mask_url(self.storage) if isinstance(self.storage, str) else self.storage
            raise ConfigError(f"SharedStudy.storage must be a PostgreSQL URL such as "
                              f"'postgresql://user@host:5432/rollouts', but got {shown!r} (a shared study needs a "
                              "database server every worker can reach; SQLite serves one process)")
        for name in ("name", "worker"):
            value = getattr(self, name)
            if value is None and name == "worker":
                continue
            if not isinstance(value, str) or not value.strip() or len(value) > 200 or not value.isprintable():
                raise ConfigError(f"SharedStudy.{name} must be a printable string of 1 to 200 characters, but got "
                                  f"{value!r}")
        lease = self.lease_seconds
        if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not math.isfinite(lease) \
                or lease < MIN_LEASE_SECONDS:
            raise ConfigError(f"SharedStudy.lease_seconds must be a number >= {MIN_LEASE_SECONDS}, but got {lease!r}")

    @property
    def worker_name(self) -> str:
        """This process's name in the study (read when the worker joins, in the process that joins)."""
        return self.worker or f"{socket.gethostname()}-{os.getpid()}"

    def to_dict(self) -> dict[str, Any]:
        return {"storage": mask_url(self.storage), "name": self.name, "worker": self.worker,
                "lease_seconds": self.lease_seconds}
