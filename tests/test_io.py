"""Saving and loading templates and results: round trips, schema checks, clear errors, no secrets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts_dspy.dtypes import Endpoint, Message, ToolCall
from rollouts_dspy.errors import ResultFileError
from rollouts_dspy.io import (
    RESULT_SCHEMA,
    SCHEMA_VERSION,
    TEMPLATE_SCHEMA,
    load_result,
    load_template,
    result_from_dict,
    result_to_dict,
    save_result,
    save_template,
    template_from_dict,
    template_to_dict,
)
from rollouts_dspy.prompt_optimization.types import (
    Candidate,
    CandidateRecord,
    FewShotExample,
    GenerationStats,
    OptimizationResult,
    PromptTemplate,
)


def _template(**overrides) -> PromptTemplate:
    calls = (ToolCall("c1", "add", {"value": 3}),)
    example = FewShotExample(
        "Start with 2. Add 3.", "5",
        (Message("assistant", "", calls), Message("tool", "current value: 5", tool_call_id="c1")),
    )
    params = dict(system="Classify {carefully}.", user_template="Query: {query}",
                  few_shot_examples=(FewShotExample("Query: lost card", "lost_or_stolen_card"), example),
                  score=0.75, generation=3, id="abc12345")
    params.update(overrides)
    return PromptTemplate(**params)


def _result() -> OptimizationResult:
    initial = PromptTemplate("Classify.", "Query: {query}", id="initial")
    best = _template()
    records = (
        CandidateRecord("c0", Candidate.from_template(initial), 0, "initial", (), {0: 0.0, 3: 1.0}, {10: 0.5}),
        CandidateRecord("c1", Candidate.from_template(best), 1, "mutation", ("c0",), {0: 1.0, 3: 1.0},
                        {10: 1.0, 11: 0.5}, failures=1),
    )
    history = (GenerationStats(0, 0.5, 0.5, 1, 2, 100, 0.0, 0.1), GenerationStats(1, 1.0, 0.75, 2, 6, 300, 0.01, 0.4))
    endpoint = Endpoint(provider="openai", model="gpt-4o-mini", api_key="sk-secret-123")
    return OptimizationResult(
        best_template=best, final_population=(initial, best), history=history, method="gepa", seed=7,
        best_candidate_id="c1", initial_template=initial, candidates=records,
        usage={"task": {"calls": 8, "prompt_tokens": 300, "cost_usd": 0.01}},
        rollouts_used=8, stop_reason="generations",
        config={"population_size": 4, "train_seeds": (0, 3), "endpoint": endpoint, "api_key": "sk-secret-456",
                "nested": {"token": "t0k3n", "max_tokens": 5}},
    )


def test_template_round_trip_keeps_every_field(tmp_path):
    template = _template()
    path = save_template(template, tmp_path / "best.json")
    data = json.loads(path.read_text())
    assert data["schema"] == TEMPLATE_SCHEMA and data["schema_version"] == SCHEMA_VERSION
    assert load_template(path) == template
    assert template_from_dict(template_to_dict(template)) == template


def test_result_round_trip_converts_score_keys_back_to_ints(tmp_path):
    result = _result()
    path = save_result(result, tmp_path / "out" / "result.json")
    data = json.loads(path.read_text())
    assert data["schema"] == RESULT_SCHEMA
    assert data["candidates"][0]["train_scores"] == {"0": 0.0, "3": 1.0}
    loaded = load_result(path)
    assert loaded.candidates == result.candidates
    assert loaded.candidates[1].train_scores == {0: 1.0, 3: 1.0}
    assert loaded.best_template == result.best_template
    assert loaded.initial_template == result.initial_template
    assert loaded.final_population == result.final_population
    assert loaded.history == result.history
    assert (loaded.method, loaded.seed, loaded.best_candidate_id, loaded.stop_reason, loaded.rollouts_used) == (
        "gepa", 7, "c1", "generations", 8)
    assert loaded.usage == result.usage
    assert result_from_dict(result_to_dict(result)) == loaded


def test_result_file_never_holds_an_api_key(tmp_path):
    path = save_result(_result(), tmp_path / "result.json")
    text = path.read_text()
    assert "sk-secret" not in text and "t0k3n" not in text
    config = load_result(path).config
    assert config["endpoint"]["model"] == "gpt-4o-mini" and "api_key" not in config["endpoint"]
    assert config["nested"] == {"max_tokens": 5}
    assert config["train_seeds"] == [0, 3]


def test_load_template_accepts_a_result_file(tmp_path):
    result = _result()
    path = save_result(result, tmp_path / "result.json")
    assert load_template(path) == result.best_template


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "corrupted, not valid JSON"),
        ("[1, 2]", "found a JSON list"),
        (json.dumps({"schema": "something/else", "schema_version": 1}), "found 'something/else'"),
        (json.dumps({"schema": TEMPLATE_SCHEMA, "schema_version": 99, "system": "", "user_template": ""}),
         "schema_version 99 by a newer rollouts-dspy"),
        (json.dumps({"schema": TEMPLATE_SCHEMA, "schema_version": "1"}), "must be a positive integer"),
        (json.dumps({"schema": TEMPLATE_SCHEMA, "schema_version": 1, "user_template": "x"}), "no 'system' field"),
        (json.dumps({"schema": TEMPLATE_SCHEMA, "schema_version": 1, "system": 3, "user_template": "x"}),
         "template.system must be a str"),
        (json.dumps({"schema": TEMPLATE_SCHEMA, "schema_version": 1, "system": "", "user_template": "x",
                     "few_shot_examples": [{"input": "a"}]}), "few_shot_examples[0] is malformed"),
    ],
)
def test_bad_template_files_give_a_clear_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultFileError) as info:
        load_template(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_bad_result_files_give_a_clear_error(tmp_path):
    good = json.loads(save_result(_result(), tmp_path / "r.json").read_text())
    cases = {
        "newer": ({**good, "schema_version": SCHEMA_VERSION + 1}, "newer rollouts-dspy"),
        "template": ({**good, "schema": TEMPLATE_SCHEMA}, "expected \"schema\": 'rollouts-dspy/result'"),
        "scores": ({**good, "candidates": [{**good["candidates"][0], "train_scores": {"x": 1}}]},
                   "candidates[0].train_scores must map row indices"),
        "history": ({**good, "history": [{"generation": 0}]}, "history[0] is malformed"),
        "best": ({**good, "best_template": None}, "best_template must be a JSON object"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        with pytest.raises(ResultFileError) as info:
            load_result(path)
        assert message in str(info.value), name
        assert str(path) in str(info.value)
    truncated = tmp_path / "truncated.json"
    truncated.write_text(json.dumps(good)[:200])
    with pytest.raises(ResultFileError, match="corrupted"):
        load_result(truncated)
    with pytest.raises(ResultFileError, match="no such file"):
        load_result(tmp_path / "missing.json")


def test_save_rejects_the_wrong_type(tmp_path):
    with pytest.raises(TypeError, match="PromptTemplate"):
        save_template(_result(), tmp_path / "x.json")
    with pytest.raises(TypeError, match="OptimizationResult"):
        save_result(_template(), tmp_path / "x.json")


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(system=_text, user=_text, pairs=st.lists(st.tuples(_text, _text), max_size=3),
       score=st.none() | st.floats(allow_nan=False, allow_infinity=False), generation=st.integers(0, 1000))
def test_any_template_survives_a_json_round_trip(system, user, pairs, score, generation):
    template = PromptTemplate(system, user, tuple(FewShotExample(a, b) for a, b in pairs), score, generation)
    data = json.loads(json.dumps({"schema": TEMPLATE_SCHEMA, "schema_version": 1, **template_to_dict(template)}))
    assert template_from_dict(data) == template


async def test_a_saved_template_feeds_evaluate_template_and_dspy(tmp_path, task_endpoint):
    from rollouts_dspy.dspy_integration.template_module import template_to_module
    from rollouts_dspy.prompt_optimization.evaluation import evaluate_template
    from rollouts_dspy.scorers import exact_match

    template = PromptTemplate(
        "Classify the query.\n- If the query mentions \"refund\", answer: request_refund",
        "Query: {query}", (FewShotExample("Query: my card is lost", "lost_or_stolen_card"),))
    loaded = load_template(save_template(template, tmp_path / "best.json"))
    rows = [{"query": "I want a refund please", "intent": "request_refund"}]
    scored = await evaluate_template(loaded, [0], rows, task_endpoint, exact_match())
    assert scored.score == 1.0
    module = template_to_module(loaded, output_field="intent")
    assert len(module.named_predictors()) == 1
