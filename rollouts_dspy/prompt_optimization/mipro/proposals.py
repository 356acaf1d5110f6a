"""Grounded instruction proposals: a dataset summary (made once), then one proposer request per candidate that
shows the summary, the current instruction, a few demos and a varied tip. Replies are parsed and filtered;
garbage and duplicates are dropped; the original instruction is always candidate 0.

Prompt building, reply parsing and dedup are pure; `summarize_dataset` and `propose_for_component` are the async
shell over a LanguageModel; `propose_instructions` is the spec's template-level function.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...dtypes import Endpoint, Message, Usage
from ...errors import ConfigError
from ...llm import LLMSession
from ..formatting import validate_dataset
from ..protocols import LanguageModel
from ..template_task import EndpointModel, TemplateTask
from ..types import SYSTEM, PromptTemplate
from .config import DEFAULT_TIPS

__all__ = [
    "ProposalResult", "dedupe_instructions", "parse_instruction", "propose_for_component", "propose_instructions",
    "proposal_messages", "render_demo", "summarize_dataset", "summary_messages",
]

MIN_INSTRUCTION_CHARS = 12
MAX_INSTRUCTION_CHARS = 8000
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


def proposal_messages(
    current: str, summary: str, demos: Sequence[Mapping[str, Any]], tip: str, component: str | None = None
) -> list[Message]:
    """One proposal request: role, summary and tip in the system message; the examples and the current
    instruction (in a ``` block, the first block of the message) in the user message."""
    where = f" for the step `{component}` of a multi-step program" if component else ""
    system = (
        f"You write the instruction (system prompt) that a language model follows{where}. A good instruction is "
        "grounded in the data: it states the task and the rules that decide the right answer.\n\n"
        f"About the data: {summary.strip() or 'no description available.'}"
    )
    if tip:
        system += f"\n\nTip: {tip}"
    shown = "\n\n".join(render_demo(d) for d in demos) or "(no examples available)"
    user = (
        f"Current instruction:\n```\n{current.strip()}\n```\n\n"
        f"Examples of the task, each with its expected output:\n\n{shown}\n\n"
        "Write an improved instruction that would make a model produce the expected outputs. Keep what is right "
        "in the current instruction. Reply with the new instruction inside one ``` block."
    )
    return [Message("system", system), Message("user", user)]


def parse_instruction(reply: str) -> str | None:
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
class ProposalResult:
    """`errors` are the exceptions proposer calls raised (the caller tells an outage from a broken proposer)."""

    instructions: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    usage: Usage = field(default_factory=Usage)
    errors: tuple[Exception, ...] = ()
    calls: int = 0


async def _ask(proposer: LanguageModel, messages: list[Message]) -> tuple[str | None, Usage, Exception | None]:
    try:
        text, usage = await proposer.complete(messages)
    except Exception as exc:  # noqa: BLE001 - a failed proposal is one candidate fewer, never a dead run
        return None, Usage(), exc
    return text, usage, None


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


async def summarize_dataset(proposer: LanguageModel, examples: Sequence[Mapping[str, Any]]) -> ProposalResult:
    """A short dataset description (empty when the proposer fails: proposals then go without it)."""
    if not examples:
        return ProposalResult(("",))
    text, usage, error = await _ask(proposer, summary_messages(examples))
    summary = (text or "").replace("```", "").strip()[:2000]
    warnings = (f"dataset summary failed ({_describe(error)}); proposing without it",) if error else ()
    return ProposalResult((summary,), warnings, usage, (error,) if error else (), 1)


async def propose_for_component(
    proposer: LanguageModel,
    *,
    current: str,
    summary: str,
    pool: Sequence[Mapping[str, Any]],
    num_candidates: int,
    tips: Sequence[str],
    per_prompt: int,
    seed: int | str,
    component: str | None = None,
) -> ProposalResult:
    """Up to `num_candidates` instructions, the current one first: `num_candidates - 1` proposer requests run
    concurrently, candidate k showing its own seeded sample of `pool` and tip k (cycled)."""
    requests = []
    for k in range(1, num_candidates):
        rng = random.Random(f"mipro-proposal:{seed}:{component}:{k}")
        demos = rng.sample(list(pool), min(per_prompt, len(pool)))
        requests.append(proposal_messages(current, summary, demos, tips[(k - 1) % len(tips)], component))
    replies = await asyncio.gather(*(_ask(proposer, m) for m in requests))
    usage = Usage()
    warnings: list[str] = []
    errors: list[Exception] = []
    parsed: list[str | None] = []
    for k, (text, u, error) in enumerate(replies, start=1):
        usage = usage + u
        instruction = parse_instruction(text) if error is None else None
        if error is not None:
            errors.append(error)
            warnings.append(f"proposal {k} failed: {_describe(error)}")
        elif instruction is None:
            warnings.append(f"proposal {k} dropped: not an instruction ({(text or '')[:60]!r})")
        parsed.append(instruction)
    return ProposalResult(tuple(dedupe_instructions(current, parsed)), tuple(warnings), usage, tuple(errors),
                          len(requests))


def _never_called(*_: Any) -> Any:  # TemplateTask wants a score_fn; rendering labeled demos never scores
    raise AssertionError("not used")


async def propose_instructions(
    template: PromptTemplate,
    dataset: Sequence[Mapping[str, Any]],
    endpoint: Endpoint,
    num_candidates: int,
    *,
    seeds: Sequence[int] | None = None,
    seed: int = 0,
    tips: Sequence[str] = DEFAULT_TIPS,
    per_prompt: int = 10,
    summary_examples: int = 12,
    max_concurrent: int = 10,
    session: LLMSession | None = None,
) -> list[str]:
    """Instruction candidates for `template.system`, the original first (at most `num_candidates`), grounded in
    a summary of the rows `seeds` (all rows by default), the template's demos and labeled rows."""
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, int) or num_candidates < 1:
        raise ConfigError(f"num_candidates must be an integer >= 1, but got {num_candidates!r}")
    seeds = list(range(len(dataset))) if seeds is None else list(seeds)
    validate_dataset(template, dataset, seeds, what="seeds")
    session = session or LLMSession(max_concurrent=max_concurrent, seed=seed)
    proposer = EndpointModel(endpoint, session, "proposer")
    task = TemplateTask(template, dataset, endpoint, _never_called, session)
    order = seeds[:]
    random.Random(f"mipro-order:{seed}").shuffle(order)
    labeled = [d for d in (task.labeled_demo(i, SYSTEM) for i in order) if d is not None]
    pool = [ex.to_dict() for ex in template.few_shot_examples] + labeled
    summary = await summarize_dataset(proposer, labeled[:summary_examples])
    result = await propose_for_component(
        proposer, current=template.system, summary=summary.instructions[0], pool=pool,
        num_candidates=num_candidates, tips=tips, per_prompt=per_prompt, seed=seed,
    )
    return list(result.instructions)
