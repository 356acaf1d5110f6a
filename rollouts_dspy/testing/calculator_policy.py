"""The task model of the calculator world: a careful tool-using agent when told to be, sloppy mental math otherwise.

Agent mode is on when the system or user text contains one of AGENT_TRIGGERS (case-insensitive), or when an earlier
demo in the conversation shows an assistant making tool calls. The server is stateless: each turn re-derives the
progress from the tool results after the last user message and emits the next single tool call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._formats import Conversation
from ._text import format_number, message_text
from .worlds import ArithmeticProblem, CalculatorWorld, parse_arithmetic_problem

__all__ = ["AGENT_TRIGGERS", "CALCULATOR_TOOLS", "ToolCallSpec", "calculator_reply", "is_calculator_request"]

AGENT_TRIGGERS: tuple[str, ...] = (
    "calculator tool",
    "use the tool",
    "using the tool",
    "use the calculator",
    "using the calculator",
    "use your tools",
    "one step at a time",
    "every step",
    "each step",
    "every arithmetic step",
)
CALCULATOR_TOOLS = frozenset({"add", "subtract", "multiply", "divide", "complete_task"})

_CURRENT_VALUE = re.compile(r"current value\s*[:=]?\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)", re.I)
_ANY_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class ToolCallSpec:
    """One tool call to emit: name and JSON-able arguments."""

    name: str
    arguments: Mapping[str, Any]


def _tool_names(tools: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    names: dict[str, Mapping[str, Any]] = {}
    for tool in tools:
        function = tool.get("function", tool)
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            names[function["name"]] = function
    return names


def is_calculator_request(tools: Sequence[Mapping[str, Any]] | None) -> bool:
    """True when the request offers at least one arithmetic tool and complete_task."""
    names = set(_tool_names(tools or ()))
    return "complete_task" in names and bool(names & (CALCULATOR_TOOLS - {"complete_task"}))


def _agent_mode(conversation: Conversation) -> bool:
    text = (conversation.system + "\n" + conversation.last_user).lower()
    if any(trigger in text for trigger in AGENT_TRIGGERS):
        return True
    return any(m.get("role") == "assistant" and m.get("tool_calls") for m in conversation.history)


def _final_result_arg(value: float | str, function: Mapping[str, Any]) -> Any:
    schema = function.get("parameters", {}).get("properties", {}).get("final_result", {})
    if value == "error" or schema.get("type") == "string":
        return value if isinstance(value, str) else format_number(value)
    return int(value) if float(value).is_integer() else value


def _last_value(results: Sequence[str], problem: ArithmeticProblem, done: int) -> float | str:
    for text in reversed(results):
        match = _CURRENT_VALUE.search(text) or _ANY_NUMBER.search(text)
        if match:
            return float(match.group(1) if match.re is _CURRENT_VALUE else match.group())
    value = problem.evaluate(max(done - 1, 0))
    return value


def _next_call(
    problem: ArithmeticProblem, after: Sequence[Mapping[str, Any]], tools: Mapping[str, Mapping[str, Any]]
) -> ToolCallSpec | str:
    """The next tool call, or the closing text once complete_task has been answered."""
    results = [message_text(m) for m in after if m.get("role") == "tool"]
    called = [
        c.get("function", {}).get("name")
        for m in after
        if m.get("role") == "assistant"
        for c in m.get("tool_calls") or ()
    ]
    complete = tools["complete_task"]
    if "complete_task" in called:
        final = problem.evaluate()
        return f"The answer is {final if isinstance(final, str) else format_number(final)}."
    if any("error" in r.lower() for r in results):
        return ToolCallSpec("complete_task", {"final_result": _final_result_arg("error", complete)})
    steps = [("add", problem.start), *problem.ops]
    done = len(results)
    if done < len(steps) and steps[done][0] in tools:
        op, value = steps[done]
        return ToolCallSpec(op, {"value": int(value) if float(value).is_integer() else value})
    final = _last_value(results, problem, done)
    return ToolCallSpec("complete_task", {"final_result": _final_result_arg(final, complete)})


def _mental_math(problem: ArithmeticProblem, world: CalculatorWorld) -> str:
    n_ops = len(problem.ops) if len(problem.ops) <= world.mental_math_max_ops else len(problem.ops) - 1
    value = problem.evaluate(n_ops)
    return f"The answer is {value if isinstance(value, str) else format_number(value)}."


def calculator_reply(
    conversation: Conversation, tools: Sequence[Mapping[str, Any]], world: CalculatorWorld
) -> ToolCallSpec | str:
    """A tool call (agent mode) or a text answer."""
    problem = parse_arithmetic_problem(conversation.last_user)
    if problem is None:
        return "I could not find an arithmetic problem in your message."
    if not _agent_mode(conversation):
        return _mental_math(problem, world)
    return _next_call(problem, conversation.after, _tool_names(tools))
