"""The TOML run config: every error names the file, the key and what was expected."""

from __future__ import annotations

import json
import textwrap

import pytest

from rollouts_dspy.config_file import load_config
from rollouts_dspy.dtypes import Sample, Trajectory
from rollouts_dspy.errors import ConfigError

BASE = {
    "template": 'system = "Classify."\nuser_template = "Query: {query}"',
    "dataset": 'path = "d.jsonl"\ninputs = ["query"]\nlabel = "intent"\ntrain = 0.5\nval = 0.5',
    "scorer": 'type = "exact_match"',
    "endpoint": 'provider = "openai"\nmodel = "scripted-task"\napi_base = "scripted"',
}


def write(tmp_path, drop=(), **tables) -> str:
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"query": f"q{i}", "intent": "x", "other": i}) + "\n"
                                              for i in range(10)))
    merged = {k: v for k, v in {**BASE, **tables}.items() if k not in drop}
    text = "\n".join(f"[{name}]\n{textwrap.dedent(body)}\n" for name, body in merged.items())
    path = tmp_path / "run.toml"
    path.write_text(text)
    return str(path)


def error(tmp_path, **kwargs) -> str:
    path = write(tmp_path, **kwargs)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(path + ": "), message
    return message


def test_a_good_config_loads_everything(tmp_path):
    config = load_config(write(tmp_path))
    assert config.template.system == "Classify." and config.template.user_template == "Query: {query}"
    rows = config.rows()
    assert rows[0] == {"query": "q0", "intent": "x"}  # projected: the label is the only ground truth
    split = config.split(len(rows))
    assert len(split.train) == 5 and len(split.val) == 5
    assert config.uses_scripted_server and config.optimizer_endpoint is config.endpoint
    endpoint = config.endpoint.build("http://127.0.0.1:9/v1")
    assert endpoint.api_base == "http://127.0.0.1:9/v1" and endpoint.model == "scripted-task"
    score_fn = config.score_fn()
    assert score_fn(Trajectory(), Sample("0", {}, "x")).reward == 0.0
    assert config.environment_factory() is None


def test_real_endpoint_reads_its_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY_VAR", "sk-from-env")
    config = load_config(write(tmp_path, endpoint='provider = "openai"\nmodel = "gpt-4o-mini"\n'
                                                  'api_key_env = "MY_KEY_VAR"\ntemperature = 0.5\n'
                                                  'pricing = [0.15, 0.6]'))
    assert not config.uses_scripted_server
    endpoint = config.endpoint.build()
    assert endpoint.api_key == "sk-from-env" and endpoint.temperature == 0.5 and endpoint.pricing == (0.15, 0.6)
    assert "sk-from-env" not in json.dumps(endpoint.to_dict())


@pytest.mark.parametrize(("tables", "expected"), [
    ({"drop": ("dataset",)}, "[dataset]: missing table"),
    ({"extra": "x = 1"}, "[extra]: unknown table"),
    ({"template": 'system = "s"'}, "[template] user_template: expected a string with {field} placeholders"),
    ({"template": 'system = 3\nuser_template = "{query}"'}, "[template] system: expected a string"),
    ({"template": 'system = "s"\nuser_template = "no fields"'}, "[template] user_template: expected at least one"),
    ({"template": 'system = "s"\nuser_template = "{query"'}, "[template] user_template: expected a valid template"),
    ({"template": 'system = "s"\nuser_template = "{query}"\nfew_shot = [{input = "a"}]'},
     "[template] few_shot[0]: expected a table {input"),
    ({"template": 'system = "s"\nuser_template = "{query}"\nsytem = "typo"'},
     "[template] sytem: unknown key; expected one of few_shot, file, system, user_template"),
    ({"dataset": 'inputs = ["query"]\ntrain = 0.5'}, "[dataset] path: expected a path"),
    ({"dataset": 'path = "d.jsonl"\ninputs = ["text"]\ntrain = 0.5'},
     "[dataset] inputs: expected to include 'query', which [template] user_template uses"),
    ({"dataset": 'path = "d.jsonl"\nlabel = "query"\ntrain = 0.5'}, "[dataset] label: expected a field that is not"),
    ({"dataset": 'path = "d.jsonl"\ntrain = true'}, "[dataset] train: expected a fraction (0.6)"),
    ({"dataset": 'path = "d.jsonl"\ntrain = 1.5'}, "[dataset] train: expected a fraction between 0 and 1"),
    ({"dataset": 'path = "d.jsonl"'}, "[dataset] train: expected a fraction (0.6), a list of row indices"),
    ({"dataset": 'path = "d.jsonl"\ntrain = 0.5\nformat = "xml"'}, "[dataset] format: expected \"csv\""),
    ({"dataset": 'path = "d.jsonl"\ntrain = 0.5\nlimit = 0'}, "[dataset] limit: expected a positive integer"),
    ({"scorer": 'type = "fuzzy"'}, "[scorer] type: unknown scorer 'fuzzy'"),
    ({"scorer": 'type = "numeric"\ntolerance = -1'}, "[scorer] type: numeric tolerance must be >= 0"),
    ({"scorer": 'type = "exact_match"\ntolerance = 1'}, "unexpected keyword argument 'tolerance'"),
    ({"scorer": 'type = "mod:fn"\ncase_sensitive = true'}, "[scorer] case_sensitive: expected no options"),
    ({"endpoint": 'model = "m"'}, "[endpoint] provider: expected a provider name"),
    ({"endpoint": 'provider = "openai"\nmodel = "m"\napi_key = "sk-123"'}, "[endpoint] api_key: expected no API key"),
    ({"endpoint": 'provider = "openai"\nmodel = "m"\ntemperature = 5'}, "[endpoint] Endpoint.temperature must be in"),
    ({"endpoint": 'provider = "openai"\nmodel = "m"\ntimeout = "soon"'}, "[endpoint] timeout: expected seconds > 0"),
    ({"endpoint": 'provider = "openai"\nmodel = "m"\nmodle = "x"'}, "[endpoint] modle: unknown key"),
    ({"optimizer_endpoint": 'provider = "nosuchprovider"\nmodel = "m"'}, "[optimizer_endpoint] Endpoint.provider"),
    ({"environment": 'kind = "calculator"'}, "[environment] kind: unknown key"),
])
def test_config_errors_name_file_key_and_expectation(tmp_path, tables, expected):
    drop = tables.pop("drop", ())
    if "extra" in tables:
        message = error(tmp_path, drop=drop, **{"extra": tables.pop("extra")})
    else:
        message = error(tmp_path, drop=drop, **tables)
    assert expected in message, message


def test_bad_toml_and_missing_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[template\nsystem = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")


def test_data_errors_on_load_name_the_config(tmp_path):
    path = write(tmp_path, dataset='path = "missing.jsonl"\ntrain = 0.5')
    config = load_config(path)
    with pytest.raises(ConfigError, match=r"run.toml: \[dataset\] dataset file .*missing.jsonl does not exist"):
        config.rows()
    path = write(tmp_path, dataset='path = "d.jsonl"\ninputs = ["query", "nope"]\ntrain = 0.5')
    with pytest.raises(ConfigError, match="row 0 has no field 'nope'"):
        load_config(path).rows()
    path = write(tmp_path, dataset='path = "d.jsonl"\ntrain = "0:8"\nval = "5:10"')
    with pytest.raises(ConfigError, match=r"\[dataset\] train and val share rows"):
        load_config(path).split(10)


def test_template_from_a_saved_file_and_custom_scorer_and_environment(tmp_path):
    from rollouts_dspy.io import save_template
    from rollouts_dspy.prompt_optimization.types import PromptTemplate

    save_template(PromptTemplate("Saved.", "Q: {query}"), tmp_path / "best.json")
    (tmp_path / "my_cfg_scoring.py").write_text(
        "from rollouts_dspy.dtypes import Score, Metric\n"
        "def score(t, s):\n    return Score((Metric('m', 1.0),))\n"
        "def env(row):\n    return row\n")
    path = write(tmp_path, template='file = "best.json"', scorer='type = "my_cfg_scoring:score"',
                 environment='factory = "my_cfg_scoring:env"')
    config = load_config(path)
    assert config.template.system == "Saved."
    assert config.score_fn()(None, None).reward == 1.0
    assert config.environment_factory()({"a": 1}) == {"a": 1}
    calc = load_config(write(tmp_path, environment='factory = "calculator"')).environment_factory()
    assert type(calc({})).__name__ == "CalculatorEnvironment"
    message = error(tmp_path, template='file = "best.json"\nsystem = "x"')
    assert "[template] file: expected either file or system" in message
    message = error(tmp_path, template='file = "missing.json"')
    assert "[template] file:" in message and "no such file" in message
    config = load_config(write(tmp_path, scorer='type = "my_cfg_scoring:nope"'))
    with pytest.raises(ConfigError, match=r"\[scorer\] type: module 'my_cfg_scoring' has no attribute 'nope'"):
        config.score_fn()
