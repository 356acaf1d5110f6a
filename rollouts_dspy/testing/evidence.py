"""What a reflection request teaches: (context, label) evidence pairs found heuristically in any prompt format.

A label occurrence is evidence when the nearest cue before it (within CUE_WINDOW characters) is a positive cue
("expected", "correct answer", "should be", "gold", "ground truth", "label:", "intent:", ...). A nearer negative cue
("generated outputs", "predicted", "got", "you answered", "instead of", ...) marks the model's own (possibly wrong)
answer, which is not evidence. Labels inside rule lines are never evidence. Demo turns (an assistant message whose
whole answer is a label) are evidence for the user turn before them. Labels the request never shows cannot become
evidence: nothing here knows the gold labels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._formats import parse_fields, query_of
from ._text import iter_labels, message_text
from .rules import is_rule_line, rule_line_spans

__all__ = ["CUE_WINDOW", "Evidence", "find_evidence"]

CUE_WINDOW = 60
CONTEXT_CAP = 500

_POSITIVE = re.compile(
    r"expected|correct\s+(?:answer|label|intent|category|output)|the\s+correct|should\s+(?:have\s+)?(?:be|been)"
    r"|gold|ground\s+truth|true\s+(?:label|intent)|target",
    re.I,
)
# "Label: x" style cues count only right before the label, so a listing like "Intents: a, b, c" teaches nothing.
_FIELD_CUE = re.compile(r"\b(?:label|intent|category|answer|output|class)\s*:[\s`'\"*]*\Z", re.I)
_NEGATIVE = re.compile(
    r"generated|predicted|prediction|\bgot\b|answered|instead\s+of|model\s+(?:said|output)|your\s+answer|response",
    re.I,
)


@dataclass(frozen=True)
class Evidence:
    """The text that led to `label` (the input the label belongs to, plus nearby boilerplate)."""

    context: str
    label: str


def _polarity(window: str) -> int:
    """+1 if the nearest cue in `window` is positive, -1 if negative, 0 if there is none."""
    positive = [m.end() for m in _POSITIVE.finditer(window)]
    negative = [m.end() for m in _NEGATIVE.finditer(window)]
    field = _FIELD_CUE.search(window)
    if field is not None and not _NEGATIVE.search(window[max(0, field.start() - 20) : field.end()]):
        positive.append(len(window))
    best_pos, best_neg = max(positive, default=-1), max(negative, default=-1)
    if best_pos < 0 and best_neg < 0:
        return 0
    return 1 if best_pos > best_neg else -1


def _strip_labels(text: str, labels: Sequence[str]) -> str:
    pieces, last = [], 0
    for start, end, _ in iter_labels(text, labels):
        pieces.append(text[last:start])
        last = end
    pieces.append(text[last:])
    return " ".join(pieces)


def _cued(text: str, labels: Sequence[str]) -> list[Evidence]:
    skip = rule_line_spans(text, labels)
    found: list[Evidence] = []
    context_start = 0
    for start, end, label in iter_labels(text, labels):
        if any(a <= start < b for a, b in skip):
            continue
        if _polarity(text[max(0, start - CUE_WINDOW) : start]) <= 0:
            continue
        context = text[max(context_start, start - CONTEXT_CAP) : start]
        # Rule lines quote other labels' keywords; keep them out of this label's context.
        kept = [line for line in context.splitlines() if not is_rule_line(line, labels)]
        found.append(Evidence(_strip_labels("\n".join(kept), labels), label))
        context_start = end
    return found


def _demo_pairs(messages: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> list[Evidence]:
    found = []
    for prev, cur in zip(messages, messages[1:], strict=False):
        if prev.get("role") != "user" or cur.get("role") != "assistant":
            continue
        text = message_text(cur)
        fields = parse_fields(text)
        values = [v for k, v in fields.items() if k != "reasoning"] if fields else [text]
        for value in values:
            label = next((lb for lb in labels if value.strip().lower() == lb.lower()), None)
            if label is not None:
                found.append(Evidence(query_of(message_text(prev)), label))
                break
    return found


def find_evidence(messages: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> list[Evidence]:
    """All evidence in a request's messages, in order."""
    found: list[Evidence] = []
    for message in messages:
        text = message_text(message)
        # Scan DSPy fields one by one so a field's context never spans unrelated fields.
        fields = parse_fields(text) if "[[ ## " in text else {}
        for value in fields.values() if fields else [text]:
            found.extend(_cued(value, labels))
    found.extend(_demo_pairs(messages, labels))
    return found
