"""The scripted server as the benchmark runs it: `python -m benchmarks.metered_server --port 0 --latency L`.

The same `ScriptedServer` the tests use (same policies, same answers), plus a meter the harness needs and the
server does not offer: the (start, end) time of every completion request, from which `GET /stats` also reports the
run's dependent rounds (`critical_path.rounds`) overall and per model. Optionally (`--capture FILE`) the body
and answer of every reflection/proposal request are appended to FILE as JSON lines (the scripted-world audit reads
them). Everything here wraps the server from the outside; nothing in `rollouts_dspy.testing` is changed.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rollouts_dspy.testing import IntentWorld, ScriptedServer, ServerStats
from rollouts_dspy.testing.policies import is_reflection_model

from .critical_path import rounds

__all__ = ["MeteredServer", "main"]


@dataclass(frozen=True)
class MeteredStats(ServerStats):
    critical_path: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "critical_path": dict(self.critical_path)}


class MeteredServer(ScriptedServer):
    """ScriptedServer that records when each completion request started and finished."""

    def __init__(self, *, capture: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._spans: list[tuple[float, float, bool]] = []  # (start, end, is_reflection)
        self._span_lock = threading.Lock()
        self._capture = capture

    def _handle_completion(self, handler: Any, raw: bytes) -> None:
        start = time.monotonic()
        try:
            super()._handle_completion(handler, raw)
        finally:
            end = time.monotonic()
            try:
                request = json.loads(raw or b"{}")
            except ValueError:
                request = {}
            reflection = isinstance(request, dict) and is_reflection_model(str(request.get("model", "")))
            with self._span_lock:
                self._spans.append((start, end, reflection))
            if reflection and self._capture:
                self._record(request)

    def _record(self, request: dict[str, Any]) -> None:
        from rollouts_dspy.testing import respond

        answer = respond(request, self.config).content
        with self._span_lock, open(self._capture, "a", encoding="utf-8") as out:
            out.write(json.dumps({"messages": request.get("messages"), "answer": answer}) + "\n")

    def stats(self) -> ServerStats:
        base = super().stats()
        with self._span_lock:
            spans = list(self._spans)
        path = rounds([(s, e) for s, e, _ in spans])
        path["reflection_requests"] = sum(1 for *_, r in spans if r)
        path["wall_of_requests_s"] = (max(e for _, e, _ in spans) - min(s for s, _, _ in spans)) if spans else 0.0
        return MeteredStats(**{k: getattr(base, k) for k in base.__dataclass_fields__}, critical_path=path)

    def reset_stats(self) -> None:
        super().reset_stats()
        with self._span_lock:
            self._spans.clear()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The scripted server with a critical-path meter.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--labels", help="JSON file with the intent labels (a list of strings)")
    parser.add_argument("--capture", help="append reflection/proposal requests and answers to this JSONL file")
    args = parser.parse_args(argv)
    world = None
    if args.labels:
        with open(args.labels, encoding="utf-8") as f:
            world = IntentWorld(labels=tuple(json.load(f)))
    server = MeteredServer(port=args.port, latency=args.latency, intent_world=world, capture=args.capture)
    server.start()
    print(server.base_url, flush=True)
    try:
        threading.Event().wait()  # serve until the harness terminates this process
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
