"""Reflective mutation: the request shows inputs, answers, scores and feedback; answers are parsed robustly."""

from __future__ import annotations

import pytest
from gepa_helpers import WEAK, FakeReflection

from rollouts_dspy.dtypes import Usage
from rollouts_dspy.llm import LLMSession
from rollouts_dspy.prompt_optimization.gepa import MutationError, mutate_template
from rollouts_dspy.prompt_optimization.gepa.reflection import (
    MutationRejected,
    parse_instruction,
    reflect,
    reflection_messages,
)
from rollouts_dspy.prompt_optimization.protocols import Rollout

PARENT = "Classify the customer query into one intent label."
NEW = "Classify the customer query into one intent label. Refunds are request_refund."


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (f"Diagnosis: too vague.\n```\n{NEW}\n```", NEW),
        (f"```text\nold draft idea here, not final\n```\nBetter:\n```markdown\n{NEW}\n```", NEW),
        (NEW, NEW),
        (f"  ```{NEW}```  ", NEW),
    ],
)
def test_the_last_fenced_block_else_the_whole_text_is_the_instruction(answer, expected):
    assert parse_instruction(answer, PARENT) == expected


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("", "empty"),
        ("```\n\n```", "empty"),
        (f"Here it is:\n```\n{NEW}", "truncated"),
        ("Be good.", "garbage"),
        ("Be nice to all.", "too short"),
        ("I'm sorry, but I can't help with rewriting these instructions.", "refusal"),
        ("}{#@!%^&*()_+ 0101 ~~~~ ==== ;;;;; ]]]]", "garbage"),
        (f"```\n  {PARENT.upper().lower()}   \n```", "unchanged"),
        (f"```\n{PARENT}\n```", "unchanged"),
    ],
)
def test_unusable_answers_are_rejected_with_a_reason(answer, reason):
    with pytest.raises(MutationRejected, match=reason):
        parse_instruction(answer, PARENT)


def test_a_cut_short_rewrite_of_a_long_prompt_is_truncated():
    long_parent = "Follow these steps carefully. " * 20
    with pytest.raises(MutationRejected, match="truncated"):
        parse_instruction("```\nFollow these steps carefully, then.\n```", long_parent)


def test_the_request_shows_inputs_answers_scores_and_feedback():
    rollouts = [Rollout(3, 0.0, 'Expected intent "card_arrival", got "pin_blocked".', {"query": "Where is my card?"},
                        "pin_blocked"),
                Rollout(4, None, "", {"query": "hi"}, "", None)]
    text = reflection_messages("Classify.", rollouts, "classify_step")[0].content
    assert "```\nClassify.\n```" in text
    for part in ("query: Where is my card?", "pin_blocked", "Score: 0", 'Expected intent "card_arrival"',
                 "Score: not measured", '"classify_step"'):
        assert part in text


def test_tool_tasks_show_the_tools_the_agent_called():
    output = ('[tool call] add({"a": 2, "b": 3})\n[tool result] 5\n'
              '[tool call] complete_task({"final_result": 5})')
    text = reflection_messages("Solve it.", [Rollout(0, 0.0, "Expected 6", {"problem": "2+4"}, output)])[0].content
    assert "- add(a, b)" in text and "- complete_task(final_result)" in text
    plain = reflection_messages("Solve it.", [Rollout(0, 0.0, "Expected 6", {"problem": "2+4"}, "5")])[0].content
    assert "can call tools" not in plain and "step called" not in plain


async def test_rejected_answers_are_retried_with_a_varied_request_then_dropped():
    model = FakeReflection(answers=["", "I cannot do that, sorry about it."])
    outcome = await reflect(model, reflection_messages(PARENT, []), PARENT, attempts=3)
    assert outcome.instruction is None and len(outcome.rejected) == 3
    assert model.calls[1] != model.calls[0] and "could not be used" in model.calls[1][-1].content
    assert outcome.usage.calls == 3


async def test_a_good_answer_after_a_bad_one_is_adopted():
    model = FakeReflection(answers=["", f"```\n{NEW}\n```"])
    outcome = await reflect(model, reflection_messages(PARENT, []), PARENT, attempts=3)
    assert outcome.instruction == NEW and outcome.rejected == ("empty answer",)


async def test_a_model_that_raises_ends_the_mutation_at_once():
    class Broken:
        calls = 0

        async def complete(self, messages):
            Broken.calls += 1
            raise RuntimeError("provider down")

    outcome = await reflect(Broken(), reflection_messages(PARENT, []), PARENT, attempts=3)
    assert outcome.instruction is None and Broken.calls == 1 and "provider down" in outcome.rejected[0]
    assert outcome.usage == Usage()


async def test_mutate_template_learns_from_feedback_on_the_scripted_server(reflect_endpoint):
    rollouts = [Rollout(0, 0.0, 'Expected intent "request_refund", got "card_arrival".',
                        {"query": "I want my money back for a purchase at Amazon."}, "card_arrival")]
    child = await mutate_template(WEAK, reflect_endpoint, 2, rollouts=rollouts, session=LLMSession())
    assert child.generation == 2 and child.user_template == WEAK.user_template
    assert "request_refund" in child.system and child.system != WEAK.system


async def test_mutate_template_raises_a_clear_error_when_every_answer_is_rejected(server):
    from tests.conftest import make_endpoint

    # The task model answers with a bare label: never a usable instruction.
    with pytest.raises(MutationError, match="mutation failed"):
        await mutate_template(WEAK, make_endpoint(server, "scripted-task"), 1, attempts=2)
