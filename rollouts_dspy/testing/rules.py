"""Keyword rules: the instruction syntax both scripted policies read, and the one the reflection policy writes.

A rule is one line, e.g.::

    - If the query mentions "refund" or "money back", answer: request_refund

Parsing is lenient: the line must contain "if", then a verb (mention(s), contain(s), include(s), say(s), talk(s)
about, refer(s) to, is about), keywords in double, single or curly quotes (separated by "or", "and" or commas), and
after the last keyword an answer verb (answer, answer with, respond with, reply with, classify (it) as, label it
(as), output, return, the intent/label is) followed by a label of the world (any case; surrounding quotes,
backticks and asterisks are ignored).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ._text import keyword_in

__all__ = ["Rule", "apply_rules", "format_rule", "is_rule_line", "parse_rules", "rule_line_spans"]

_CONDITION = re.compile(
    r"\bif\b.*?\b(?:mentions?|contains?|includes?|says?|talks?\s+about|refers?\s+to|is\s+about|has)\b", re.I
)
_QUOTED = re.compile(r"\"([^\"\n]+)\"|\u201c([^\u201d\n]+)\u201d|(?<![\w])'([^'\n]+)'(?![\w])")
_VERB = re.compile(
    r"[\s,;:.)\-]*(?:then\s+)?(?:answer(?:\s+with)?|respond\s+with|reply\s+with|classify(?:\s+it)?\s+as"
    r"|label\s+it(?:\s+as)?|output|return|the\s+(?:intent|label|answer)\s+is)\s*[:=\-]?\s*[`\"'*\u201c]*"
    r"(?P<label>[A-Za-z0-9_?'\-]+)",
    re.I,
)


@dataclass(frozen=True)
class Rule:
    """Answer `label` when the query contains any of `keywords` (lowercase)."""

    keywords: tuple[str, ...]
    label: str


def _resolve(token: str, labels: Sequence[str]) -> str | None:
    for candidate in (token, token.rstrip(".,;:'\"`*"), token.rstrip(".,;:'\"`*?")):
        for label in labels:
            if candidate.lower() == label.lower() or candidate.lower() == label.rstrip("?").lower():
                return label
    return None


def _parse_line(line: str, labels: Sequence[str]) -> Rule | None:
    condition = _CONDITION.search(line)
    if condition is None:
        return None
    quoted = list(_QUOTED.finditer(line, condition.end()))
    if not quoted:
        return None
    verb = _VERB.match(line, quoted[-1].end())
    if verb is None:
        return None
    label = _resolve(verb.group("label"), labels)
    if label is None:
        return None
    keywords: list[str] = []
    for match in quoted:
        keyword = next(g for g in match.groups() if g is not None).strip().lower()
        if keyword and keyword not in keywords:
            keywords.append(keyword)
    return Rule(tuple(keywords), label) if keywords else None


def parse_rules(text: str, labels: Sequence[str]) -> list[Rule]:
    """Every rule line in `text` whose label is one of `labels`, in order of appearance."""
    rules = []
    for line in text.splitlines():
        rule = _parse_line(line, labels)
        if rule is not None:
            rules.append(rule)
    return rules


def is_rule_line(line: str, labels: Sequence[str]) -> bool:
    return _parse_line(line, labels) is not None


def rule_line_spans(text: str, labels: Sequence[str]) -> list[tuple[int, int]]:
    """(start, end) offsets of the lines of `text` that parse as rules (so evidence scanning can skip them)."""
    spans = []
    offset = 0
    for line in text.splitlines(keepends=True):
        if _parse_line(line, labels) is not None:
            spans.append((offset, offset + len(line)))
        offset += len(line)
    return spans


def format_rule(rule: Rule) -> str:
    quoted = [f'"{k}"' for k in rule.keywords]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f"- If the query mentions {listed}, answer: {rule.label}"


def apply_rules(rules: Sequence[Rule], query: str) -> str | None:
    """The label of the rule with the most keywords in `query` (ties: earliest rule); None if none fires."""
    lowered = query.lower()
    best: tuple[int, str] | None = None
    for rule in rules:
        hits = sum(1 for keyword in rule.keywords if keyword_in(keyword, lowered))
        if hits and (best is None or hits > best[0]):
            best = (hits, rule.label)
    return best[1] if best else None
