"""Regenerate `intents.jsonl`, the quickstart's small banking-style intent dataset (300 generated queries over 12
intents). It is generated, not collected: no real customer data, and never the real Banking77.

    python examples/data/make_intents.py            # rewrites examples/data/intents.jsonl

A test checks that the shipped file equals what this script writes, so the two never drift.
"""

from __future__ import annotations

import json
from pathlib import Path

from rollouts_dspy.testing.worlds import generate_intent_queries

ROWS = 300
SEED = 7
PATH = Path(__file__).with_name("intents.jsonl")


def render() -> str:
    rows = generate_intent_queries(n=ROWS, seed=SEED)
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {ROWS} rows to {PATH}")
