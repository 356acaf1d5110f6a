"""The benchmark worlds: data splits, the weak starting prompt and the ONE judging rule every contender is scored by.

A world has two disjoint splits: `train` (the only rows an optimizer is given; how each contender validates
inside them is the contender's own default, see `contenders.VALIDATION`) and `val` (held out: only the harness
evaluates on it, outside every budget). Both are drawn by the run's seed, so seeds differ in data as well as in
the optimizer's randomness, and every contender of one seed gets the same rows. `judge(answer, expected)` is the
single scoring rule; each contender receives it wrapped in its own metric shape (rollouts score_fn, DSPy metric,
gepa evaluator) with the same feedback text.

Named worlds (`WORLDS`):
- `banking77-20` / `banking77-77`: Banking77 queries of the 20 most frequent intents / of all 77 intents
  (train.csv -> train rows, test.csv -> held-out rows). The scripted server knows all 77 labels in both.
- `calculator`: generated arithmetic problems solved with tool calls (rollouts front door only).
- `banking77-10` and `calculator-mini`: tiny worlds for the smoke preset (plumbing, not quality): 10 intents
  (the world the old settings were tuned on) with 12 train / 20 held-out rows, and 4 / 4 calculator problems.
"""

from __future__ import annotations

import csv
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BANKING77_DIR", "World", "WorldSpec", "banking77_available", "judge_intent", "judge_number",
           "make_world"]

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


@dataclass(frozen=True, kw_only=True)
class WorldSpec:
    """What a world is made of, before a seed draws its rows."""

    name: str
    kind: str  # "intent" | "calculator"
    n_train: int
    n_val: int
    n_intents: int | None = None  # intent worlds: the n most frequent intents of train.csv (None: all 77)

    def describe(self) -> str:
        what = "calculator problems" if self.kind == "calculator" else (
            f"Banking77, queries of the {self.n_intents} most frequent intents" if self.n_intents and
            self.n_intents < 77 else "Banking77, all 77 intents")
        return f"{what}: {self.n_train} train / {self.n_val} held-out rows"


WORLDS: dict[str, WorldSpec] = {
    "banking77-20": WorldSpec(name="banking77-20", kind="intent", n_train=300, n_val=200, n_intents=20),
    "banking77-77": WorldSpec(name="banking77-77", kind="intent", n_train=300, n_val=200, n_intents=None),
    "calculator": WorldSpec(name="calculator", kind="calculator", n_train=20, n_val=30),
    "banking77-10": WorldSpec(name="banking77-10", kind="intent", n_train=12, n_val=20, n_intents=10),
    "calculator-mini": WorldSpec(name="calculator-mini", kind="calculator", n_train=4, n_val=4),
}


@dataclass(frozen=True)
class World:
    """One benchmark world drawn for one seed. Rows are dicts: `input_field` holds the text, `label_field` the
    expected answer."""

    name: str
    kind: str  # "intent" | "calculator"
    train: tuple[dict[str, Any], ...]
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
    def train_seeds(self) -> tuple[int, ...]:
        return tuple(range(len(self.train)))


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


def _banking77(spec: WorldSpec, seed: int) -> World:
    """Train rows from train.csv, held-out rows from test.csv, each a seeded sample (the seed names the draw)."""
    rng = random.Random(f"{spec.name}:{seed}")
    train_rows = _read_csv(BANKING77_DIR / "train.csv")
    test_rows = _read_csv(BANKING77_DIR / "test.csv")
    if spec.n_intents is not None:
        keep = _top_intents(train_rows, spec.n_intents)
        train_rows = [r for r in train_rows if r["intent"] in keep]
        test_rows = [r for r in test_rows if r["intent"] in keep]
    rng.shuffle(train_rows)
    rng.shuffle(test_rows)
    labels_file = BANKING77_DIR / "categories.json"
    return World(
        name=spec.name,
        kind="intent",
        train=tuple(train_rows[: spec.n_train]),
        val=tuple(test_rows[: spec.n_val]),
        input_field="query",
        label_field="intent",
        instruction=WEAK_INTENT_INSTRUCTION,
        user_template="Query: {query}",
        labels_file=str(labels_file),
        meta={"labels": len(json.loads(labels_file.read_text())), "intents": spec.n_intents or 77},
    )


def _calculator(spec: WorldSpec, seed: int) -> World:
    from rollouts_dspy.testing import generate_arithmetic_problems

    rows = generate_arithmetic_problems(spec.n_train + spec.n_val, seed=seed)
    return World(
        name=spec.name,
        kind="calculator",
        train=tuple(rows[: spec.n_train]),
        val=tuple(rows[spec.n_train :]),
        input_field="problem",
        label_field="answer",
        instruction=WEAK_CALCULATOR_INSTRUCTION,
        user_template="{problem}",
    )


def world_spec(name: str) -> WorldSpec:
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; valid: {', '.join(WORLDS)}")
    return WORLDS[name]


def needs_banking77(name: str) -> bool:
    return world_spec(name).kind == "intent"


def make_world(name: str, seed: int) -> World:
    spec = world_spec(name)
    return _calculator(spec, seed) if spec.kind == "calculator" else _banking77(spec, seed)
