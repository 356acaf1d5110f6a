"""Reading and writing the prompt formats the scripted policies meet: plain chat, DSPy's ChatAdapter
(`[[ ## field ## ]]` markers) and DSPy's JSONAdapter (a JSON object with the output fields)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._text import message_text

__all__ = ["Conversation", "Format", "detect_format", "parse_fields", "query_of", "render_fields"]

_MARKER = re.compile(r"\[\[ ## (\w+) ## \]\]")
_FIELD_LIST = re.compile(r"^\s*\d+\.\s+`(\w+)`", re.M)
_RESPOND_TAIL = re.compile(r"\n\s*Respond with (?:the corresponding output fields|a JSON object).*\Z", re.S)
_QUERY_LINE = re.compile(
    r"^\s*(?:customer\s+)?(?:query|question|text|input|message|utterance|request)\s*:\s*(?P<value>\S.*)$",
    re.I | re.M,
)
_QUERY_FIELDS = ("query", "text", "question", "input", "message", "utterance", "problem", "customer_query")


@dataclass(frozen=True)
class Format:
    """How a request wants its answer: "plain", "chat" (DSPy ChatAdapter) or "json" (DSPy JSONAdapter)."""

    kind: str
    input_fields: tuple[str, ...] = ()
    output_fields: tuple[str, ...] = ()


def _section(text: str, start: str, end: str) -> str:
    i = text.find(start)
    if i < 0:
        return ""
    j = text.find(end, i + len(start))
    return text[i + len(start) : j if j >= 0 else len(text)]


def detect_format(messages: Sequence[Mapping[str, Any]]) -> Format:
    system = "\n".join(message_text(m) for m in messages if m.get("role") == "system")
    if "Your output fields are" not in system:
        return Format("plain")
    inputs = tuple(_FIELD_LIST.findall(_section(system, "Your input fields are:", "Your output fields are:")))
    outputs = tuple(_FIELD_LIST.findall(_section(system, "Your output fields are:", "All interactions will")))
    last_user = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    wants_json = "JSON object" in last_user or "Outputs will be a JSON object" in system
    if not wants_json and "[[ ## " not in system:
        return Format("plain")
    return Format("json" if wants_json else "chat", inputs, outputs)


def parse_fields(text: str) -> dict[str, str]:
    """`[[ ## name ## ]]` sections of `text` (DSPy ChatAdapter), or the keys of a JSON object; {} if neither."""
    markers = list(_MARKER.finditer(text))
    if not markers:
        try:
            value = json.loads(text)
        except (ValueError, TypeError):
            return {}
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
    fields: dict[str, str] = {}
    for i, marker in enumerate(markers):
        end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        value = _RESPOND_TAIL.sub("", text[marker.end() : end])
        fields[marker.group(1)] = value.strip()
    fields.pop("completed", None)
    return fields


def query_of(user_text: str, input_fields: Sequence[str] = ()) -> str:
    """The query a user turn asks about: a `[[ ## query ## ]]`-style field, a `Query: ...` line, or the whole text."""
    fields = parse_fields(user_text) if "[[ ## " in user_text else {}
    if fields:
        for name in (*_QUERY_FIELDS, *input_fields):
            if name in fields:
                return fields[name]
        return next(iter(fields.values()))
    line = _QUERY_LINE.search(user_text)
    if line is not None:
        return line.group("value").strip()
    return user_text.strip()


def render_fields(fmt: Format, values: Mapping[str, str]) -> str:
    """The answer text for `fmt`: DSPy chat markers, a JSON object, or (plain) the first value."""
    if fmt.kind == "json":
        return json.dumps({name: values.get(name, "") for name in fmt.output_fields})
    if fmt.kind == "chat":
        parts = [f"[[ ## {name} ## ]]\n{values.get(name, '')}\n\n" for name in fmt.output_fields]
        return "".join(parts) + "[[ ## completed ## ]]"
    return next(iter(values.values()), "")


@dataclass(frozen=True)
class Conversation:
    """A request's messages split at the last user turn: the demos and instructions before it, the turn, and the
    agent's own progress (assistant tool calls and tool results) after it."""

    system: str
    history: tuple[Mapping[str, Any], ...]
    last_user: str
    after: tuple[Mapping[str, Any], ...]

    @classmethod
    def of(cls, messages: Sequence[Mapping[str, Any]]) -> Conversation:
        system = "\n".join(message_text(m) for m in messages if m.get("role") == "system")
        last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        history = tuple(m for m in messages[: max(last, 0)] if m.get("role") != "system")
        after = tuple(messages[last + 1 :]) if last >= 0 else tuple(m for m in messages if m.get("role") != "system")
        last_user = message_text(messages[last]) if last >= 0 else ""
        return cls(system, history, last_user, after)

    def demo_pairs(self) -> list[tuple[str, str]]:
        """(user text, assistant text) for each user turn directly answered by an assistant text turn."""
        pairs = []
        for prev, cur in zip(self.history, self.history[1:], strict=False):
            if prev.get("role") == "user" and cur.get("role") == "assistant" and message_text(cur).strip():
                pairs.append((message_text(prev), message_text(cur)))
        return pairs
