from __future__ import annotations

from rollouts_dspy import LLMCallError
from rollouts_dspy.prompt_optimization.mipro import dedupe_instructions, parse_instruction
from rollouts_dspy.prompt_optimization.mipro.proposals import (
    proposal_messages,
    propose_for_component,
    render_demo,
    summarize_dataset,
)

from .fakes import FakeProposer


def test_parse_takes_the_first_fence_or_the_text_and_rejects_garbage():
    assert parse_instruction("Sure!\n```\nAnswer with the label only.\n```\nmore") == "Answer with the label only."
    assert parse_instruction("  Answer with the label only, please.  ") == "Answer with the label only, please."
    for garbage in ("", "   ", "ok", "```\n\n```", "two words", "x" * 9000, "[[ ## instruction ## ]] fill me in",
                    None, 42):
        assert parse_instruction(garbage) is None


def test_dedupe_keeps_original_first_and_drops_duplicates_and_none():
    out = dedupe_instructions("Classify it.", ["classify  IT.", None, "Be precise.", "be precise.", "New one."])
    assert out == ["Classify it.", "Be precise.", "New one."]


def test_render_demo_keeps_tool_calls_and_results():
    demo = {"input": "Start with 2. Add 3.", "output": "",
            "messages": [{"role": "assistant", "content": "", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"value\": 2}"}}]},
                {"role": "tool", "content": "current value: 2", "tool_call_id": "c1"}]}
    text = render_demo(demo)
    assert "[tool call] add({\"value\": 2})" in text and "[tool result] current value: 2" in text
    assert render_demo({"query": "hi", "intent": "greet"}) == "query: hi\nintent: greet"


def test_proposal_request_is_grounded():
    msgs = proposal_messages("Old instruction.", "Short banking queries.", [{"input": "q", "output": "a"}],
                             "Keep it short.")
    system, user = msgs[0].content, msgs[1].content
    assert "Short banking queries." in system and "Tip: Keep it short." in system
    assert user.index("```\nOld instruction.\n```") < user.index("Expected output: a")


async def test_candidates_original_first_deduped_bounded():
    result = await propose_for_component(FakeProposer(), current="Original.", summary="s",
                                         pool=[{"input": f"q{i}", "output": "a"} for i in range(20)],
                                         num_candidates=6, tips=("", "t"), per_prompt=3, seed=0)
    assert result.instructions[0] == "Original." and 2 <= len(result.instructions) <= 6
    assert len(set(result.instructions)) == len(result.instructions)


async def test_same_proposal_twice_is_one_candidate():
    result = await propose_for_component(FakeProposer("same"), current="Original.", summary="s", pool=[],
                                         num_candidates=5, tips=("",), per_prompt=3, seed=0)
    assert result.instructions == ("Original.", "A good instruction.")


async def test_garbage_or_failing_proposer_leaves_only_the_original():
    for mode in ("garbage", "raise"):
        result = await propose_for_component(FakeProposer(mode), current="Original.", summary="", pool=[],
                                             num_candidates=5, tips=("",), per_prompt=3, seed=0)
        assert result.instructions == ("Original.",) and len(result.warnings) == 4
    summary = await summarize_dataset(FakeProposer("raise"), [{"q": 1}])  # this fake still answers summaries
    assert summary.instructions == ("Rows are short queries with one label each.",) and summary.warnings == ()


class _DownProposer:
    """A LanguageModel whose provider is down: every call fails after its retries."""

    async def complete(self, messages):
        raise LLMCallError("ServiceUnavailableError", "provider down", retryable=True, attempts=3)


async def test_a_failed_dataset_summary_is_empty_and_says_why():
    summary = await summarize_dataset(_DownProposer(), [{"q": 1}])
    assert summary.instructions == ("",)
    assert len(summary.warnings) == 1 and "dataset summary failed" in summary.warnings[0]
    assert "provider down" in summary.warnings[0]
