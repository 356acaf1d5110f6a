"""Reflective mutation: show a model one component's instruction and a few scored rollouts with their feedback,
let it diagnose the failures and write a complete new instruction; parse that answer robustly.

The request is built from `Rollout.inputs`, `.output`, `.score` and `.feedback` only, so the same code serves
templates (`mutate_template`, in gepa/api.py) and the engine's multi-component candidates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ...dtypes import Message, Usage
from ...runtime import BudgetExhausted, ProviderUnavailableError
from ..protocols import LanguageModel, Rollout
from ..types import SYSTEM, USER_TEMPLATE

__all__ = [
    "MIN_CHARS",
    "MutationError",
    "MutationRejected",
    "Reflection",
    "parse_instruction",
    "reflect",
    "reflection_messages",
]

MIN_CHARS = 20
"""An answer shorter than this is never a complete instruction."""
MIN_LENGTH_RATIO = 0.25
"""An answer shorter than this fraction of the current instruction is taken as truncated."""
FIELD_CHARS = 2000
"""Each rendered input, output and feedback is cut to this many characters to bound the request."""
EVIDENCE_CHARS = 60_000
"""The rendered examples of one request stop here (about 15k tokens): long rollouts show fewer examples."""

_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.S)
_REFUSAL = re.compile(r"^\W*(?:i'?m sorry|i am sorry|sorry\b|i cannot|i can'?t|i can not|i won'?t|as an ai\b)",
                      re.I)


class MutationRejected(ValueError):
    """One mutation answer that cannot be adopted; `reason` says why (empty, truncated, unchanged, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MutationError(RuntimeError):
    """Every attempt of a mutation was rejected or the model failed; `reasons` lists why, attempt by attempt."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("mutation failed: " + "; ".join(reasons))
        self.reasons = tuple(reasons)


def _normalized(text: str) -> str:
    return " ".join(text.split()).casefold()


def parse_instruction(answer: str, current: str) -> str:
    """The new instruction in a model's answer: the last complete ``` block, else the whole text.

    Raises MutationRejected when it is empty, a refusal, garbage, too short or truncated (shorter than
    MIN_CHARS or than MIN_LENGTH_RATIO of `current`; an opened ``` block that never closes), or unchanged
    from `current` up to whitespace.
    """
    text = answer or ""
    blocks = _FENCE.findall(text)
    if text.count("```") % 2 == 1:
        raise MutationRejected("truncated: a ``` block was opened but never closed")
    if blocks:
        text = blocks[-1]
    else:
        text = text.strip().strip("`")
    text = text.strip()
    if not text:
        raise MutationRejected("empty answer")
    if _REFUSAL.match(text):
        raise MutationRejected(f"refusal: {text[:60]!r}")
    visible = [c for c in text if not c.isspace()]
    if sum(c.isalpha() for c in visible) < 0.5 * len(visible) or len(text.split()) < 3:
        raise MutationRejected(f"garbage: {text[:60]!r}")
    if len(text) < MIN_CHARS:
        raise MutationRejected(f"too short ({len(text)} characters)")
    if len(text) < MIN_LENGTH_RATIO * len(current.strip()):
        raise MutationRejected(f"truncated ({len(text)} characters, the current instruction has "
                               f"{len(current.strip())})")
    if _normalized(text) == _normalized(current):
        raise MutationRejected("unchanged: identical to the current instruction (up to case and whitespace)")
    return text


def _cut(text: str) -> str:
    return text if len(text) <= FIELD_CHARS else text[:FIELD_CHARS] + " [...]"


def _render(n: int, rollout: Rollout) -> str:
    inputs = "\n".join(f"{k}: {_cut(str(v))}" for k, v in rollout.inputs.items()) or "(none)"
    score = "not measured" if rollout.score is None else f"{rollout.score:g}"
    feedback = rollout.feedback or (rollout.error.detail if rollout.error else "") or "(none)"
    return (f"## Example {n}\nInputs:\n{inputs}\nResponse:\n{_cut(rollout.output) or '(no answer)'}\n"
            f"Score: {score}\nFeedback: {_cut(feedback)}")


_TOOL_CALL = re.compile(r"^\[tool call\] ([A-Za-z_][\w.-]*)\((.*)\)$", re.M)


def _tools_seen(rollouts: Sequence[Rollout]) -> str:
    """The tools the assistant called in `rollouts` (names and the argument names it used): the Task protocol has
    no tool list, so the trajectories are what tells the reflection model which tools exist."""
    seen: dict[str, list[str]] = {}
    for r in rollouts:
        for name, args in _TOOL_CALL.findall(r.output):
            keys = seen.setdefault(name, [])
            for key in re.findall(r'"([^"]+)":', args):
                if key not in keys:
                    keys.append(key)
    if not seen:
        return ""
    listed = "\n".join(f"- {name}({', '.join(keys)})" for name, keys in seen.items())
    return f"The assistant can call tools; these appear in the examples below:\n{listed}\n\n"


def _examples(rollouts: Sequence[Rollout]) -> str:
    """The rollouts rendered in order (failures come first) until EVIDENCE_CHARS; always at least one."""
    parts: list[str] = []
    size = 0
    for n, rollout in enumerate(rollouts, 1):
        text = _render(n, rollout)
        if parts and size + len(text) > EVIDENCE_CHARS:
            break
        parts.append(text)
        size += len(text) + 2
    return "\n\n".join(parts)


def reflection_messages(instruction: str, rollouts: Sequence[Rollout], component: str | None = None) -> list[Message]:
    """The request that asks for a better instruction for `component`, grounded in `rollouts`. The step is named
    only for a component of a larger program (not None or SYSTEM): a one-component task gets the same request
    whichever front door (template or DSPy module) it came through."""
    step = "" if component in (None, SYSTEM) else f' (the step called "{component}" of a larger program)'
    if component == USER_TEMPLATE:
        step = (" -- here the template of the user message it receives, whose {placeholders} are filled with each "
                "input; keep every {placeholder} exactly as it is")
    if rollouts:
        shown = _examples(rollouts)
        evidence = (
            f"{_tools_seen(rollouts)}"
            "Here is how the assistant did with these instructions on some inputs. Each example gives the inputs, "
            "the assistant's response (with any tool calls and their results), the score it earned (higher is "
            f"better) and the evaluator's feedback.\n\n{shown}\n\n"
            "First diagnose the failures: which inputs went wrong, what the feedback says the right behaviour "
            "is, and which facts, conventions or strategies the assistant was missing."
        )
    else:
        evidence = "No worked examples are available; reason about where the instructions are vague or incomplete."
    text = (
        f"You are improving the instructions given to an AI assistant{step}. Its current instructions:\n\n"
        f"```\n{instruction}\n```\n\n{evidence}\n\n"
        "Then write a complete, improved version of the instructions: keep what already works, and add precise "
        "guidance that fixes the failures, including concrete rules or facts taken from the feedback where they "
        "generalize. Write the whole instructions, not a summary or a list of changes, and put them inside one "
        "``` block at the end of your answer."
    )
    return [Message("user", text)]


@dataclass(frozen=True)
class Reflection:
    """The outcome of one reflective mutation: the new instruction (None when dropped), why attempts were
    rejected, and what all attempts cost."""

    instruction: str | None
    rejected: tuple[str, ...] = ()
    usage: Usage = field(default_factory=Usage)
    requests: int = 0


async def reflect(
    model: LanguageModel,
    messages: Sequence[Message],
    current: str,
    *,
    attempts: int,
) -> Reflection:
    """Ask `model` for a new instruction (retrying with a varied request after a rejected answer) and parse it.
    A model that raises ends the mutation at once: its own retries are already spent."""
    request = list(messages)
    rejected: list[str] = []
    usage = Usage()
    requests = 0
    for _ in range(attempts):
        requests += 1
        try:
            answer, cost = await model.complete(request)
        except (ProviderUnavailableError, BudgetExhausted):
            raise  # the model is down, or the budget is spent: the search stops, not just this child
        except Exception as exc:  # noqa: BLE001 - a failed mutation drops the child, never the run
            rejected.append(f"model error: {type(exc).__name__}: {exc}"[:300])
            break
        usage = usage + cost
        try:
            return Reflection(parse_instruction(answer, current), tuple(rejected), usage, requests)
        except MutationRejected as exc:
            rejected.append(exc.reason)
            request = [*messages, Message("assistant", answer or "(empty)"), Message(
                "user", f"That answer could not be used ({exc.reason}). Reply again with the complete new "
                "instructions, changed to fix the failures, inside one ``` block.")]
    return Reflection(None, tuple(rejected), usage, requests)
