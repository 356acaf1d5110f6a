"""Property-based: any input to `format_prompt`, and any bytes or JSON given to the file loaders (templates,
results, checkpoints of both engines), gives either a result or our own clear error, never another exception."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollouts_dspy.dtypes import Message, Sample
from rollouts_dspy.errors import CheckpointError, ConfigError, DatasetError, ResultFileError, TemplateError
from rollouts_dspy.io import load_result, load_template, save_result, save_template
from rollouts_dspy.prompt_optimization.formatting import format_prompt, placeholders
from rollouts_dspy.prompt_optimization.protocols import Rollout, RolloutError
from rollouts_dspy.prompt_optimization.types import (
    Candidate,
    CandidateRecord,
    FewShotExample,
    GenerationStats,
    OptimizationResult,
    PromptTemplate,
)
from rollouts_dspy.runtime import read_journal

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Template text rich in the characters that matter to str.format: braces, colons, bangs, brackets, dots.
template_text = st.text(alphabet=st.sampled_from(list(string.ascii_letters[:6] + "{}{}:!.[]0_ \n")), max_size=40)
names = st.sampled_from(["a", "b", "query", "c_1", "0", "", "a.b", "x[0]", " ", "é"])
values = st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=True), st.none(), st.booleans(),
                   st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                   st.binary(max_size=5))
rows = st.dictionaries(st.one_of(names, st.text(max_size=8)), values, max_size=5)
demos = st.lists(st.builds(FewShotExample, input=st.text(max_size=20), output=st.text(max_size=20)), max_size=2)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


@SETTINGS
@given(system=st.text(max_size=20), user=template_text, row=st.one_of(rows, values), few_shot=demos)
def test_format_prompt_gives_messages_or_our_error(system, user, row, few_shot):
    template = PromptTemplate(system=system, user_template=user, few_shot_examples=tuple(few_shot))
    try:
        messages = format_prompt(template, row)
    except (TemplateError, DatasetError) as exc:
        assert str(exc)
        return
    assert messages and all(isinstance(m, Message) for m in messages)
    assert messages[-1].role == "user" and isinstance(messages[-1].content, str)
    assert set(placeholders(user)) <= set(row)


@SETTINGS
@given(user=template_text, row=rows)
def test_format_prompt_on_samples_gives_messages_or_our_error(user, row):
    template = PromptTemplate(system="s", user_template=user)
    try:
        format_prompt(template, Sample(id="1", input=row))
    except (TemplateError, DatasetError):
        pass


def _mutations(data: st.DataObject, tree: Any, depth: int = 0) -> Any:
    """`tree` with one randomly chosen subtree replaced by an arbitrary JSON value (or a key dropped)."""
    if depth > 6 or not isinstance(tree, (dict, list)) or not tree or data.draw(st.booleans()):
        return data.draw(json_values)
    if isinstance(tree, dict):
        key = data.draw(st.sampled_from(sorted(tree)))
        out = dict(tree)
        if data.draw(st.integers(0, 4)) == 0:
            del out[key]
        else:
            out[key] = _mutations(data, tree[key], depth + 1)
        return out
    i = data.draw(st.integers(0, len(tree) - 1))
    return [*tree[:i], _mutations(data, tree[i], depth + 1), *tree[i + 1:]]


TEMPLATE = PromptTemplate(system="Classify.", user_template="Query: {query}",
                          few_shot_examples=(FewShotExample("Query: hi", "greeting"),), score=0.5, id="t1")
CANDIDATE = Candidate.from_template(TEMPLATE)
RESULT = OptimizationResult(
    best_template=TEMPLATE, final_population=(TEMPLATE,),
    history=(GenerationStats(0, 0.5, 0.4, 2, 10, 100, 0.0, 1.0),), method="gepa", best_candidate_id="c0",
    initial_template=TEMPLATE,
    candidates=(CandidateRecord(id="c0", candidate=CANDIDATE, generation=0, origin="initial",
                                train_scores={0: 1.0, 1: 0.0}, val_scores={2: 1.0}),),
    usage={"task": {"calls": 3, "retries": 1, "failures": 0}}, rollouts_used=10, stop_reason="generations",
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("saved")
    save_template(TEMPLATE, folder / "t.json")
    save_result(RESULT, folder / "r.json")
    return {"template": json.loads((folder / "t.json").read_text()),
            "result": json.loads((folder / "r.json").read_text())}


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@SETTINGS
@given(blob=st.binary(max_size=200))
def test_loaders_on_arbitrary_bytes(blob, tmp_path):
    path = _write(tmp_path, "any.json", blob)
    for load in (load_template, load_result):
        try:
            load(path)
        except ResultFileError as exc:
            assert str(path) in str(exc)
    try:
        read_journal(path, method="gepa", fingerprint={})
    except CheckpointError as exc:
        assert str(path) in str(exc)


@SETTINGS
@given(data=st.data())
def test_load_template_and_result_on_damaged_json(data, saved, tmp_path):
    for kind, load in (("template", load_template), ("result", load_result)):
        damaged = _mutations(data, saved[kind])
        path = _write(tmp_path, f"{kind}.json", json.dumps(damaged).encode())
        try:
            load(path)
        except ResultFileError as exc:
            assert str(path) in str(exc)


def _journal_records() -> list[dict[str, Any]]:
    """A small valid journal: header, an admission, a measured and a failed rollout, an answer, a step marker."""
    rollout = Rollout(0, 1.0, "ok", {"query": "hi"}, "greeting", None, demos={"system": {"input": "a", "output": "b"}})
    failed = Rollout(1, None, "", {"query": "yo"}, "", RolloutError("llm", "503", "InternalServerError"))
    return [
        {"kind": "rollouts-dspy/journal", "version": 1, "method": "gepa", "fingerprint": {"seed": 1}},
        {"t": "admit", "n": 2},
        {"t": "r", "k": CANDIDATE.key, "r": rollout.to_dict()},
        {"t": "r", "k": CANDIDATE.key, "r": failed.to_dict(), "cache": False},
        {"t": "a", "d": "abc", "role": "reflection", "text": "New instruction.", "u": [10, 5, 0.001, 1]},
        {"t": "s", "n": 1, "elapsed": 0.5, "best": {"id": "c0", "candidate": CANDIDATE.to_dict(), "score": 1.0}},
    ]


@SETTINGS
@given(data=st.data())
def test_journal_reader_on_damaged_records(data, tmp_path):
    """Any damage to any record of a journal: read, or a CheckpointError naming the file, never another error."""
    from rollouts_dspy.runtime import JOURNAL_FILE, read_journal

    records = _journal_records()
    n = data.draw(st.integers(0, len(records) - 1))
    records[n] = _mutations(data, records[n])
    path = tmp_path / JOURNAL_FILE
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    try:
        read_journal(path, method="gepa", fingerprint={"seed": 1})
    except CheckpointError as exc:
        assert str(path) in str(exc)


# The CLI's own inputs: a run config (TOML) and its dataset file. Anything gives a config / rows or our error.
USER_ERRORS = (ConfigError, DatasetError, TemplateError)
toml_keys = st.sampled_from(["system", "user_template", "path", "inputs", "label", "train", "val", "test", "seed",
                             "type", "provider", "model", "api_base", "timeout", "max_retries", "population_size",
                             "generations", "elite_size", "num_trials", "factory", "limit", "format", "pricing"])
toml_values = st.one_of(st.integers(-3, 200), st.floats(-1, 2), st.booleans(), st.sampled_from(
    ['"Query: {query}"', '"{"', '"rows.jsonl"', '"openai"', '"scripted"', '"0:5"', '"calculator"', '"x:y"',
     '["query"]', '[1, 2, 2]', '[]', '{a = 1}', '"exact_match"', '"intent"']))
tables = st.sampled_from(["template", "dataset", "scorer", "endpoint", "optimizer_endpoint", "environment", "gepa",
                          "mipro", "other"])
VALID_TOML = """[template]
system = "Classify."
user_template = "Query: {query}"
[dataset]
path = "rows.jsonl"
inputs = ["query"]
label = "intent"
train = 0.5
val = 0.5
[endpoint]
provider = "openai"
model = "scripted-task"
api_base = "scripted"
[gepa]
population_size = 4
"""


def _load_everything(path: Path) -> None:
    from rollouts_dspy.config_file import load_config

    config = load_config(path)
    rows = config.rows()
    split = config.split(len(rows))
    for method in ("gepa", "mipro"):
        config.method_config(method, split.train, split.val, None)
    config.score_fn()
    config.environment_factory()


@SETTINGS
@given(edits=st.lists(st.tuples(tables, toml_keys, toml_values), max_size=6), junk=st.binary(max_size=30))
def test_the_run_config_loader_gives_a_config_or_our_error(edits, junk, tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"query": "hi", "intent": "x"}\n' * 6)
    text = VALID_TOML + "".join(f"\n[{t}]\n{k} = {v}\n" for t, k, v in edits)
    for content in (text.encode(), text.encode() + junk, junk):
        path = _write(tmp_path, "run.toml", content)
        try:
            _load_everything(path)
        except USER_ERRORS as exc:  # our errors name the file they are about
            assert "run.toml" in str(exc) or "rows.jsonl" in str(exc), exc


@SETTINGS
@given(blob=st.one_of(st.binary(max_size=120), json_values.map(lambda v: json.dumps(v).encode()),
                      st.lists(json_values, max_size=4).map(lambda rows: "\n".join(map(json.dumps, rows)).encode())),
       suffix=st.sampled_from([".jsonl", ".json", ".csv"]))
def test_the_dataset_loader_gives_rows_or_our_error(blob, suffix, tmp_path):
    from rollouts_dspy.config_file import load_config

    (tmp_path / f"rows{suffix}").write_bytes(blob)
    path = _write(tmp_path, "run.toml", VALID_TOML.replace("rows.jsonl", f"rows{suffix}").encode())
    try:
        rows = load_config(path).rows()
    except USER_ERRORS:
        return
    assert all(isinstance(r, dict) for r in rows)
