"""format_prompt, placeholders and ground-truth resolution, including every error a user can hit."""

from __future__ import annotations

import pytest

from rollouts_dspy import FewShotExample, Message, PromptTemplate, TemplateError, ToolCall, format_prompt
from rollouts_dspy.errors import DatasetError
from rollouts_dspy.prompt_optimization.formatting import ground_truth, placeholders, to_sample, validate_dataset

SPEC = PromptTemplate(
    system="Classify the customer query into one of the banking intents.",
    user_template="Query: {query}\nIntents: {intents}\n\nClassify this query.",
)


def test_messages_are_system_then_demo_pairs_then_user():
    template = PromptTemplate(
        system="sys",
        user_template="Q: {q}",
        few_shot_examples=(FewShotExample("Q: a", "A"), FewShotExample("Q: b", "B")),
    )
    messages = format_prompt(template, {"q": "c", "label": "C"})
    assert [(m.role, m.content) for m in messages] == [
        ("system", "sys"), ("user", "Q: a"), ("assistant", "A"), ("user", "Q: b"), ("assistant", "B"), ("user", "Q: c"),
    ]


def test_tool_call_demos_keep_their_tool_messages():
    call = ToolCall("call_1", "add", {"value": 2})
    demo = FewShotExample(
        "Start with 2.", "",
        (Message("assistant", "", (call,)), Message("tool", "current value: 2", tool_call_id="call_1")),
    )
    messages = format_prompt(PromptTemplate("sys", "{problem}", (demo,)), {"problem": "Start with 3."})
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "user"]
    assert messages[2].tool_calls == (call,)


def test_literal_braces_and_the_spec_example():
    template = PromptTemplate("s", 'Return JSON like {{"intent": "..."}} for: {query}')
    assert format_prompt(template, {"query": "hi"})[-1].content == 'Return JSON like {"intent": "..."} for: hi'
    user = format_prompt(SPEC, {"query": "How do I reset my PIN?", "intent": "pin_reset", "intents": "x"})[-1]
    assert user.content == "Query: How do I reset my PIN?\nIntents: x\n\nClassify this query."


def test_missing_placeholder_names_the_field_and_the_sample():
    with pytest.raises(TemplateError, match=r"sample 'row-7' has no field 'intents'"):
        format_prompt(SPEC, {"id": "row-7", "query": "hi"})


@pytest.mark.parametrize(
    ("user_template", "message"),
    [("Query: {query", "unbalanced braces"), ("Query: }", "unbalanced braces"), ("{0}", "plain field name"),
     ("{}", "plain field name"), ("{a.b}", "plain field name")],
)
def test_bad_templates_are_clear_errors(user_template, message):
    with pytest.raises(TemplateError, match=message):
        placeholders(user_template)


def test_ground_truth_is_the_unreferenced_field_or_a_dict_of_them():
    assert ground_truth(SPEC.user_template, {"query": "q", "intents": "...", "intent": "pin_reset"}) == "pin_reset"
    assert ground_truth("{a}", {"a": 1, "b": 2, "c": 3}) == {"b": 2, "c": 3}
    assert ground_truth("{a}", {"a": 1}) is None
    sample = to_sample(SPEC, [{"query": "q", "intents": "..", "intent": "x"}], 0)
    assert sample.ground_truth == "x" and sample.input == {"query": "q", "intents": ".."} and sample.id == "0"


@pytest.mark.parametrize(
    ("dataset", "seeds", "error", "message"),
    [
        ([], [0], DatasetError, "dataset is empty"),
        ("not a list", [0], DatasetError, "sequence"),
        ([{"query": "q", "intents": "i"}], [1], DatasetError, r"outside the dataset \(valid: 0..0\)"),
        ([{"query": "q", "intents": "i"}], [-1], DatasetError, "outside the dataset"),
        ([{"query": "q", "intents": "i"}] * 2, [0, 0], DatasetError, "more than once"),
        ([["q"]], [0], DatasetError, "must be a mapping"),
        ([{"query": "q"}], [0], TemplateError, "has no field 'intents'"),
    ],
)
def test_dataset_validation(dataset, seeds, error, message):
    with pytest.raises(error, match=message):
        validate_dataset(SPEC, dataset, seeds)
