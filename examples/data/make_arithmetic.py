"""Regenerate `arithmetic.jsonl`: 120 arithmetic word problems ("Start with 12. Add 7. Multiply by 3.") with their
answers, for the calculator (tool-use) config. A test checks the shipped file equals what this script writes.

    python examples/data/make_arithmetic.py
"""

from __future__ import annotations

import json
from pathlib import Path

from rollouts_dspy.testing.worlds import generate_arithmetic_problems

ROWS = 120
SEED = 11
PATH = Path(__file__).with_name("arithmetic.jsonl")


def render() -> str:
    rows = generate_arithmetic_problems(n=ROWS, seed=SEED)
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {ROWS} rows to {PATH}")
