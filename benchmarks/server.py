"""The scripted server in a subprocess: its CPU is not the optimizer's, so it must not count as ours.

`ServerProcess(latency=..., labels_file=...)` starts `python -m benchmarks.metered_server --port 0` (the scripted
server plus the critical-path meter), reads the base URL it prints, and offers `stats()` / `reset()` over HTTP
(GET /stats, POST /reset).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["ServerProcess", "server_stats", "reset_server"]

ROOT = Path(__file__).resolve().parents[1]


def server_stats(base_url: str) -> dict[str, Any]:
    root = base_url.rsplit("/v1", 1)[0]
    with urllib.request.urlopen(f"{root}/stats", timeout=10) as response:
        return json.loads(response.read())


def reset_server(base_url: str) -> None:
    root = base_url.rsplit("/v1", 1)[0]
    request = urllib.request.Request(f"{root}/reset", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


class ServerProcess:
    """A context manager around one scripted-server subprocess (127.0.0.1, a free port)."""

    def __init__(self, *, latency: float = 0.0, labels_file: str | Path | None = None,
                 capture: str | Path | None = None) -> None:
        self.latency = latency
        self.labels_file = labels_file
        self.capture = capture
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self) -> ServerProcess:
        cmd = [sys.executable, "-m", "benchmarks.metered_server", "--port", "0", "--latency", str(self.latency)]
        if self.labels_file is not None:
            cmd += ["--labels", str(self.labels_file)]
        if self.capture is not None:
            cmd += ["--capture", str(self.capture)]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                        cwd=ROOT)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"scripted server did not start (printed {line!r})")
        self.base_url = line
        deadline = time.monotonic() + 10
        while True:  # the URL is printed after bind; wait until /stats answers
            try:
                server_stats(self.base_url)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return self

    def stats(self) -> dict[str, Any]:
        return server_stats(self.base_url)

    def reset(self) -> None:
        reset_server(self.base_url)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
