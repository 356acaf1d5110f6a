"""The benchmark worlds: data splits, the weak starting prompt and the ONE judging rule every contender is scored by.

A world has three disjoint splits: `train` (what optimizers learn from), `dev` (the validation set an optimizer
may use for its own selection, paid from its budget) and `val` (held out: only the harness evaluates on it,
outside every budget). `judge(answer, expected)` is the single scoring rule; each contender receives it wrapped in
its own metric shape (rollouts score_fn, DSPy metric, gepa evaluator) with the same feedback text.
"""

from __future__ import annotations

import csv
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BANKING77_DIR", "World", "banking77_available", "judge_intent", "judge_number", "make_world"]

BANKING77_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77"

WEAK_INTENT_INSTRUCTION = "Classify the query."
WEAK_CALCULATOR_INSTRUCTION = "Solve the arithmetic problem."
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def _clean(text: str) -> str:
    return " ".join(str(text).strip().strip("`'\"*").split()).rstrip(".").lower()


def judge_intent(answer: str, expected: str) -> tuple[float, str]:
    """1.0 when the answer is the label (case, quotes, a final period and surrounding space ignored)."""
    ok = _clean(answer) == _clean(expected)
    shown = " ".join(str(answer).split())[:200] or "(empty answer)"
    return (1.0, f"correct: {expected}") if ok else (0.0, f"expected: {expected}, got: {shown}")


def judge_number(answer: str, expected: Any) -> tuple[float, str]:
    """1.0 when the last number in the answer equals the expected value (1e-6), or both say "error"."""
    text = str(answer)
    if isinstance(expected, str):
        ok = _clean(text) == _clean(expected) or expected.lower() in text.lower()
    else:
        numbers = _NUMBER.findall(text)
        ok = bool(numbers) and abs(float(numbers[-1]) - float(expected)) <= 1e-6
    shown = " ".join(text.split())[:200] or "(empty answer)"
    exp = expected if isinstance(expected, str) else f"{float(expected):g}"
    return (1.0, f"correct: {exp}") if ok else (0.0, f"expected: {exp}, got: {shown}")


@dataclass(frozen=True)
class World:
    """One benchmark world. Rows are dicts: `input_field` holds the text, `label_field` the expected answer."""

    name: str
    kind: str  # "intent" | "calculator"
    train: tuple[dict[str, Any], ...]
    dev: tuple[dict[str, Any], ...]
    val: tuple[dict[str, Any], ...]
    input_field: str
    label_field: str
    instruction: str
    user_template: str
    labels_file: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_tools(self) -> bool:
        return self.kind == "calculator"

    def judge(self, answer: Any, expected: Any) -> tuple[float, str]:
        return judge_number(answer, expected) if self.uses_tools else judge_intent(str(answer), str(expected))

    def user_message(self, row: dict[str, Any]) -> str:
        return self.user_template.format(**{self.input_field: row[self.input_field]})

    @property
    def dataset(self) -> list[dict[str, Any]]:
        """train + dev as one indexable dataset (what the rollouts front door and the engines index into)."""
        return [*self.train, *self.dev]

    @property
    def train_seeds(self) -> tuple[int, ...]:
        return tuple(range(len(self.train)))

    @property
    def dev_seeds(self) -> tuple[int, ...]:
        return tuple(range(len(self.train), len(self.train) + len(self.dev)))


def banking77_available(directory: Path = BANKING77_DIR) -> bool:
    return all((directory / name).exists() for name in ("train.csv", "test.csv", "categories.json"))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [{"query": row["text"], "intent": row["category"]} for row in csv.DictReader(f)]


def _top_intents(rows: list[dict[str, str]], k: int) -> set[str]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["intent"]] = counts.get(row["intent"], 0) + 1
    return set(sorted(counts, key=lambda intent: (-counts[intent], intent))[:k])


def _banking77(n_train: int, n_dev: int, n_val: int, data_seed: int, n_intents: int | None = None) -> World:
    """Train and dev come from train.csv, the held-out validation rows from test.csv (a fixed seeded sample).
    With `n_intents`, only the queries of the `n_intents` most frequent intents of train.csv are used; the server
    still knows all 77 labels, so the weak guess can still answer any of them."""
    rng = random.Random(data_seed)
    train_rows = _read_csv(BANKING77_DIR / "train.csv")
    test_rows = _read_csv(BANKING77_DIR / "test.csv")
    if n_intents is not None:
        keep = _top_intents(train_rows, n_intents)
        train_rows = [r for r in train_rows if r["intent"] in keep]
        test_rows = [r for r in test_rows if r["intent"] in keep]
    rng.shuffle(train_rows)
    rng.shuffle(test_rows)
    return World(
        name="banking77",
        kind="intent",
        train=tuple(train_rows[:n_train]),
        dev=tuple(train_rows[n_train : n_train + n_dev]),
        val=tuple(test_rows[:n_val]),
        input_field="query",
        label_field="intent",
        instruction=WEAK_INTENT_INSTRUCTION,
        user_template="Query: {query}",
        labels_file=str(BANKING77_DIR / "categories.json"),
        meta={"labels": len(json.loads((BANKING77_DIR / "categories.json").read_text())), "intents": n_intents},
    )


def _calculator(n_train: int, n_dev: int, n_val: int, data_seed: int) -> World:
    from rollouts_dspy.testing import generate_arithmetic_problems

    rows = generate_arithmetic_problems(n_train + n_dev + n_val, seed=data_seed)
    return World(
        name="calculator",
        kind="calculator",
        train=tuple(rows[:n_train]),
        dev=tuple(rows[n_train : n_train + n_dev]),
        val=tuple(rows[n_train + n_dev :]),
        input_field="problem",
        label_field="answer",
        instruction=WEAK_CALCULATOR_INSTRUCTION,
        user_template="{problem}",
    )


def make_world(name: str, *, n_train: int, n_dev: int, n_val: int, data_seed: int = 0,
               n_intents: int | None = None) -> World:
    if name == "banking77":
        return _banking77(n_train, n_dev, n_val, data_seed, n_intents)
    if name == "calculator":
        return _calculator(n_train, n_dev, n_val, data_seed)
    raise ValueError(f"unknown world {name!r}; valid: banking77, calculator")
