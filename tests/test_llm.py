"""The LLM layer over real HTTP: retries with backoff on transient faults, none on permanent ones, the shared
concurrency limit, and token/cost accounting."""

from __future__ import annotations

import asyncio
import os

import pytest

from rollouts_dspy import Endpoint, LLMCallError, LLMSession, Message
from rollouts_dspy.providers import is_local_base
from rollouts_dspy.testing import FaultConfig, ScriptedServer
from tests.conftest import make_endpoint

HELLO = [Message("system", "Classify the query."), Message("user", "Query: my card has not arrived")]


@pytest.mark.parametrize("kind", ["429", "500", "malformed", "empty"])
async def test_transient_faults_are_retried_then_succeed(server, task_endpoint, kind):
    session = LLMSession()
    server.fail_next(2, kind)
    completion = await session.complete(task_endpoint, HELLO)
    assert completion.message.content  # the third attempt answered
    assert session.stats["task"].retries == 2 and session.stats["task"].failures == 0
    assert server.stats().requests_total == 3


async def test_timeouts_are_retried():
    with ScriptedServer(faults=FaultConfig(timeout_seconds=1.5)) as srv:
        endpoint = make_endpoint(srv, timeout=0.5)
        session = LLMSession()
        srv.fail_next(1, "timeout")
        completion = await session.complete(endpoint, HELLO)
        assert completion.message.content
        assert session.stats["task"].retries == 1


async def test_retries_are_bounded_and_the_failure_is_reported(server):
    endpoint = make_endpoint(server, max_retries=2)
    session = LLMSession()
    server.fail_next(10, "500")
    with pytest.raises(LLMCallError) as info:
        await session.complete(endpoint, HELLO)
    assert info.value.retryable and info.value.attempts == 3
    assert session.stats["task"].failures == 1 and session.stats["task"].retries == 2
    assert server.stats().requests_total == 3


@pytest.mark.parametrize(("kind", "name"), [("400", "BadRequestError"), ("context_length", "ContextWindowExceeded")])
async def test_a_permanent_error_is_not_retried(server, task_endpoint, kind, name):
    session = LLMSession()
    server.fail_next(1, kind)
    with pytest.raises(LLMCallError) as info:
        await session.complete(task_endpoint, HELLO)
    assert not info.value.retryable and name in info.value.kind
    assert server.stats().requests_total == 1 and session.stats["task"].retries == 0


async def test_concurrency_limit_is_shared_and_holds():
    with ScriptedServer(latency=0.05) as srv:
        endpoint = make_endpoint(srv)
        session = LLMSession(max_concurrent=8)
        reflect = make_endpoint(srv, "scripted-reflect")
        calls = [session.complete(endpoint, HELLO) for _ in range(30)]
        calls += [session.complete(reflect, HELLO, role="reflection") for _ in range(10)]
        await asyncio.gather(*calls)
        assert srv.stats().max_in_flight == 8
        assert session.stats["task"].calls == 30 and session.stats["reflection"].calls == 10


async def test_tokens_are_counted_and_priced_when_a_price_is_given(server):
    priced = make_endpoint(server, pricing=(1_000_000.0, 2_000_000.0))  # $1 per input token, $2 per output token
    session = LLMSession()
    completion = await session.complete(priced, HELLO)
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.cost_usd == pytest.approx(usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0)
    unpriced = await LLMSession().complete(make_endpoint(server), HELLO)
    assert unpriced.usage.cost_usd is None  # not in litellm's table: tokens only, never a made-up price


@pytest.fixture
def no_keys(monkeypatch):
    """An environment without any provider API key (what a fresh shell has)."""
    for name in list(os.environ):
        if name.endswith(("_API_KEY", "_ADMIN_KEY")):
            monkeypatch.delenv(name)


async def test_a_local_server_needs_no_api_key(server, no_keys):
    # The README's local-model example as written: vLLM, llama.cpp, LM Studio and Ollama serve without a key.
    keyless = Endpoint(provider="openai", model="scripted-task", api_base=server.base_url, max_retries=0)
    completion = await LLMSession().complete(keyless, HELLO)
    assert completion.message.content
    assert server.stats().requests_total == 1


@pytest.mark.parametrize(("endpoint", "variable"), [
    (dict(provider="openai", model="gpt-4o-mini"), "OPENAI_API_KEY"),
    (dict(provider="openai", model="some-model", api_base="https://llm.example.com/v1"), "OPENAI_API_KEY"),
    (dict(provider="anthropic", model="claude-3-5-haiku-20241022"), "ANTHROPIC_API_KEY"),
])
async def test_a_missing_api_key_fails_at_once_naming_the_variable(no_keys, endpoint, variable):
    session = LLMSession()
    with pytest.raises(LLMCallError) as info:
        await session.complete(Endpoint(**endpoint), HELLO)
    error = info.value
    # Not retried, no request sent, and not a server error: the fix is in the user's environment.
    assert error.kind == "missing_api_key" and not error.retryable and error.attempts == 0
    assert f"set {variable}" in error.message
    assert session.stats["task"].failures == 1 and session.stats["task"].retries == 0


async def test_an_empty_key_variable_is_a_missing_key_not_a_server_error(no_keys, monkeypatch):
    # The OpenAI client refuses to send without a key and litellm calls that a server error; it is not one.
    monkeypatch.setenv("OPENAI_API_KEY", "")
    session = LLMSession()
    endpoint = Endpoint(provider="openai", model="gpt-4o-mini", max_retries=3, retry_backoff=0.01)
    with pytest.raises(LLMCallError) as info:
        await session.complete(endpoint, HELLO)
    assert info.value.kind == "missing_api_key" and not info.value.retryable
    assert "OPENAI_API_KEY" in info.value.message and session.stats["task"].retries == 0


async def test_a_rejected_api_key_is_not_retried_and_says_whose_key(server, task_endpoint, no_keys):
    server.fail_next(1, "401")
    with pytest.raises(LLMCallError) as info:
        await LLMSession().complete(task_endpoint, HELLO)
    assert info.value.kind == "AuthenticationError" and not info.value.retryable
    assert "refused the Endpoint's api_key" in info.value.message
    assert server.stats().requests_total == 1
    # A local server that does want a key: the message says so instead of blaming a key nobody set.
    server.fail_next(1, "401")
    keyless = Endpoint(provider="openai", model="scripted-task", api_base=server.base_url, max_retries=2)
    with pytest.raises(LLMCallError) as info:
        await LLMSession().complete(keyless, HELLO)
    assert info.value.kind == "AuthenticationError" and f"server at {server.base_url} wants an API key" in str(
        info.value)
    assert server.stats().requests_total == 2


async def test_a_slow_but_healthy_server_fails_as_a_timeout():
    # The kind is what lets a run's error suggest raising Endpoint.timeout instead of calling the server down.
    with ScriptedServer(latency=1.0) as slow:
        endpoint = make_endpoint(slow, "scripted-reflect", timeout=0.2, max_retries=1)
        with pytest.raises(LLMCallError) as info:
            await LLMSession().complete(endpoint, HELLO, role="reflection")
        assert info.value.kind == "timeout" and info.value.retryable and info.value.attempts == 2


async def test_a_model_in_litellms_table_is_priced_from_it(server):
    import litellm

    session = LLMSession()
    completion = await session.complete(make_endpoint(server, "gpt-4o-mini"), HELLO)
    usage = completion.usage
    prompt_cost, completion_cost = litellm.cost_per_token(model="openai/gpt-4o-mini",
                                                          prompt_tokens=usage.prompt_tokens,
                                                          completion_tokens=usage.completion_tokens)
    assert usage.cost_usd == pytest.approx(prompt_cost + completion_cost) and usage.cost_usd > 0
    assert session.stats["task"].cost_known and session.stats["task"].cost_usd == pytest.approx(usage.cost_usd)


async def test_calls_leave_litellms_global_settings_alone(server, task_endpoint):
    # A DSPy program in the same process shares litellm: our per-call choices must not become its defaults.
    import litellm

    before = (litellm.drop_params, litellm.num_retries)
    await LLMSession().complete(task_endpoint, HELLO)
    assert (litellm.drop_params, litellm.num_retries) == before and litellm.drop_params is not True


@pytest.mark.parametrize(("api_base", "local"), [
    ("http://localhost:8000/v1", True), ("http://127.0.0.1:1234/v1", True), ("http://[::1]:8080/v1", True),
    ("http://192.168.1.20:8000/v1", True), ("http://10.0.0.5/v1", True), ("http://vllm:8000/v1", True),
    ("http://gpu-box.local:11434", True), ("http://host.docker.internal:1234/v1", True),
    ("https://api.openai.com/v1", False), ("https://8.8.8.8/v1", False), ("https://llm.example.com", False),
    (None, False), ("", False),
])
def test_which_servers_count_as_local(api_base, local):
    assert is_local_base(api_base) is local
