"""The task model of the intent world: rules from the instruction, then imitated demos, then a weak guess.

A better prompt really scores better: only stated rules and demos lift the answer above the weak guess, which looks
at nothing but the label names.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._formats import Conversation, Format, parse_fields, query_of, render_fields
from ._text import STOPWORDS, content_words, find_label, jaccard, words
from .rules import apply_rules, parse_rules
from .worlds import IntentWorld

__all__ = ["DEMO_SIMILARITY", "REASONING_SENTENCE", "classify", "intent_reply", "weak_guess"]

DEMO_SIMILARITY = 0.34
"""Minimum content-word Jaccard similarity between the query and a demo's query for the demo to be imitated."""

REASONING_SENTENCE = "I compared the query with the instructions and the examples I was given."
"""ChainOfThought's `reasoning` value; it names no label so reflection never mistakes it for evidence."""


def weak_guess(query: str, labels: Sequence[str]) -> str:
    """A literal-minded guess: the label ALL of whose name-words (split on "_", stopwords ignored) occur in the
    query by their 4-letter prefixes; the label with most such words wins, ties go to the earlier label, and with
    no such label the first label is answered."""
    query_prefixes = {w[:4] for w in words(query)}
    best_label, best_score = labels[0], 0
    for label in labels:
        name_words = {w[:4] for w in words(label.replace("_", " ")) if w not in STOPWORDS}
        if name_words and name_words <= query_prefixes and len(name_words) > best_score:
            best_label, best_score = label, len(name_words)
    return best_label


def _demo_answer(conversation: Conversation, fmt: Format, query: str, labels: Sequence[str]) -> str | None:
    query_words = content_words(query)
    best: tuple[float, str] | None = None
    for user_text, assistant_text in conversation.demo_pairs():
        demo_words = content_words(query_of(user_text, fmt.input_fields))
        similarity = jaccard(query_words, demo_words)
        if similarity < DEMO_SIMILARITY or (best is not None and similarity <= best[0]):
            continue
        fields = parse_fields(assistant_text)
        answer_text = next((v for k, v in fields.items() if k != "reasoning"), None) if fields else assistant_text
        label = find_label(answer_text or "", labels)
        if label is not None:
            best = (similarity, label)
    return best[1] if best else None


def classify(conversation: Conversation, fmt: Format, world: IntentWorld) -> str:
    """The label the task model answers, by rules, then demos, then the weak guess."""
    query = query_of(conversation.last_user, fmt.input_fields)
    instruction = conversation.system + "\n" + conversation.last_user
    label = apply_rules(parse_rules(instruction, world.labels), query)
    if label is None:
        label = _demo_answer(conversation, fmt, query, world.labels)
    return label if label is not None else weak_guess(query, world.labels)


def intent_reply(conversation: Conversation, fmt: Format, world: IntentWorld) -> str:
    """The answer text in the request's own format."""
    label = classify(conversation, fmt, world)
    if fmt.kind == "plain":
        return label
    values: dict[str, str] = {}
    placed = False
    for name in fmt.output_fields:
        if name == "reasoning":
            values[name] = REASONING_SENTENCE
        elif not placed:
            values[name], placed = label, True
        else:
            values[name] = label
    return render_fields(fmt, values)
