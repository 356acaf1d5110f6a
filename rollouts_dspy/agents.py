"""Running a conversation: one completion for plain tasks, a bounded tool loop for agents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .dtypes import Endpoint, Environment, Message, ToolCall, ToolResult, Trajectory, Usage
from .llm import LLMCallError, LLMSession, MissingAPIKeyError

__all__ = ["AgentError", "run_agent", "run_completion"]

DEFAULT_MAX_TURNS = 10


class AgentError(Exception):
    """A rollout that broke part-way. `trajectory` holds what happened before; `kind` says what broke.

    A missing API key is not a broken rollout but the run's configuration: `MissingAPIKeyError` propagates as
    is, so a run stops at its first call with the variable to set instead of scoring every sample 0."""

    def __init__(self, kind: str, message: str, trajectory: Trajectory, *, retryable: bool = False) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.trajectory = trajectory
        self.retryable = retryable


async def run_completion(
    messages: Sequence[Message], endpoint: Endpoint, *, session: LLMSession | None = None, role: str = "task"
) -> Trajectory:
    """Call the model once; the trajectory is the prompt plus its answer."""
    session = session or LLMSession()
    try:
        completion = await session.complete(endpoint, messages, role=role)
    except MissingAPIKeyError:
        raise
    except LLMCallError as exc:
        raise AgentError(exc.kind, exc.message, Trajectory(tuple(messages)), retryable=exc.retryable) from exc
    return Trajectory(tuple(messages) + (completion.message,), (completion.usage,))


async def run_agent(
    messages: Sequence[Message],
    endpoint: Endpoint,
    environment: Environment,
    max_turns: int = DEFAULT_MAX_TURNS,
    *,
    session: LLMSession | None = None,
    role: str = "task",
) -> Trajectory:
    """Let the model call the environment's tools until it answers without a tool call, a tool says the task is
    complete, or `max_turns` model calls were made. Tool errors are shown to the model, not raised.
    """
    if max_turns < 1:
        raise ValueError(f"max_turns must be >= 1, but got {max_turns!r}")
    session = session or LLMSession()
    tools = tuple(environment.get_tools())
    history = list(messages)
    usage: list[Usage] = []
    stop_reason = "max_turns"
    for _turn in range(max_turns):
        try:
            completion = await session.complete(endpoint, history, tools=tools, role=role)
        except MissingAPIKeyError:
            raise
        except LLMCallError as exc:
            partial = Trajectory(tuple(history), tuple(usage), {"stop_reason": "llm_error"})
            raise AgentError(exc.kind, exc.message, partial, retryable=exc.retryable) from exc
        history.append(completion.message)
        usage.append(completion.usage)
        if not completion.message.tool_calls:
            stop_reason = "answered"
            break
        done = False
        for call in completion.message.tool_calls:
            result = await _exec(environment, call, history, usage)
            history.append(Message("tool", result.content, tool_call_id=call.id))
            done = done or result.stop
        if done:
            stop_reason = "task_complete"
            break
    return Trajectory(tuple(history), tuple(usage), {"stop_reason": stop_reason, "turns": len(usage)})


async def _exec(environment: Environment, call: ToolCall, history: list[Message], usage: list[Usage]) -> ToolResult:
    try:
        result: Any = await environment.exec_tool(call)
    except Exception as exc:  # noqa: BLE001 - an environment bug is this sample's failure, not the run's
        partial = Trajectory(tuple(history), tuple(usage), {"stop_reason": "environment_error"})
        raise AgentError("environment_error", f"{type(exc).__name__}: {exc}", partial) from exc
    if not isinstance(result, ToolResult):
        partial = Trajectory(tuple(history), tuple(usage), {"stop_reason": "environment_error"})
        raise AgentError("environment_error", f"exec_tool returned {type(result).__name__}, not ToolResult", partial)
    return result
