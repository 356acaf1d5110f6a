from __future__ import annotations

from rollouts_dspy import LLMCallError
from rollouts_dspy.prompt_optimization.mipro import dedupe_instructions, parse_instruction
from rollouts_dspy.prompt_optimization.mipro.proposals import (
    ProposalContext,
    ask_all,
    ask_one,
    collect_proposals,
    proposal_messages,
    proposal_requests,
    render_demo,
    summary_messages,
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


def _context(**kw):
    params = dict(component=None, current="Original.", summary="s",
                  pool=tuple({"input": f"q{i}", "output": "a"} for i in range(20)))
    params.update(kw)
    return ProposalContext(**params)


async def test_candidates_original_first_deduped_bounded():
    requests = proposal_requests(_context(), num_candidates=6, tips=("", "t"), per_prompt=3, failures_per_prompt=0,
                                 seed=0)
    assert len(requests) == 5
    result = collect_proposals("Original.", await ask_all(FakeProposer(), requests))
    assert result.instructions[0] == "Original." and 2 <= len(result.instructions) <= 6
    assert len(set(result.instructions)) == len(result.instructions)


async def test_same_proposal_twice_is_one_candidate():
    requests = proposal_requests(_context(pool=()), num_candidates=5, tips=("",), per_prompt=3,
                                 failures_per_prompt=0, seed=0)
    result = collect_proposals("Original.", await ask_all(FakeProposer("same"), requests))
    assert result.instructions == ("Original.", "A good instruction.")


async def test_garbage_or_failing_proposer_leaves_only_the_original_and_says_why():
    for mode, why in (("garbage", "not an instruction"), ("raise", "failed: RuntimeError: proposer down")):
        requests = proposal_requests(_context(pool=()), num_candidates=5, tips=("",), per_prompt=3,
                                     failures_per_prompt=0, seed=0)
        result = collect_proposals("Original.", await ask_all(FakeProposer(mode), requests))
        assert result.instructions == ("Original.",) and len(result.dropped) == 4
        assert all(why in reason for reason in result.dropped), result.dropped


def test_the_aware_flags_choose_what_a_request_shows():
    full = _context(summary="Banking queries.", program="the model reads the input field(s) query.",
                    failures=("Input:\nquery: hi\nModel output: x\nScore: 0\nFeedback: expected: greet",))
    system, user = (m.content for m in proposal_requests(full, num_candidates=2, tips=("Be brief.",), per_prompt=2,
                                                         failures_per_prompt=1, seed=0)[0])
    assert "Banking queries." in system and "input field(s) query" in system and "Tip: Be brief." in system
    assert "Expected output: a" in user and "Feedback: expected: greet" in user
    bare = _context(summary="", program="", pool=(), failures=())
    system, user = (m.content for m in proposal_requests(bare, num_candidates=2, tips=(), per_prompt=2,
                                                         failures_per_prompt=1, seed=0)[0])
    assert "About the data" not in system and "About the program" not in system and "Tip:" not in system
    assert "Examples of the task" not in user and "fell short" not in user
    assert user.startswith("Current instruction:\n```\nOriginal.\n```")


def test_summary_request_shows_rows_without_cue_words():
    text = summary_messages([{"q": "x", "a": "y"}])[1].content
    assert '{"a": "y", "q": "x"}' in text and "expected" not in text.lower()


class _DownProposer:
    """A LanguageModel whose provider is down: every call fails after its retries."""

    async def complete(self, messages):
        raise LLMCallError("ServiceUnavailableError", "provider down", retryable=True, attempts=3)


async def test_a_failed_request_says_why_and_whether_the_provider_failed():
    reply = await ask_one(_DownProposer(), summary_messages([{"q": 1}]))
    assert reply.text is None and reply.provider and "provider down" in reply.error
    broken = await ask_one(FakeProposer("raise"), proposal_messages("Original.", "", [], ""))
    assert broken.text is None and not broken.provider  # a broken LM is not the provider being down
