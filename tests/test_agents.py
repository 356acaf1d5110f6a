"""The agent loop on the calculator world, over real HTTP: tool calls executed and fed back, completion by tool,
max_turns, tool errors shown to the model, and environments that break."""

from __future__ import annotations

import os

import pytest

from rollouts_dspy import (
    CalculatorEnvironment,
    Endpoint,
    LLMCallError,
    Message,
    ToolCall,
    ToolResult,
    run_agent,
    run_completion,
)
from rollouts_dspy.agents import AgentError
from rollouts_dspy.llm import MissingAPIKeyError

AGENT_SYSTEM = (
    "Solve the arithmetic problem. Use the calculator tools for every arithmetic step, then call complete_task."
)


async def test_agent_solves_by_tool_calls_and_stops_when_the_task_is_complete(task_endpoint):
    env = CalculatorEnvironment()
    messages = [Message("system", AGENT_SYSTEM), Message("user", "Start with 12. Add 7. Multiply by 3.")]
    trajectory = await run_agent(messages, task_endpoint, env, max_turns=10)
    assert env.history == ["add", "add", "multiply", "complete_task"]
    assert float(env.final_result) == 57.0
    assert trajectory.metadata["stop_reason"] == "task_complete"
    tool_messages = [m for m in trajectory.messages if m.role == "tool"]
    assert tool_messages[-2].content == "current value: 57"
    assert len(trajectory.usage) == 4 and trajectory.total_usage.total_tokens > 0


async def test_agent_stops_when_the_model_answers_without_tools(task_endpoint):
    env = CalculatorEnvironment()
    messages = [Message("system", "Answer the math question."), Message("user", "Start with 2. Add 3.")]
    trajectory = await run_agent(messages, task_endpoint, env)
    assert env.history == [] and trajectory.metadata["stop_reason"] == "answered"
    assert "5" in trajectory.final_text


async def test_max_turns_bounds_the_loop(task_endpoint):
    env = CalculatorEnvironment()
    messages = [Message("system", AGENT_SYSTEM), Message("user", "Start with 1. Add 1. Add 1. Add 1. Add 1.")]
    trajectory = await run_agent(messages, task_endpoint, env, max_turns=2)
    assert len(trajectory.usage) == 2 and env.final_result is None
    assert trajectory.metadata["stop_reason"] == "max_turns"
    with pytest.raises(ValueError, match="max_turns must be >= 1"):
        await run_agent(messages, task_endpoint, env, max_turns=0)


async def test_division_by_zero_is_a_tool_error_the_model_sees(task_endpoint):
    env = CalculatorEnvironment()
    messages = [Message("system", AGENT_SYSTEM), Message("user", "Start with 4. Divide by 0. Add 1.")]
    trajectory = await run_agent(messages, task_endpoint, env)
    assert any(m.role == "tool" and "division by zero" in m.content for m in trajectory.messages)
    assert env.final_result == "error"


async def test_calculator_rejects_bad_calls_without_raising():
    env = CalculatorEnvironment()
    assert (await env.exec_tool(ToolCall("1", "add", {}))).is_error
    assert (await env.exec_tool(ToolCall("2", "sqrt", {"value": 4}))).is_error
    assert (await env.exec_tool(ToolCall("3", "divide", {"value": 0}))).content == "Error: division by zero"
    assert (await env.exec_tool(ToolCall("4", "add", {"value": 2.5}))).content == "current value: 2.5"
    assert (await env.exec_tool(ToolCall("5", "clear", {}))).content == "current value: 0"


class BrokenEnvironment(CalculatorEnvironment):
    async def exec_tool(self, call: ToolCall) -> ToolResult:
        raise RuntimeError("disk full")


async def test_an_environment_that_raises_is_reported_with_the_partial_trajectory(task_endpoint):
    messages = [Message("system", AGENT_SYSTEM), Message("user", "Start with 1. Add 2.")]
    with pytest.raises(AgentError) as info:
        await run_agent(messages, task_endpoint, BrokenEnvironment())
    assert info.value.kind == "environment_error" and "disk full" in info.value.message
    assert info.value.trajectory.messages[-1].tool_calls  # the call that broke it is kept


async def test_run_completion_returns_prompt_plus_answer(task_endpoint):
    messages = [Message("system", "Classify."), Message("user", "Query: I want a refund")]
    trajectory = await run_completion(messages, task_endpoint)
    assert trajectory.messages[:2] == tuple(messages) and trajectory.messages[2].role == "assistant"


@pytest.mark.parametrize("loop", ["completion", "agent"])
async def test_a_missing_api_key_is_not_a_failed_rollout(loop, monkeypatch):
    # Every call would fail the same way: the error reaches the run (which stops, naming the variable) instead of
    # becoming an AgentError that a Task would score as this sample's failure.
    for name in [n for n in os.environ if n.endswith("_API_KEY")]:
        monkeypatch.delenv(name)
    endpoint = Endpoint(provider="openai", model="gpt-4o-mini")
    messages = [Message("system", AGENT_SYSTEM), Message("user", "Start with 2. Add 3.")]
    with pytest.raises(MissingAPIKeyError) as info:
        if loop == "completion":
            await run_completion(messages, endpoint)
        else:
            await run_agent(messages, endpoint, CalculatorEnvironment())
    assert info.value.kind == "missing_api_key" and "set OPENAI_API_KEY" in info.value.message
    assert not isinstance(info.value, AgentError) and isinstance(info.value, LLMCallError)
