"""API keys never leak: optimizations run with a recognisable fake key (faults on, so errors are recorded; and a
provider that echoes the key back in its error messages), then every file they wrote, all captured output and
logs, exception messages and reprs are searched for it."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from reliability_helpers import DATA, FAKE_KEY, WEAK, config_for, endpoints, intent_score, run

from rollouts_dspy.io import save_result
from rollouts_dspy.llm import LLMCallError, LLMSession
from rollouts_dspy.prompt_optimization.evaluation import (
    ProviderUnavailableError,
    SharedEvaluation,
    evaluate_detailed,
)
from rollouts_dspy.testing import FaultConfig, ScriptedServer

METHODS = ["gepa", "mipro"]


def leaks(text: str) -> bool:
    # The whole key, or a long enough piece of it to identify it (providers often show a prefix and a suffix).
    return FAKE_KEY in text or FAKE_KEY[3:] in text or FAKE_KEY[-12:] in text


def files_with_key(*folders: Path) -> list[str]:
    found = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and leaks(path.read_bytes().decode("utf-8", "replace")):
                found.append(str(path))
    return found


class _EchoingProvider(BaseHTTPRequestHandler):
    """A provider that rejects every request and quotes the caller's key in its error (some really do)."""

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        status = self.server.status  # type: ignore[attr-defined]
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}. You passed {key}.",
                                     "type": "invalid_request_error", "code": "invalid_api_key"}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class echoing_provider:  # noqa: N801 - used as a context manager like ScriptedServer
    def __init__(self, status: int) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingProvider)
        self.httpd.status = status  # type: ignore[attr-defined]
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> echoing_provider:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def all_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.mark.parametrize("method", METHODS)
async def test_an_optimization_on_a_flaky_provider_writes_no_key(method, tmp_path, capsys, all_logs):
    faults = FaultConfig(rate=0.2, seed=3, timeout_seconds=1.0,
                         kinds=("429", "500", "timeout", "malformed", "empty", "context_length", "400"))
    with ScriptedServer(faults=faults) as bad:
        result = await run(method, bad, config_for(method, tmp_path), api_key=FAKE_KEY, progress=True)
    save_result(result, tmp_path / "result.json")
    assert not files_with_key(tmp_path)
    out = capsys.readouterr()
    assert not leaks(out.out + out.err)
    assert not leaks(all_logs.text)
    assert not leaks(repr(result)) and not leaks(str(result.config)) and not leaks(str(result.usage))


@pytest.mark.parametrize("status", [401, 400, 500])
async def test_a_provider_that_echoes_the_key_in_errors_is_redacted(status, tmp_path, capsys, all_logs):
    with echoing_provider(status) as provider:
        task, _ = endpoints(provider, api_key=FAKE_KEY, max_retries=1)
        session = LLMSession(max_concurrent=2)
        with pytest.raises(LLMCallError) as caught:
            from rollouts_dspy.dtypes import Message

            await session.complete(task, [Message("user", "hi")])
        assert not leaks(str(caught.value)) and not leaks(repr(caught.value)) and not leaks(caught.value.message)
        report = await evaluate_detailed(WEAK, [0, 1, 2], DATA, task, intent_score,
                                         shared=SharedEvaluation(session=session))
        for rollout in report.rollouts:
            assert rollout.error is not None and not leaks(rollout.error.detail) and not leaks(repr(rollout))
    out = capsys.readouterr()
    assert not leaks(out.out + out.err) and not leaks(all_logs.text)
    assert not leaks(repr(task)) and not leaks(str(task.to_dict())) and not leaks(task.identity())
    assert not leaks(repr(session))


@pytest.mark.parametrize("method", METHODS)
async def test_an_outage_error_that_quotes_the_key_is_redacted(method, tmp_path, capsys, all_logs):
    with echoing_provider(500) as provider:
        with pytest.raises(ProviderUnavailableError) as caught:
            await run(method, provider, config_for(method, tmp_path), api_key=FAKE_KEY, progress=True,
                      endpoint_overrides={"max_retries": 1})
    assert not leaks(str(caught.value)) and not leaks(repr(caught.value))
    assert not files_with_key(tmp_path)
    out = capsys.readouterr()
    assert not leaks(out.out + out.err) and not leaks(all_logs.text)


def test_a_dspy_teleprompter_writes_no_key(tmp_path, capsys, all_logs):
    dspy = pytest.importorskip("dspy")
    from rollouts_dspy.dspy_integration.data import rows_to_examples
    from rollouts_dspy.dspy_integration.gepa import RolloutsGEPA

    examples = rows_to_examples(DATA, ["query"])
    with ScriptedServer(faults=FaultConfig(rate=0.2, seed=6, timeout_seconds=1.0)) as bad:
        lm = dspy.LM("openai/scripted-task", api_base=bad.base_url, api_key=FAKE_KEY, cache=False, num_retries=3,
                     timeout=0.5)
        with dspy.context(lm=lm):
            program = RolloutsGEPA(reflection_lm=lm, max_metric_calls=60, log_dir=str(tmp_path / "log")).compile(
                dspy.Predict("query -> intent"), trainset=examples[:12], valset=examples[12:20])
    result = program.optimization_result if hasattr(program, "optimization_result") else None
    if result is not None:
        save_result(result, tmp_path / "result.json")
        assert not leaks(repr(result))
    program.save(str(tmp_path / "program.json"))
    assert not files_with_key(tmp_path)
    out = capsys.readouterr()
    assert not leaks(out.out + out.err) and not leaks(all_logs.text)


def test_repr_of_endpoint_and_session_hide_the_key():
    task, reflect = endpoints(ScriptedServer(), api_key=FAKE_KEY)
    assert not leaks(repr(task)) and not leaks(str(task)) and not leaks(json.dumps(task.to_dict()))
    assert not leaks(repr(reflect))


def test_a_dspy_teleprompter_redacts_a_key_the_provider_echoes(tmp_path, capsys, all_logs):
    dspy = pytest.importorskip("dspy")
    from rollouts_dspy.dspy_integration.data import rows_to_examples
    from rollouts_dspy.dspy_integration.gepa import RolloutsGEPA

    examples = rows_to_examples(DATA, ["query"])
    with echoing_provider(500) as provider:
        lm = dspy.LM("openai/scripted-task", api_base=provider.base_url, api_key=FAKE_KEY, cache=False,
                     num_retries=1)
        with dspy.context(lm=lm), pytest.raises(ProviderUnavailableError) as caught:
            RolloutsGEPA(reflection_lm=lm, max_metric_calls=60, log_dir=str(tmp_path / "log")).compile(
                dspy.Predict("query -> intent"), trainset=examples[:12], valset=examples[12:20])
    assert not leaks(str(caught.value))
    assert not files_with_key(tmp_path)
    out = capsys.readouterr()
    assert not leaks(out.out + out.err) and not leaks(all_logs.text)
