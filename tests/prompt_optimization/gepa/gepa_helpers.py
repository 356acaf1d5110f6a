"""Shared pieces of the GEPA tests: score functions with feedback, datasets, in-process fakes of the seams."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

from rollouts_dspy.dtypes import Message, Metric, Score, Usage
from rollouts_dspy.prompt_optimization.protocols import Rollout
from rollouts_dspy.prompt_optimization.types import Candidate, PromptTemplate
from rollouts_dspy.testing import QUICKSTART_INTENTS

WEAK = PromptTemplate(
    system="Classify the query.",
    user_template="Query: {query}\nIntents: " + ", ".join(QUICKSTART_INTENTS),
)


def intent_score(trajectory, sample) -> Score:
    got = trajectory.final_text.strip()
    ok = got == sample.ground_truth
    feedback = None if ok else f'Expected intent "{sample.ground_truth}", got "{got}".'
    return Score((Metric("correct", 1.0 if ok else 0.0),), feedback)


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def arithmetic_score(trajectory, sample) -> Score:
    got = None
    for m in trajectory.messages:
        for call in m.tool_calls:
            if call.name == "complete_task":
                got = str(call.args.get("final_result"))
    if got is None:
        numbers = _NUMBER.findall(trajectory.final_text)
        got = numbers[-1] if numbers else ""
    try:
        ok = abs(float(got) - float(sample.ground_truth)) < 1e-6
    except ValueError:
        ok = False
    feedback = None if ok else f"Expected {sample.ground_truth}, got {got}."
    return Score((Metric("correct", 1.0 if ok else 0.0),), feedback)


class FakeTask:
    """A fake Task (the seam): a sample is solved when the instruction mentions its word `w<index % words>`;
    failures say which word was missing. Counts runs and the most rollouts in flight."""

    def __init__(self, components: Sequence[str] = ("system",), words: int = 6, delay: float = 0.001,
                 fail: frozenset[int] = frozenset(), fail_kind: str = "score_fn") -> None:
        self.components = tuple(components)
        self.words = words
        self.delay = delay
        self.fail = fail
        self.fail_kind = fail_kind
        self.runs: list[tuple[str, int]] = []
        self.finished: list[tuple[str, int]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def run(self, candidate: Candidate, index: int) -> Rollout:
        self.runs.append((candidate.key, index))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        self.finished.append((candidate.key, index))
        if index in self.fail:
            from rollouts_dspy.prompt_optimization.protocols import RolloutError

            return Rollout(index, None, error=RolloutError(self.fail_kind, "gave up"))
        word = f"w{index % self.words}"
        text = " ".join(candidate.instructions.values())
        ok = re.search(rf"\b{word}\b", text) is not None
        return Rollout(index, 1.0 if ok else 0.0, "" if ok else f"needed the word {word}",
                       {"question": f"q{index}"}, "yes" if ok else "no", usage=Usage(10, 2, 0.001, 1))

    def labeled_demo(self, index, component):
        return None


class FakeReflection:
    """A fake LanguageModel: adds the first word named in the feedback it is shown (a reflective learner).

    Its answer is exactly what FakeTask rewards, so a run that improves on these two fakes proves plumbing
    (feedback reaches reflection, answers reach candidates), not search quality; such tests say "plumbing"."""

    def __init__(self, answers: Sequence[str] | None = None, delay: float = 0.001) -> None:
        self.calls: list[list[Message]] = []
        self.answers = list(answers) if answers is not None else None
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0

    async def complete(self, messages):
        self.calls.append(list(messages))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if self.answers is not None:
            return self.answers[(len(self.calls) - 1) % len(self.answers)], Usage(5, 5, 0.0001, 1)
        text = messages[0].content
        current = re.search(r"```\n(.*?)\n```", text, re.S).group(1)
        needed = re.findall(r"needed the word (w\d+)", text)
        new = [w for w in dict.fromkeys(needed) if w not in current.split()][:1]
        return f"Diagnosis done.\n```\n{current} Also mind {' '.join(new) or 'details'}.\n```", Usage(5, 5, 0.0001, 1)
