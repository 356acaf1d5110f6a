"""A calculator with an accumulator: the spec's tool-use world.

The accumulator starts at 0; `add`, `subtract`, `multiply` and `divide` apply a value to it, `clear` resets it and
`complete_task(final_result)` ends the rollout. Every result says the current value, so a model can chain steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..dtypes import Tool, ToolCall, ToolResult

__all__ = ["CalculatorEnvironment"]

_VALUE = {"type": "object", "properties": {"value": {"type": "number"}}, "required": ["value"]}
_TOOLS = (
    Tool("add", "Add a value to the current value.", _VALUE),
    Tool("subtract", "Subtract a value from the current value.", _VALUE),
    Tool("multiply", "Multiply the current value by a value.", _VALUE),
    Tool("divide", "Divide the current value by a value.", _VALUE),
    Tool("clear", "Reset the current value to 0."),
    Tool(
        "complete_task",
        "Finish the task and report the final result.",
        {"type": "object", "properties": {"final_result": {"type": "string"}}, "required": ["final_result"]},
    ),
)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(round(x, 10))


class CalculatorEnvironment:
    """Fresh per sample. `final_result` is what `complete_task` reported (None until then)."""

    def __init__(self) -> None:
        self.current: float = 0.0
        self.final_result: str | None = None
        self.history: list[str] = []

    def get_tools(self) -> Sequence[Tool]:
        return _TOOLS

    async def exec_tool(self, call: ToolCall) -> ToolResult:
        self.history.append(call.name)
        if call.name == "clear":
            self.current = 0.0
            return ToolResult(f"current value: {_fmt(self.current)}")
        if call.name == "complete_task":
            self.final_result = str(call.args.get("final_result", ""))
            return ToolResult(f"task complete: {self.final_result}", stop=True)
        if call.name not in ("add", "subtract", "multiply", "divide"):
            return ToolResult(f"Error: unknown tool {call.name!r}", is_error=True)
        try:
            value = float(call.args["value"])
        except (KeyError, TypeError, ValueError):
            return ToolResult(f"Error: {call.name} needs a numeric 'value', got {dict(call.args)!r}", is_error=True)
        if not math.isfinite(value):
            return ToolResult(f"Error: value must be finite, got {value!r}", is_error=True)
        if call.name == "divide" and value == 0:
            return ToolResult("Error: division by zero", is_error=True)
        ops = {"add": lambda a, b: a + b, "subtract": lambda a, b: a - b,
               "multiply": lambda a, b: a * b, "divide": lambda a, b: a / b}
        self.current = ops[call.name](self.current, value)
        return ToolResult(f"current value: {_fmt(self.current)}")
