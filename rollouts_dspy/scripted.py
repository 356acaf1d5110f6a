"""The offline endpoint convention of run configs: `api_base = "scripted"` means "start the bundled scripted
OpenAI-compatible server (rollouts_dspy.testing) in this process and point the endpoint at it". No network, no
API key; the scripted task model follows rule lines in the prompt, so a better prompt really scores better.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["SCRIPTED_PORT_FILE", "scripted_server"]

SCRIPTED_PORT_FILE = "scripted-server.json"
"""Where an optimize run records the scripted server's port, so `--resume` restarts it at the same address."""


@contextlib.contextmanager
def scripted_server(config: Any, rows: Sequence[dict[str, Any]], run_dir: Path | None = None,
                    resume: bool = False) -> Iterator[str | None]:
    """Start the bundled scripted server when an endpoint says `api_base = "scripted"`; yields its base URL.

    With `run_dir`, the port is recorded there and reused on `resume`: the endpoint's address is part of what a
    GEPA checkpoint must agree on, so a resumed run needs the same one."""
    if not config.uses_scripted_server:
        yield None
        return
    from .testing import ScriptedServer

    record = None if run_dir is None else run_dir / SCRIPTED_PORT_FILE
    port = 0
    if resume and record is not None and record.exists():
        try:
            port = int(json.loads(record.read_text())["port"])
        except (ValueError, KeyError, TypeError):
            port = 0
    server = ScriptedServer(port=port, intent_world=_intent_world(config, rows))
    try:
        server.start()
    except OSError as exc:
        raise ConfigError(f"cannot restart the scripted server on port {port}, which this run used and its "
                          f"checkpoint expects ({exc}); free the port, or start over with a new --out") from None
    try:
        if record is not None:
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps({"port": server.port}) + "\n")
        yield server.base_url
    finally:
        server.stop()


def _intent_world(config: Any, rows: Sequence[dict[str, Any]]) -> Any:
    """The scripted task model answers with the world's labels; a dataset with its own intent labels (e.g.
    Banking77) gets a world of those labels so it runs offline too."""
    from .testing import QUICKSTART_INTENTS, IntentWorld

    label = config.dataset.label
    labels = [row[label] for row in rows] if label else []
    if not labels or not all(isinstance(x, str) and x.strip() for x in labels):
        return None
    distinct = list(dict.fromkeys(labels))
    if set(distinct) <= set(QUICKSTART_INTENTS) or len(distinct) > 500:
        return None
    if len({x.lower() for x in distinct}) != len(distinct):
        return None
    return IntentWorld(labels=tuple(distinct))
