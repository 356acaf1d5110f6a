"""Grounded instruction proposals: an optional dataset summary (made once), then one proposer request per candidate
that shows what the config's `*_aware` flags allow -- the program's steps and inputs, the summary, the current
instruction, a sample of demos, observed failures and a tip. Replies are parsed and filtered; garbage and
duplicates are dropped; the original instruction is always candidate 0.

Everything here is pure except `ask_all`, which sends requests through a LanguageModel (the runtime's recorded
proposer) and tells a budget refusal, a provider outage and a failed request apart.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...dtypes import Message, Usage
from ...runtime import BudgetExhausted, ProviderUnavailableError, counts_as_outage, gather_all
from ..protocols import LanguageModel, Rollout

__all__ = [
    "ProposalContext", "ProposalResult", "Reply", "ask_all", "ask_one", "collect_proposals", "dedupe_instructions",
    "parse_instruction", "proposal_messages", "proposal_requests", "render_demo", "render_failure",
    "summary_messages",
]

MIN_INSTRUCTION_CHARS = 12
MAX_INSTRUCTION_CHARS = 8000
MAX_FAILURE_CHARS = 600
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
_DSPY_MARKER = re.compile(r"\[\[ ## \w+ ## \]\]")


def render_demo(demo: Mapping[str, Any]) -> str:
    """A demo as text for the proposer: the input, the tool calls and results of an agent demo, the answer.
    Demos that are not FewShotExample dicts (DSPy field dicts) are shown one `field: value` line each."""
    if "input" in demo and "output" in demo:
        lines = [f"Input:\n{demo['input']}"]
        for m in demo.get("messages", ()):
            for call in m.get("tool_calls") or ():
                fn = call.get("function", {})
                lines.append(f"[tool call] {fn.get('name')}({fn.get('arguments', '')})")
            if m.get("role") == "tool":
                lines.append(f"[tool result] {m.get('content', '')}")
        lines.append(f"Expected output: {demo['output']}")
        return "\n".join(lines)
    return "\n".join(f"{k}: {v}" for k, v in demo.items() if k != "augmented")


def render_failure(rollout: Rollout) -> str:
    """A run of the current instruction that fell short: its inputs, what the model answered, the feedback."""
    inputs = "\n".join(f"{k}: {v}" for k, v in rollout.inputs.items())
    score = "unmeasured" if rollout.score is None else f"{rollout.score:g}"
    text = f"Input:\n{inputs}\nModel output: {rollout.output.strip()}\nScore: {score}"
    if rollout.feedback:
        text += f"\nFeedback: {rollout.feedback.strip()}"
    return text[:MAX_FAILURE_CHARS]


def summary_messages(examples: Sequence[Mapping[str, Any]]) -> list[Message]:
    """Ask for a short description of the data. The rows are shown as JSON lines, without any cue words, so
    the reply describes the data instead of rewriting a prompt."""
    rows = "\n".join(json.dumps(dict(e), ensure_ascii=False, sort_keys=True, default=str) for e in examples)
    return [
        Message("system", "You describe datasets briefly and precisely."),
        Message("user", f"Here are {len(examples)} rows of a dataset, one JSON object per line:\n\n{rows}\n\n"
                        "In two or three sentences, describe what the rows have in common: topic, form and what "
                        "a model is asked to produce. Reply with the sentences only."),
    ]


def proposal_messages(current: str, summary: str, demos: Sequence[Mapping[str, Any]], tip: str,
                      component: str | None = None, *, program: str = "", failures: Sequence[str] = (),
                      number: int = 0) -> list[Message]:
    """One proposal request: role, program, summary and tip in the system message; the current instruction (in a
    ``` block, the first block of the message), the examples and the failures in the user message. Empty parts
    are left out (the config's `*_aware` flags empty them). `number` (> 0) names the proposal, so requests that
    would otherwise be identical stay distinct calls (a sampling proposer then gives different answers)."""
    where = f" for the step `{component}` of a multi-step program" if component else ""
    system = (f"You write the instruction (system prompt) that a language model follows{where}. A good instruction "
              "is grounded in the data: it states the task and the rules that decide the right answer.")
    if program:
        system += f"\n\nAbout the program: {program.strip()}"
    if summary.strip():
        system += f"\n\nAbout the data: {summary.strip()}"
    if tip:
        system += f"\n\nTip: {tip}"
    user = f"Current instruction:\n```\n{current.strip()}\n```\n\n"
    if demos:
        shown = "\n\n".join(render_demo(d) for d in demos)
        user += f"Examples of the task, each with its expected output:\n\n{shown}\n\n"
    if failures:
        user += "Runs of the current instruction that fell short, with feedback:\n\n" + "\n\n".join(failures) + "\n\n"
    user += ("Write an improved instruction that would make a model produce the expected outputs. Keep what is "
             "right in the current instruction. Reply with the new instruction inside one ``` block.")
    if number:
        user += f" (Proposal {number}.)"
    return [Message("system", system), Message("user", user)]


@dataclass(frozen=True)
class ProposalContext:
    """What the proposal requests for one component may show (already filtered by the `*_aware` flags)."""

    component: str | None  # None for a one-component task (no step name is shown)
    current: str
    summary: str = ""
    program: str = ""
    pool: tuple[Mapping[str, Any], ...] = ()
    failures: tuple[str, ...] = ()


def proposal_requests(context: ProposalContext, *, num_candidates: int, tips: Sequence[str], per_prompt: int,
                      failures_per_prompt: int, seed: int | str) -> list[list[Message]]:
    """`num_candidates - 1` requests; request k shows its own seeded samples of the demos and failures and tip k
    (cycled; no tip when `tips` is empty)."""
    requests = []
    for k in range(1, num_candidates):
        rng = random.Random(f"mipro-proposal:{seed}:{context.component}:{k}")
        demos = rng.sample(list(context.pool), min(per_prompt, len(context.pool)))
        failures = rng.sample(list(context.failures), min(failures_per_prompt, len(context.failures)))
        tip = tips[(k - 1) % len(tips)] if tips else ""
        requests.append(proposal_messages(context.current, context.summary, demos, tip, context.component,
                                          program=context.program, failures=failures, number=k))
    return requests


def parse_instruction(reply: Any) -> str | None:
    """The instruction in a proposer reply (the first ``` block, else the whole text), or None for garbage:
    empty, too short to be an instruction, absurdly long, or an unfilled structured-output template."""
    if not isinstance(reply, str):
        return None
    fence = _FENCE.search(reply)
    text = (fence.group(1) if fence else reply.replace("```", "")).strip()
    if len(text) < MIN_INSTRUCTION_CHARS or len(text) > MAX_INSTRUCTION_CHARS or len(text.split()) < 3:
        return None
    if _DSPY_MARKER.search(text):
        return None
    return text


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def dedupe_instructions(original: str, proposals: Sequence[str | None]) -> list[str]:
    """The original first, then each surviving proposal once (whitespace and case do not make a new one)."""
    out = [original]
    seen = {_norm(original)}
    for p in proposals:
        if p is not None and _norm(p) not in seen:
            seen.add(_norm(p))
            out.append(p)
    return out


@dataclass(frozen=True)
class Reply:
    """One request's outcome: the text, or why there is none (`error`; `budget` when it was never sent)."""

    text: str | None
    usage: Usage = field(default_factory=Usage)
    error: str = ""
    budget: bool = False
    provider: bool = False  # the request failed because the provider could not answer (counts_as_outage)
    kind: str = ""


@dataclass(frozen=True)
class ProposalResult:
    """The instructions of one component (the original first) and why the missing ones are missing."""

    instructions: tuple[str, ...]
    dropped: tuple[str, ...] = ()


def collect_proposals(current: str, replies: Sequence[Reply]) -> ProposalResult:
    """Parse and dedupe the replies of one component's requests; say why each lost proposal was lost."""
    parsed: list[str | None] = []
    dropped: list[str] = []
    for k, reply in enumerate(replies, start=1):
        instruction = parse_instruction(reply.text) if reply.text is not None else None
        if reply.text is None:
            dropped.append(f"proposal {k} " + ("not made: the budget is spent" if reply.budget
                                               else f"failed: {reply.error}"))
        elif instruction is None:
            dropped.append(f"proposal {k} dropped: not an instruction ({reply.text[:60]!r})")
        parsed.append(instruction)
    return ProposalResult(tuple(dedupe_instructions(current, parsed)), tuple(dropped))


async def _ask(model: LanguageModel, messages: list[Message]) -> Reply:
    try:
        text, usage = await model.complete(messages)
    except BudgetExhausted:
        return Reply(None, budget=True)
    except ProviderUnavailableError:
        raise  # the provider is down: the run stops (the runtime decided it)
    except Exception as exc:  # noqa: BLE001 - a failed proposal is one candidate fewer, never a dead run
        return Reply(None, error=f"{type(exc).__name__}: {exc}"[:300], provider=counts_as_outage(exc),
                     kind=str(getattr(exc, "kind", type(exc).__name__)))
    return Reply(text, usage)


async def ask_all(model: LanguageModel, requests: Sequence[list[Message]]) -> list[Reply]:
    """Every request, concurrently (the model's runtime limits how many are in flight), replies in order."""
    if not requests:
        return []
    return await gather_all(_ask(model, m) for m in requests)


async def ask_one(model: LanguageModel, messages: list[Message]) -> Reply:
    return await _ask(model, messages)
