"""The reflection/proposer model: writes a better instruction from the evidence its request shows.

It keeps the rules of the current instruction, adds keyword rules for each label it has evidence for (words seen
in that label's contexts and in no other label's), adds the calculator sentence when calculator failures are shown,
and answers in the request's format (DSPy fields, a ``` fence, or plain text). It never sees gold labels that the
request does not show.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ._formats import Format, parse_fields, render_fields
from ._text import STOPWORDS, content_words, keyword_in, message_text, words
from .evidence import Evidence, find_evidence
from .rules import Rule, format_rule, is_rule_line, parse_rules
from .worlds import IntentWorld

__all__ = ["CALCULATOR_SENTENCE", "DEFAULT_FIRST_LINE", "MAX_KEYWORDS", "propose_instruction", "reflection_reply"]

DEFAULT_FIRST_LINE = "Classify the customer query into exactly one intent label and answer with the label only."
CALCULATOR_FIRST_LINE = "Solve the arithmetic problem."
CALCULATOR_SENTENCE = (
    "Use the calculator tools for every arithmetic step, one step at a time, then call complete_task with the final "
    "result."
)
MAX_KEYWORDS = 6

_BOILERPLATE = frozenset(
    """
    query queries feedback expected correct incorrect answer answered answers label labels intent intents example
    examples inputs input outputs output generated response responses assistant instruction instructions score
    wrong predicted prediction ground truth gold should classify rule rules mentions following field fields given
    produce reasoning compared customer task item text correctly classified mistake right true target category
    """.split()
)
# Everyday words a reader would not pick as topical keywords (a stand-in for a real model's sense of relevance).
_GENERIC = frozenset(
    """
    able again always amount another anything around back bank best better came come comes coming could dont
    done enough ever every first going good gone happen happened happening keep kind last long look looks made
    make many maybe might more much need never next nothing number often once only over possible pretty quite
    really reason same seems show since some something soon still sure take thing things think though time times
    today tried trying used using week weeks well went were what when while will without work working would
    year years yesterday told mean means guess whats there theres cant wont didnt doesnt isnt havent hasnt
    """.split()
)
_FAILURE = re.compile(r"incorrect|wrong|\bscore\W{0,3}0(?:\.0)?\b|expected|failed|mismatch|not correct", re.I)
_CALCULATOR = re.compile(r"complete_task|calculator|arithmetic", re.I)
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
_INSTRUCTION_LINE = re.compile(r"(?:current\s+instruction|instruction)s?\s*:\s*(.+)", re.I)


def _request_seed(messages: Sequence[Mapping[str, Any]]) -> int:
    blob = json.dumps([message_text(m) for m in messages], sort_keys=True).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big")


def _keyword_counts(evidence: Sequence[Evidence]) -> dict[str, Counter[str]]:
    """label -> (content word -> number of that label's contexts containing it), boilerplate removed."""
    contexts = [content_words(e.context, min_len=4) - STOPWORDS - _BOILERPLATE - _GENERIC for e in evidence]
    document_freq = Counter(w for ctx in contexts for w in ctx)
    common = {w for w, n in document_freq.items() if len(contexts) >= 4 and n > len(contexts) / 2}
    counts: dict[str, Counter[str]] = {}
    for item, ctx in zip(evidence, contexts, strict=False):
        counts.setdefault(item.label, Counter()).update(ctx - common)
    return counts


def _name_prefixes(label: str) -> set[str]:
    return {w[:4] for w in words(label.replace("_", " ")) if len(w) >= 3 and w not in STOPWORDS}


def _merged_existing(existing: Sequence[Rule], evidence: Sequence[Evidence]) -> dict[str, list[str]]:
    """label -> keywords of the current rules, minus keywords that misfired: ones found in a context that the
    evidence says belongs to another label (the reason such a failure happened)."""
    merged: dict[str, list[str]] = {}
    for rule in existing:
        keywords = merged.setdefault(rule.label, [])
        keywords.extend(kw for kw in rule.keywords if kw not in keywords)
    for label, keywords in merged.items():
        foreign = [e.context.lower() for e in evidence if e.label != label]
        keywords[:] = [kw for kw in keywords if not any(keyword_in(kw, ctx) for ctx in foreign)]
    return merged


def _ranked_candidates(label: str, counts: dict[str, Counter[str]], labels: Sequence[str]) -> list[str]:
    """Words seen only in `label`'s contexts, best first: words echoing this label's name alone, then the most
    frequent, then alphabetical. Words echoing another label's name are not distinctive and are skipped."""
    mine = _name_prefixes(label)
    shared = {p for other in labels if other != label for p in _name_prefixes(other)}
    others = {w for other, counter in counts.items() if other != label for w in counter}
    counter = counts[label]
    candidates = [w for w in counter if w not in others and (w[:4] in mine or w[:4] not in shared)]
    candidates.sort(key=lambda w: (-(w[:4] in mine and w[:4] not in shared), -counter[w], -(w[:4] in mine), w))
    return candidates


def _new_rules(evidence: Sequence[Evidence], existing: Sequence[Rule], labels: Sequence[str], k: int) -> list[Rule]:
    """Existing rules (minus misfiring keywords) merged with up to `k` new distinctive keywords per label."""
    counts = _keyword_counts(evidence)
    merged = _merged_existing(existing, evidence)
    owner = {kw: label for label, kws in merged.items() for kw in kws}
    for label in counts:
        keywords = merged.setdefault(label, [])
        fresh = [w for w in _ranked_candidates(label, counts, labels) if owner.get(w, label) == label]
        keywords.extend(w for w in fresh[:k] if w not in keywords)
    return [Rule(tuple(kws[:MAX_KEYWORDS]), label) for label, kws in merged.items() if kws]


def _current_instruction(messages: Sequence[Mapping[str, Any]], fmt: Format) -> str:
    for message in messages:
        text = message_text(message)
        if message.get("role") == "user" and fmt.kind != "plain":
            fields = parse_fields(text)
            for name in ("current_instruction", "basic_instruction", *[f for f in fields if "instruction" in f]):
                if name in fields:
                    return fields[name]
        fence = _FENCE.search(text)
        if fence is not None and message.get("role") != "system":
            return fence.group(1)
        line = _INSTRUCTION_LINE.search(text)
        if line is not None and message.get("role") != "system":
            return line.group(1)
    return ""


def _first_line(current: str, labels: Sequence[str], calculator: bool) -> str:
    for line in current.splitlines():
        stripped = line.strip()
        if not stripped or is_rule_line(stripped, labels) or stripped.lower().rstrip(":") == "rules":
            continue
        sentence = re.split(r"(?<=[.!?])\s+", stripped)[0]
        if CALCULATOR_SENTENCE.lower()[:30] not in sentence.lower():
            return sentence
    return CALCULATOR_FIRST_LINE if calculator else DEFAULT_FIRST_LINE


def propose_instruction(messages: Sequence[Mapping[str, Any]], fmt: Format, world: IntentWorld) -> str | None:
    """The new instruction, or None when the request holds no evidence, rules or calculator failures."""
    request_text = "\n".join(message_text(m) for m in messages)
    existing = parse_rules(request_text, world.labels)
    evidence = find_evidence(messages, world.labels)
    calculator = bool(_CALCULATOR.search(request_text))
    wants_tools = calculator and (bool(_FAILURE.search(request_text)) or CALCULATOR_SENTENCE in request_text)
    if not existing and not evidence and not wants_tools:
        return None
    rules = _new_rules(evidence, existing, world.labels, k=1 + _request_seed(messages) % 3)
    lines = [_first_line(_current_instruction(messages, fmt), world.labels, calculator)]
    if wants_tools:
        lines.append(CALCULATOR_SENTENCE)
    if rules:
        lines.append("Rules:")
        lines.extend(format_rule(rule) for rule in rules)
    return "\n".join(lines)


def _description(field: str, calculator: bool) -> str:
    if "observation" in field or "summary" in field:
        if calculator:
            return "The data are short arithmetic problems whose steps must be applied in order to a running value."
        return "The data are short customer banking queries, each labelled with exactly one intent."
    if "program" in field:
        return "The program reads one input and produces a single short answer with one language-model call."
    if "module" in field:
        return "The module maps the input to the final answer in one step."
    return "The task maps each input to a single short answer."


def reflection_reply(messages: Sequence[Mapping[str, Any]], fmt: Format, world: IntentWorld) -> str:
    """The proposer's answer text in the request's format."""
    request_text = "\n".join(message_text(m) for m in messages)
    calculator = bool(_CALCULATOR.search(request_text))
    instruction = propose_instruction(messages, fmt, world)
    if fmt.kind != "plain":
        values = {}
        for name in fmt.output_fields:
            if "instruction" in name:
                values[name] = instruction or _first_line(_current_instruction(messages, fmt), world.labels, calculator)
            elif name == "observations" and "prior_observations" in fmt.input_fields:
                values[name] = "COMPLETE"
            else:
                values[name] = _description(name, calculator)
        return render_fields(fmt, values)
    if instruction is None:
        if "instruction" not in request_text.lower():
            return _description("summary", calculator)
        instruction = _first_line(_current_instruction(messages, fmt), world.labels, calculator)
    return f"```\n{instruction}\n```" if "```" in request_text else instruction
