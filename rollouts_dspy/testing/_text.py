"""Text helpers shared by the scripted policies: message text, content words, label spotting."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been before being below between
    both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each few for from
    further had hadn't has hasn't have haven't having he her here hers herself him himself his how i i'd i'm i've if
    in into is isn't it it's its itself just let's me more most my myself no nor not now of off on once only or other
    ought our ours ourselves out over own same she should shouldn't so some such than that that's the their theirs
    them themselves then there there's these they this those through to too under until up upon very was wasn't we
    were weren't what what's when where which while who whom why will with won't would wouldn't you you'd you'll
    you're you've your yours yourself yourselves also get got still yet want wanted need needs like please hello
    thanks thank help hey dear sir madam okay know tell much many since ago way even really already able
    """.split()
)

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a chat message; content may be a string, None, or a list of OpenAI content parts."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
        return "\n".join(str(p) for p in parts)
    return str(content)


def words(text: str) -> list[str]:
    """Lowercase word tokens (letters and inner apostrophes)."""
    return _WORD.findall(text.lower())


def content_words(text: str, min_len: int = 3) -> set[str]:
    """Lowercase alphabetic words of at least `min_len` letters that are not stopwords."""
    return {w for w in words(text) if len(w) >= min_len and w not in STOPWORDS and "'" not in w}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def keyword_in(keyword: str, lowered_text: str) -> bool:
    """Substring match that must start on a word boundary ("arriv" matches "arrived", not "tarrive")."""
    return re.search(r"(?<![a-z0-9])" + re.escape(keyword.lower()), lowered_text) is not None


def label_pattern(labels: Sequence[str]) -> re.Pattern[str]:
    """Matches any label as a whole token, case-insensitively; longest label first; a trailing "?" optional."""
    alternatives = []
    for label in sorted(labels, key=len, reverse=True):
        core = label.rstrip("?")
        tail = r"\??" if label.endswith("?") else ""
        alternatives.append(re.escape(core) + tail)
    return re.compile(r"(?<![A-Za-z0-9_])(?:" + "|".join(alternatives) + r")(?![A-Za-z0-9_])", re.I)


def iter_labels(text: str, labels: Sequence[str]) -> Iterator[tuple[int, int, str]]:
    """(start, end, label in the world's spelling) for each label occurrence in `text`."""
    by_core = {label.rstrip("?").lower(): label for label in labels}
    for match in label_pattern(labels).finditer(text):
        yield match.start(), match.end(), by_core[match.group().rstrip("?").lower()]


def find_label(text: str, labels: Sequence[str]) -> str | None:
    """The label `text` is (whole text, ignoring case, quotes and a final period), else the first label in it."""
    stripped = text.strip().strip("`*\"'").strip()
    for candidate in (stripped, stripped.rstrip(".")):
        for label in labels:
            if candidate.lower() == label.lower():
                return label
    first = next(iter_labels(text, labels), None)
    return first[2] if first else None


def format_number(value: float) -> str:
    """12.0 -> "12"; 2.5 -> "2.5" (rounded to 10 places to hide float noise)."""
    if float(value).is_integer():
        return str(int(value))
    return repr(round(float(value), 10))


def approx_tokens(text: str) -> int:
    """About four characters a token, at least 1."""
    return max(1, len(text) // 4)
