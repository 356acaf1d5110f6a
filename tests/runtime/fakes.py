"""In-process fakes of the runtime's seams (a Task and a LanguageModel), for fast unit tests of the runtime."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from rollouts_dspy.dtypes import Message, Usage
from rollouts_dspy.prompt_optimization.protocols import Rollout, RolloutError
from rollouts_dspy.prompt_optimization.types import Candidate
from rollouts_dspy.runtime import ProviderError


class FakeTask:
    """Scores 1.0 when the instruction contains the sample's word, else 0.0; `fail` maps sample index to a
    provider failure kind (unmeasured rollout). Each rollout costs `cost` dollars."""

    components = ("system",)

    def __init__(self, words: Sequence[str], *, cost: float | None = 0.01, fail: Mapping[int, str] | None = None,
                 delay: float = 0.0) -> None:
        self.words, self.cost, self.fail, self.delay = list(words), cost, dict(fail or {}), delay
        self.runs: list[tuple[str, int]] = []

    async def run(self, candidate: Candidate, index: int) -> Rollout:
        self.runs.append((candidate.key, index))
        if self.delay:
            await asyncio.sleep(self.delay)
        if index in self.fail:
            return Rollout(index, None, error=RolloutError("llm", "provider down", self.fail[index]),
                           usage=Usage(0, 0, None, 1))
        word = self.words[index]
        score = 1.0 if word in candidate.instructions["system"] else 0.0
        return Rollout(index, score, f"expected: {word}", {"q": word}, "answer", usage=Usage(10, 2, self.cost, 1))

    def labeled_demo(self, index: int, component: str) -> Mapping[str, Any] | None:
        return {"input": self.words[index], "output": self.words[index]}


class FakeModel:
    """Answers with `answer`; raises `errors` in order first (one per call)."""

    def __init__(self, answer: str = "```\nnew instructions here\n```", *, errors: Sequence[BaseException] = (),
                 cost: float | None = 0.02) -> None:
        self.answer, self.errors, self.cost = answer, list(errors), cost
        self.calls = 0

    async def complete(self, messages: Sequence[Message]) -> tuple[str, Usage]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.answer, Usage(100, 20, self.cost, 1)


def provider_down(kind: str = "RateLimitError") -> ProviderError:
    return ProviderError(kind, "the provider is down", retryable=True, attempts=3)
