"""The LLM layer over real HTTP: retries with backoff on transient faults, none on permanent ones, the shared
concurrency limit, and token/cost accounting."""

from __future__ import annotations

import asyncio

import pytest

from rollouts_dspy import LLMCallError, LLMSession, Message
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
