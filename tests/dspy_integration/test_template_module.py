"""PromptTemplate <-> single-predictor module: same bytes on the wire, round trips, save/load."""

from __future__ import annotations

import dspy
import pytest

from rollouts_dspy.dspy_integration.template_module import (
    TemplateAdapter,
    TemplateModule,
    module_to_template,
    template_to_module,
)
from rollouts_dspy.errors import TemplateError
from rollouts_dspy.prompt_optimization.formatting import format_prompt
from rollouts_dspy.prompt_optimization.types import FewShotExample, PromptTemplate

TEMPLATE = PromptTemplate(
    system="  Classify the customer query.\n\n   Keep this indentation {literally}.",
    user_template="Query: {query}\nChannel: {channel}\nAnswer with one label.",
    few_shot_examples=(
        FewShotExample("Query: I lost my card\nChannel: app\nAnswer with one label.", "lost_or_stolen_card"),
        FewShotExample("hand-written demo that matches no template", "request_refund"),
    ),
)


def _same(a: PromptTemplate, b: PromptTemplate) -> bool:
    return (a.system, a.user_template, a.few_shot_examples) == (b.system, b.user_template, b.few_shot_examples)


def test_fields_instructions_and_demos():
    module = template_to_module(TEMPLATE, output_field="intent")
    (name, predictor), = module.named_predictors()
    assert name == "predict"
    assert list(predictor.signature.input_fields) == ["query", "channel"]
    assert list(predictor.signature.output_fields) == ["intent"]
    assert predictor.signature.__doc__ == TEMPLATE.system
    assert predictor.demos[0].toDict() == {"query": "I lost my card", "channel": "app", "intent": "lost_or_stolen_card"}
    assert _same(module_to_template(module), TEMPLATE)


def test_sends_exactly_format_prompts_messages(task_lm):
    module = template_to_module(TEMPLATE, output_field="intent")
    row = {"query": "My top up failed with {braces}", "channel": "web"}
    with dspy.context(lm=task_lm):
        pred = module(**row)
    assert task_lm.history[-1]["messages"] == [m.to_openai() for m in format_prompt(TEMPLATE, row)]
    assert isinstance(pred, dspy.Prediction)
    assert pred.intent == task_lm.history[-1]["outputs"][0]  # the whole answer, unparsed


def test_adapter_is_scoped_to_the_module(task_lm):
    module = template_to_module(TEMPLATE)
    other = dspy.Predict("query -> answer")
    with dspy.context(lm=task_lm):
        module(query="hi", channel="app")
        assert dspy.settings.adapter is None
        other(query="hello")
    assert "[[ ## query ## ]]" in task_lm.history[-1]["messages"][-1]["content"]


def test_empty_system_sends_no_system_message(task_lm):
    template = PromptTemplate(system="", user_template="{query}")
    with dspy.context(lm=task_lm):
        template_to_module(template)(query="I lost my card")
    assert [m["role"] for m in task_lm.history[-1]["messages"]] == ["user"]


def test_round_trip_after_instruction_and_demo_changes():
    module = template_to_module(TEMPLATE, output_field="intent")
    module.predict.signature = module.predict.signature.with_instructions("New\n  text")
    module.predict.demos = [{"query": "q", "channel": "c", "intent": "card_arrival"}]
    back = module_to_template(module)
    assert back.system == "New\n  text"
    assert back.few_shot_examples == (FewShotExample("Query: q\nChannel: c\nAnswer with one label.", "card_arrival"),)


def test_generic_single_predictor_program_converts():
    program = dspy.Predict(dspy.Signature("question -> answer", "Answer briefly."))
    program.demos = [dspy.Example(question="2+2?", answer="4")]
    template = module_to_template(program)
    assert template.system == "Answer briefly."
    assert template.user_template == "question: {question}"
    assert template.few_shot_examples == (FewShotExample("question: 2+2?", "4"),)


def test_multi_predictor_program_is_refused():
    class Two(dspy.Module):
        def __init__(self):
            super().__init__()
            self.a = dspy.Predict("x -> y")
            self.b = dspy.Predict("y -> z")

    with pytest.raises(TemplateError, match="single-predictor"):
        module_to_template(Two())


def test_bad_output_field():
    with pytest.raises(TemplateError, match="output_field"):
        template_to_module(TEMPLATE, output_field="query")
    with pytest.raises(TemplateError, match="no \\{placeholder\\}"):
        TemplateModule("no fields here")


def test_save_load_round_trip(tmp_path, task_lm):
    module = template_to_module(TEMPLATE, output_field="intent")
    module.predict.signature = module.predict.signature.with_instructions("Optimized instruction.")
    path = tmp_path / "program.json"
    module.save(str(path))
    fresh = template_to_module(PromptTemplate("", TEMPLATE.user_template), output_field="intent")
    fresh.load(str(path))
    assert _same(module_to_template(fresh), module_to_template(module))
    with dspy.context(lm=task_lm):
        fresh(query="I lost my card", channel="app")
    sent = task_lm.history[-1]["messages"]
    assert sent == [m.to_openai() for m in format_prompt(module_to_template(module),
                                                          {"query": "I lost my card", "channel": "app"})]


def test_adapter_parse_takes_the_whole_answer():
    adapter = TemplateAdapter("{q}", "a")
    assert adapter.parse(dspy.Signature("q -> a"), "  [[ ## a ## ]] raw\n") == {"a": "  [[ ## a ## ]] raw\n"}
