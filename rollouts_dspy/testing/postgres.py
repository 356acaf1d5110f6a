"""A throwaway PostgreSQL server for tests and benchmarks (like ScriptedServer, a testing tool: nothing in the
optimizers knows it exists).

    with TempPostgres() as pg:
        storage = optuna.storages.RDBStorage(pg.url)   # postgresql://postgres@127.0.0.1:PORT/rollouts

It runs the distribution's server binaries (`initdb`, `pg_ctl`: on PATH or under /usr/lib/postgresql/*/bin, as
Debian's `postgresql` package installs them) in a fresh data directory on a free loopback port, or, when there
are none, the server packaged by `pgserver` (pip). PostgreSQL refuses to run as root, so as root the server runs
as the `postgres` system user the distribution's package creates. Stopping it deletes everything.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["INSTALL_POSTGRES", "PostgresUnavailable", "TempPostgres", "find_server_binaries"]

INSTALL_POSTGRES = ("install a PostgreSQL server: `apt-get install postgresql` (Debian/Ubuntu; its binaries live in "
                    "/usr/lib/postgresql/<version>/bin) or `pip install pgserver`")
DATABASE = "rollouts"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be found or started; the message says what to install or what failed."""


def find_server_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: from PATH, else the newest /usr/lib/postgresql/*/bin."""
    initdb = shutil.which("initdb")
    if initdb:
        folder = Path(initdb).resolve().parent
        if (folder / "pg_ctl").exists():
            return folder
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: [int(x) for x in Path(p).parent.parent.name.split(".") if x.isdigit()])
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempPostgres:
    """Start with `start()` (or `with`), read `url`, `stop()` when done."""

    def __init__(self, database: str = DATABASE) -> None:
        self.database = database
        self.url = ""
        self._dir: Path | None = None
        self._bin: Path | None = None
        self._run_as: list[str] = []
        self._pgserver: Any = None

    def __enter__(self) -> TempPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        """Start the server; returns its URL. Raises PostgresUnavailable saying what to install or what failed."""
        self._bin = find_server_binaries()
        if self._bin is not None:
            self.url = self._start_binaries(self._bin)
        else:
            self.url = self._start_pgserver()
        return self.url

    # -- the distribution's binaries ------------------------------------------------------------------------
    def _start_binaries(self, bindir: Path) -> str:
        self._dir = Path(tempfile.mkdtemp(prefix="rollouts-pg-"))
        data = self._dir / "data"
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(f"PostgreSQL cannot run as root and there is no 'postgres' user to run "
                                          f"it as: {INSTALL_POSTGRES}") from None
            os.chown(self._dir, user.pw_uid, user.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]
        port = _free_port()
        self._run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--no-sync"], "initdb")
        options = (f"-p {port} -k {self._dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        self._run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(self._dir / "server.log"), "-w", "-t", "60",
                   "-o", options, "start"], "pg_ctl start")
        self._run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", self.database],
                  "createdb")
        return f"postgresql://postgres@127.0.0.1:{port}/{self.database}"

    def _run(self, command: list[str], what: str) -> None:
        done = subprocess.run([*self._run_as, *command], capture_output=True, text=True, timeout=120, cwd=self._dir)
        if done.returncode != 0:
            log = self._dir / "server.log" if self._dir else None
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise PostgresUnavailable(f"{what} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}"
                                      f"{' | server log: ' + tail if tail else ''}")

    # -- pip's pgserver -------------------------------------------------------------------------------------
    def _start_pgserver(self) -> str:
        try:
            import pgserver
        except ImportError:
            raise PostgresUnavailable(f"no PostgreSQL server found (no initdb on PATH or under "
                                      f"/usr/lib/postgresql/*/bin, no pgserver package): {INSTALL_POSTGRES}") from None
        self._dir = Path(tempfile.mkdtemp(prefix="rollouts-pgserver-"))
        self._pgserver = pgserver.get_server(self._dir, cleanup_mode="delete")
        self._pgserver.psql(f"CREATE DATABASE {self.database};")
        # e.g. postgresql://postgres:@/postgres?host=/tmp/dir: the same server, our database.
        uri = self._pgserver.get_uri()
        base, _, query = uri.partition("?")
        return f"{base.rsplit('/', 1)[0]}/{self.database}{'?' + query if query else ''}"

    def stop(self) -> None:
        """Stop the server at once and delete its data."""
        try:
            if self._pgserver is not None:
                self._pgserver.cleanup()
                self._pgserver = None
            elif self._bin is not None and self._dir is not None and (self._dir / "data" / "postmaster.pid").exists():
                self._run([str(self._bin / "pg_ctl"), "-D", str(self._dir / "data"), "-m", "immediate", "-w", "stop"],
                          "pg_ctl stop")
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
