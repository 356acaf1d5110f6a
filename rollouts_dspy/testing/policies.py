"""Routing a chat-completions request to a scripted policy: a pure function of (request, config) -> reply.

Model routing: the model name (provider prefix like "openai/" stripped) containing "reflect", "propos" or "mutat"
goes to the reflection/proposer policy; any other name goes to the task policy, which plays the calculator world
when the request offers calculator tools (complete_task plus an arithmetic tool) and the intent world otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._formats import Conversation, detect_format
from .calculator_policy import ToolCallSpec, calculator_reply, is_calculator_request
from .intent_policy import intent_reply
from .reflection_policy import reflection_reply
from .worlds import CalculatorWorld, IntentWorld

__all__ = ["REFLECTION_MARKERS", "PolicyConfig", "PolicyReply", "is_reflection_model", "respond"]

REFLECTION_MARKERS = ("reflect", "propos", "mutat")


@dataclass(frozen=True, kw_only=True)
class PolicyConfig:
    intent_world: IntentWorld = field(default_factory=IntentWorld)
    calculator_world: CalculatorWorld = field(default_factory=CalculatorWorld)


@dataclass(frozen=True)
class PolicyReply:
    """Either text content or one tool call (the scripted agent makes one call a turn)."""

    content: str
    tool_call: ToolCallSpec | None = None


def model_name(raw: object) -> str:
    return str(raw or "").rsplit("/", 1)[-1]


def is_reflection_model(name: str) -> bool:
    lowered = model_name(name).lower()
    return any(marker in lowered for marker in REFLECTION_MARKERS)


def respond(request: Mapping[str, Any], config: PolicyConfig) -> PolicyReply:
    """The reply to one chat-completions request body."""
    messages = [m for m in request.get("messages") or () if isinstance(m, Mapping)]
    fmt = detect_format(messages)
    if is_reflection_model(str(request.get("model", ""))):
        return PolicyReply(reflection_reply(messages, fmt, config.intent_world))
    conversation = Conversation.of(messages)
    tools = request.get("tools") or ()
    if is_calculator_request(tools):
        reply = calculator_reply(conversation, tools, config.calculator_world)
        return PolicyReply("", reply) if isinstance(reply, ToolCallSpec) else PolicyReply(reply)
    return PolicyReply(intent_reply(conversation, fmt, config.intent_world))
