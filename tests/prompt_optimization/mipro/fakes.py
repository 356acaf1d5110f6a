"""In-process fakes of the two seams (Task, LanguageModel) for fast engine tests. Deterministic: a rollout's
score is a pure function of the candidate's content and the sample index."""

from __future__ import annotations

import asyncio
import random
import zlib
from collections import Counter
from collections.abc import Sequence

from rollouts_dspy.dtypes import Message, Usage
from rollouts_dspy.prompt_optimization.protocols import Rollout
from rollouts_dspy.prompt_optimization.types import Candidate


def _unit(*parts: object) -> float:
    return (zlib.crc32(repr(parts).encode()) % 1000) / 1000


class FakeTask:
    """Scores rise with 'good' in an instruction and with demos; counts every run per (candidate key, sample)."""

    def __init__(self, components: Sequence[str] = ("system",), *, fail_every: int = 0,
                 crash_after: int | None = None, delay_seed: int | None = None) -> None:
        """`delay_seed`: each run sleeps a seeded random 0-4 ms, so runs finish in an order set by the seed."""
        self.components = tuple(components)
        self.delay_seed = delay_seed
        self.calls: Counter[tuple[str, int]] = Counter()
        self.fail_every = fail_every
        self.crash_after = crash_after
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    async def run(self, candidate: Candidate, index: int) -> Rollout:
        if self.crash_after is not None and self.total >= self.crash_after:
            raise RuntimeError("simulated crash")
        self.calls[(candidate.key, index)] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.delay_seed is None:
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(random.Random(f"{self.delay_seed}:{candidate.key}:{index}").random() * 0.004)
        self.in_flight -= 1
        demos = {c: {"input": f"q{index}", "output": f"a{index}"} for c in self.components}
        if self.fail_every and index % self.fail_every == 0:
            return Rollout(index, None, demos=demos)
        good = sum("good" in candidate.instructions[c].lower() for c in self.components) / len(self.components)
        shots = min(4, sum(len(candidate.demos.get(c, ())) for c in self.components))
        p = 0.25 + 0.45 * good + 0.05 * shots
        score = 1.0 if _unit(index, "sample") < p else 0.0
        return Rollout(index, score, f"fb{index}", {"q": f"q{index}"}, f"a{index}", usage=Usage(10, 2, 0.001, 1),
                       demos=demos)

    def labeled_demo(self, index: int, component: str) -> dict:
        return {"input": f"q{index}", "output": f"label{index}"}


class FakeProposer:
    """Answers proposals with a fenced instruction that varies with the request; `mode` makes it misbehave.

    Its instructions contain "good", the word FakeTask rewards: a gain on these fakes proves plumbing only."""

    def __init__(self, mode: str = "good", *, cost: float = 0.0) -> None:
        self.mode = mode
        self.cost = cost
        self.calls = 0

    async def complete(self, messages: Sequence[Message]) -> tuple[str, Usage]:
        self.calls += 1
        text = messages[-1].content
        usage = Usage(5, 5, self.cost, 1)
        if "rows of a dataset" in text:
            return "Rows are short queries with one label each.", usage
        n = zlib.crc32(text.encode()) % 97
        if self.mode == "raise":
            raise RuntimeError("proposer down")
        if self.mode == "garbage":
            return ["", "ok", "```\n\n```", "[[ ## x ## ]] junk text here"][n % 4], usage
        if self.mode == "same":
            return "```\nA good instruction.\n```", usage
        return f"```\nA good instruction, variant {n}.\n```", usage
