"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 (stdlib only, one thread per request).

    with ScriptedServer(latency=0.05) as server:
        litellm.completion(model="openai/scripted-task", api_base=server.base_url, api_key="scripted", ...)

Endpoints: POST /v1/chat/completions (and /chat/completions), GET /v1/models, GET /stats, POST /reset.
Run in the foreground with `python -m rollouts_dspy.testing.server --port 8000`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._text import approx_tokens, message_text
from .faults import FaultConfig, FaultPlan
from .policies import PolicyConfig, PolicyReply, model_name, respond
from .worlds import CalculatorWorld, IntentWorld

__all__ = ["ScriptedServer", "ServerStats", "main"]

_CREATED = 1_700_000_000  # fixed so answers are a pure function of the request


@dataclass(frozen=True)
class ServerStats:
    """Counters since start or the last reset. `max_in_flight` counts requests being handled at once, latency and
    fault stalls included; tokens are counted for successful completions only."""

    requests_total: int = 0
    requests_by_model: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "requests_by_model": dict(self.requests_by_model),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "faults_injected": dict(self.faults_injected),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.total = 0
        self.by_model: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.faults: Counter[str] = Counter()
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def snapshot(self) -> ServerStats:
        with self.lock:
            return ServerStats(
                self.total,
                dict(self.by_model),
                self.in_flight,
                self.max_in_flight,
                dict(self.faults),
                self.prompt_tokens,
                self.completion_tokens,
            )


def _completion(request: dict[str, Any], reply: PolicyReply) -> tuple[dict[str, Any], int, int]:
    """The chat.completion object for `reply`, with (prompt_tokens, completion_tokens)."""
    digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    finish = "stop"
    generated = reply.content
    if reply.tool_call is not None:
        arguments = json.dumps(dict(reply.tool_call.arguments))
        n_calls = sum(len(m.get("tool_calls") or ()) for m in request.get("messages") or () if isinstance(m, dict))
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": f"call_{n_calls + 1}",
                "type": "function",
                "function": {"name": reply.tool_call.name, "arguments": arguments},
            }
        ]
        finish, generated = "tool_calls", reply.tool_call.name + arguments
    prompt_text = "".join(message_text(m) for m in request.get("messages") or () if isinstance(m, dict))
    usage = (approx_tokens(prompt_text), approx_tokens(generated))
    n = max(1, int(request.get("n") or 1))
    body = {
        "id": f"chatcmpl-{digest[:24]}",
        "object": "chat.completion",
        "created": _CREATED,
        "model": str(request.get("model", "")),
        "system_fingerprint": "scripted",
        "choices": [{"index": i, "message": message, "finish_reason": finish, "logprobs": None} for i in range(n)],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }
    return body, usage[0], usage[1]


def _sse_events(body: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """The chat.completion.chunk events equivalent to `body`."""
    base = {"id": body["id"], "object": "chat.completion.chunk", "created": body["created"], "model": body["model"]}
    events = []
    for choice in body["choices"]:
        delta: dict[str, Any] = {"role": "assistant", "content": choice["message"]["content"] or ""}
        if choice["message"].get("tool_calls"):
            delta["tool_calls"] = [{"index": 0, **call} for call in choice["message"]["tool_calls"]]
        events.append({**base, "choices": [{"index": choice["index"], "delta": delta, "finish_reason": None}]})
        events.append(
            {**base, "choices": [{"index": choice["index"], "delta": {}, "finish_reason": choice["finish_reason"]}]}
        )
    if include_usage:
        events.append({**base, "choices": [], "usage": body["usage"]})
    return events


def _error_body(message: str, kind: str, code: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": code, "param": None}}).encode()


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    # Small JSON answers on keep-alive connections: without TCP_NODELAY each one waits on the client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's parameter name
        pass  # quiet: tests and benchmarks read stats(), not access logs

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. a timeout fault); nothing left to do

    def _send_stream(self, events: list[dict[str, Any]]) -> None:
        payload = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        body = payload.encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        owner = self.server.owner
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            models = [
                {"id": name, "object": "model", "owned_by": "scripted"}
                for name in ("scripted-task", "scripted-reflect")
            ]
            self._send(200, json.dumps({"object": "list", "data": models}).encode())
        elif self.path.rstrip("/") == "/stats":
            self._send(200, json.dumps(owner.stats().to_dict()).encode())
        else:
            self._send(404, _error_body(f"no route {self.path}", "invalid_request_error", "not_found"))

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/reset":
            self.server.owner.reset_stats()
            self._send(200, b'{"ok": true}')
        elif path in ("/v1/chat/completions", "/chat/completions"):
            self.server.owner._handle_completion(self, raw)
        else:
            self._send(404, _error_body(f"no route {self.path}", "invalid_request_error", "not_found"))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # listen backlog: a burst of 64+ connections must not be refused
    owner: ScriptedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-request (Ctrl-C, a cancelled task, a client timeout) is normal for a test
        # server; only real handler bugs deserve the stdlib's traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class ScriptedServer:
    """The scripted OpenAI-compatible server. A context manager; `start()` binds and serves in a daemon thread.

    Model routing and policies: see `rollouts_dspy.testing.policies`. `down=True` answers every completion with
    503 (`server.down` may be flipped while running).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        faults: FaultConfig | None = None,
        intent_world: IntentWorld | None = None,
        calculator_world: CalculatorWorld | None = None,
        down: bool = False,
    ) -> None:
        if latency < 0:
            raise ValueError(f"latency must be >= 0, but got {latency!r}")
        self.host, self.port, self.latency, self.down = host, port, latency, down
        self.faults = faults or FaultConfig()
        self.config = PolicyConfig(
            intent_world=intent_world or IntentWorld(), calculator_world=calculator_world or CalculatorWorld()
        )
        self._plan = FaultPlan(self.faults)
        self._counters = _Counters()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> ScriptedServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, name="scripted-llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes handler threads stalled in a latency or timeout sleep
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- counters and fault control -------------------------------------------------------------------------------
    def stats(self) -> ServerStats:
        return self._counters.snapshot()

    def reset_stats(self) -> None:
        """Zero the counters and restart the fault sequence from the seed."""
        with self._counters.lock:
            self._counters.reset()
        self._plan.reset()

    def fail_next(self, n: int, kind: str) -> None:
        """Force the next `n` completion requests to fault with `kind` (one of FAULT_KINDS)."""
        self._plan.fail_next(n, kind)

    # -- request handling -----------------------------------------------------------------------------------------
    def _handle_completion(self, handler: _Handler, raw: bytes) -> None:
        counters = self._counters
        try:
            request = json.loads(raw or b"{}")
            if not isinstance(request, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as error:
            handler._send(400, _error_body(f"invalid JSON body: {error}", "invalid_request_error", "bad_json"))
            return
        with counters.lock:
            counters.total += 1
            counters.by_model[model_name(request.get("model"))] += 1
            counters.in_flight += 1
            counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        try:
            self._answer(handler, request)
        finally:
            with counters.lock:
                counters.in_flight -= 1

    def _answer(self, handler: _Handler, request: dict[str, Any]) -> None:
        if self.latency:
            self._stopping.wait(self.latency)
        if self.down:
            handler._send(503, _error_body("scripted server is down", "server_error", "service_unavailable"))
            return
        _, fault = self._plan.next_fault(model_name(request.get("model")))
        if fault is not None:
            with self._counters.lock:
                self._counters.faults[fault] += 1
            if fault != "timeout" and fault != "empty":
                self._send_fault(handler, fault)
                return
            if fault == "timeout":
                self._stopping.wait(self.faults.timeout_seconds)
        reply = PolicyReply("") if fault == "empty" else respond(request, self.config)
        body, prompt_tokens, completion_tokens = _completion(request, reply)
        with self._counters.lock:
            self._counters.prompt_tokens += prompt_tokens
            self._counters.completion_tokens += completion_tokens
        if request.get("stream"):
            include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
            handler._send_stream(_sse_events(body, include_usage))
        else:
            handler._send(200, json.dumps(body).encode())

    def _send_fault(self, handler: _Handler, fault: str) -> None:
        if fault == "429":
            seconds = self.faults.retry_after_seconds
            headers = {"Retry-After": f"{seconds:g}", "retry-after-ms": str(int(seconds * 1000))}
            message = f"Rate limit reached (scripted fault). Please retry after {seconds:g}s."
            handler._send(429, _error_body(message, "rate_limit_error", "rate_limit_exceeded"), headers)
        elif fault == "500":
            handler._send(500, _error_body("Internal server error (scripted fault)", "server_error", "internal_error"))
        elif fault == "400":
            body = _error_body("Invalid request (scripted fault)", "invalid_request_error", "invalid_value")
            handler._send(400, body)
        elif fault == "401":
            # OpenAI's wording for a wrong key (litellm maps it to AuthenticationError); the key is not echoed.
            body = _error_body("Incorrect API key provided. (scripted fault)", "invalid_request_error",
                               "invalid_api_key")
            handler._send(401, body)
        elif fault == "context_length":
            # OpenAI's wording, which litellm maps to ContextWindowExceededError.
            message = ("This model's maximum context length is 128 tokens. However, your messages resulted in "
                       "4096 tokens. Please reduce the length of the messages. (scripted fault)")
            handler._send(400, _error_body(message, "invalid_request_error", "context_length_exceeded"))
        else:  # malformed: a 200 whose body is not valid JSON
            handler._send(200, b'{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{"mess')


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the scripted OpenAI-compatible LLM server in the foreground.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--fault-kinds", default=",".join(FaultConfig().kinds), help="comma-separated")
    parser.add_argument("--fault-seed", type=int, default=0)
    parser.add_argument("--timeout-seconds", type=float, default=3.0, help="stall of a 'timeout' fault")
    parser.add_argument("--labels", help="JSON file with the intent labels (a list of strings)")
    parser.add_argument("--down", action="store_true", help="answer every completion with 503")
    args = parser.parse_args(argv)
    faults = FaultConfig(
        rate=args.fault_rate,
        kinds=tuple(k for k in args.fault_kinds.split(",") if k),
        seed=args.fault_seed,
        timeout_seconds=args.timeout_seconds,
    )
    world = None
    if args.labels:
        with open(args.labels, encoding="utf-8") as f:
            world = IntentWorld(labels=tuple(json.load(f)))
    server = ScriptedServer(
        host=args.host, port=args.port, latency=args.latency, faults=faults, intent_world=world, down=args.down
    )
    server.start()
    print(server.base_url, flush=True)
    try:
        while server._thread is not None and server._thread.is_alive():
            server._thread.join(timeout=1.0)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
