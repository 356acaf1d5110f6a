"""Merge as crossover: combine two parents' instructions section by section (deterministic, seeded), or ask the
reflection model to merge them (optional, falling back to the section-wise merge).

A section is a heading line ("## Rules", "Rules:") with the lines under it; the lines before the first heading
are the preamble. Sections are matched by heading. Within a matched section, list items ("- ...", "1. ...") of
both parents are kept (the union, in order: what either parent learned survives) and the prose is taken from
one parent by a seeded coin; sections only one parent has are kept where they stand.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ...dtypes import Message
from ..protocols import LanguageModel
from ..types import Candidate, PromptTemplate
from .reflection import Reflection, reflect

__all__ = ["crossover_candidates", "crossover_templates", "llm_merge_messages", "merge_instructions", "merge_with_llm"]

_HEADING = re.compile(r"^\s*(?:#{1,6}\s+\S.*|[A-Za-z][^.!?\n]{0,60}:)\s*$")
_ITEM = re.compile(r"^\s*(?:[-*\u2022+]|\d{1,3}[.)])\s+\S")


@dataclass
class _Section:
    heading: str
    prose: list[str]
    items: list[str]

    def lines(self) -> list[str]:
        return ([self.heading] if self.heading else []) + self.prose + self.items


def _key(line: str) -> str:
    return " ".join(line.lower().strip(" #:").split())


def _sections(text: str) -> list[_Section]:
    out = [_Section("", [], [])]
    for raw in text.strip().splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        if _HEADING.match(line) and not _ITEM.match(line):
            out.append(_Section(line, [], []))
        elif _ITEM.match(line) or (raw[:1].isspace() and out[-1].items):
            if raw[:1].isspace() and out[-1].items and not _ITEM.match(line):
                out[-1].items[-1] += "\n" + line  # a continuation line belongs to its item
            else:
                out[-1].items.append(line)
        else:
            out[-1].prose.append(line)
    return [s for s in out if s.heading or s.prose or s.items]


def _merge_section(a: _Section, b: _Section, rng: random.Random) -> _Section:
    prose = a.prose
    if _key("\n".join(a.prose)) != _key("\n".join(b.prose)) and b.prose:
        prose = b.prose if (not a.prose or rng.random() < 0.5) else a.prose
    items = list(a.items)
    seen = {_key(i) for i in items}
    for item in b.items:
        if _key(item) not in seen:
            seen.add(_key(item))
            items.append(item)
    return _Section(a.heading or b.heading, prose, items)


def merge_instructions(a: str, b: str, rng: random.Random) -> str:
    """The section-wise merge of instruction texts `a` and `b` (see the module doc). Pure given `rng`."""
    if _key(a) == _key(b):
        return a
    sa, sb = _sections(a), _sections(b)
    by_heading = {_key(s.heading): s for s in sb}
    merged: list[_Section] = []
    used: set[str] = set()
    for s in sa:
        other = by_heading.get(_key(s.heading))
        merged.append(_merge_section(s, other, rng) if other is not None else s)
        used.add(_key(s.heading))
    for n, s in enumerate(sb):
        if _key(s.heading) in used:
            continue
        # Insert b's own section right after the section that precedes it in b (else at the end).
        prev = next((_key(p.heading) for p in reversed(sb[:n]) if _key(p.heading) in used), None)
        at = next((k + 1 for k, m in enumerate(merged) if prev is not None and _key(m.heading) == prev),
                  len(merged))
        merged.insert(at, s)
        used.add(_key(s.heading))
    return "\n".join(line for s in merged for line in s.lines())


def crossover_candidates(a: Candidate, b: Candidate, rng: random.Random) -> Candidate:
    """Each component's instruction merged section-wise (identical ones kept); demos are `a`'s."""
    instructions = {
        name: text if b.instructions.get(name, text) == text else merge_instructions(text, b.instructions[name], rng)
        for name, text in a.instructions.items()
    }
    return Candidate(instructions, a.demos)


def crossover_templates(
    parent_a: PromptTemplate, parent_b: PromptTemplate, generation: int, *, seed: int = 0
) -> PromptTemplate:
    """Pure: a child whose system prompt is the section-wise merge of both parents' (seeded by `seed` and
    `generation`); user_template and few-shot examples come from `parent_a`."""
    rng = random.Random(f"crossover:{seed}:{generation}")
    child = crossover_candidates(Candidate.from_template(parent_a), Candidate.from_template(parent_b), rng)
    return child.to_template(parent_a, generation=generation)


def llm_merge_messages(a: str, b: str, wins_a: int = 0, wins_b: int = 0) -> list[Message]:
    """The request asking a model to merge two instruction versions that succeed on different inputs."""
    text = (
        "Two versions of the instructions for an AI assistant each do better on different inputs"
        + (f" (version A is best on {wins_a} examples, version B on {wins_b})" if wins_a or wins_b else "")
        + ".\n\nVersion A:\n```\n" + a + "\n```\n\nVersion B:\n```\n" + b + "\n```\n\n"
        "Write one set of instructions that keeps every rule, fact and strategy that makes either version "
        "succeed, resolving contradictions sensibly. Write the complete instructions inside one ``` block at the "
        "end of your answer."
    )
    return [Message("user", text)]


async def merge_with_llm(
    model: LanguageModel, a: str, b: str, rng: random.Random, *, attempts: int, wins: Sequence[int] = (0, 0)
) -> tuple[str, Reflection]:
    """The model's merge of `a` and `b`, or the section-wise merge when every answer is rejected (the
    Reflection records why and what the calls cost)."""
    outcome = await reflect(model, llm_merge_messages(a, b, *wins), a, attempts=attempts)
    if outcome.instruction is not None and _key(outcome.instruction) != _key(b):
        return outcome.instruction, outcome
    return merge_instructions(a, b, rng), outcome
