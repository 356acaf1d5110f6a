"""Endpoints in a config file: a local server needs no key, a key variable named but unset is an error that names
it, and a dollar cap on a model without a price tells the user which key of the file to add."""

from __future__ import annotations

import pytest

from rollouts_dspy.config_file import load_config
from rollouts_dspy.errors import ConfigError
from rollouts_dspy.testing import ScriptedServer

from .helpers import run_cli


def test_evaluate_on_a_local_server_without_any_key(tmp_path, tiny_config):
    # The README's local-model setup as a config: an api_base on this machine and no key anywhere
    # (run_cli's environment has no OPENAI_API_KEY).
    with ScriptedServer() as local:
        text = tiny_config.read_text().replace('api_base = "scripted"', f'api_base = "{local.base_url}"')
        tiny_config.write_text(text)
        proc = run_cli("evaluate", "--config", str(tiny_config), "--quiet", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert local.stats().requests_total > 0
    assert float(proc.stdout.strip()) >= 0.0


def test_a_dollar_cap_on_an_unpriced_model_names_the_config_key(tmp_path, tiny_config):
    tiny_config.write_text(tiny_config.read_text().replace("[gepa]\n", "[gepa]\nmax_cost_usd = 1.0\n"))
    proc = run_cli("optimize", "--method", "gepa", "--config", str(tiny_config), "--out", str(tmp_path / "o"),
                   cwd=tmp_path)
    assert proc.returncode == 2
    assert f"{tiny_config}: [gepa] max_cost_usd = 1.0 cannot be enforced" in proc.stderr
    assert "'openai/scripted-task'" in proc.stderr
    assert "add `pricing = [input, output]` (USD per million tokens) to [endpoint]" in proc.stderr
    assert "pricing=(" not in proc.stderr  # Python advice is for Python callers
    assert not (tmp_path / "o").exists()


def test_the_dollar_cap_error_names_the_table_whose_model_has_no_price(tmp_path, tiny_config):
    priced_task = tiny_config.read_text().replace('model = "scripted-task"', 'model = "scripted-task"\n'
                                                                            'pricing = [0.15, 0.6]')
    tiny_config.write_text(priced_task)
    tiny_config.write_text(tiny_config.read_text().replace("[mipro]\n", "[mipro]\nmax_cost_usd = 2.0\n"))
    proc = run_cli("optimize", "--method", "mipro", "--config", str(tiny_config), "--out", str(tmp_path / "o"),
                   cwd=tmp_path)
    assert proc.returncode == 2
    assert "'openai/scripted-reflect'" in proc.stderr and "to [optimizer_endpoint]" in proc.stderr


def test_api_key_env_naming_an_unset_variable_is_an_error_naming_it(tmp_path, tiny_config, monkeypatch):
    monkeypatch.delenv("ROLLOUTS_TEST_UNSET_KEY", raising=False)
    text = tiny_config.read_text().replace('model = "scripted-task"\napi_base = "scripted"',
                                           'model = "gpt-4o-mini"\napi_key_env = "ROLLOUTS_TEST_UNSET_KEY"')
    tiny_config.write_text(text)
    config = load_config(tiny_config)  # loading reads no key: `show` and validation need none
    with pytest.raises(ConfigError) as info:
        config.endpoint.build()
    assert str(info.value).startswith(f"{tiny_config}: [endpoint] api_key_env = 'ROLLOUTS_TEST_UNSET_KEY'")
    assert "ROLLOUTS_TEST_UNSET_KEY is not set" in str(info.value)
    monkeypatch.setenv("ROLLOUTS_TEST_UNSET_KEY", "sk-test-value-123")
    assert config.endpoint.build().api_key == "sk-test-value-123"


def test_a_missing_api_key_stops_the_command_before_any_call(tmp_path, tiny_config):
    # A real provider and no key in the environment: one clear line naming the variable, exit 2, nothing run.
    text = tiny_config.read_text().replace('model = "scripted-task"\napi_base = "scripted"', 'model = "gpt-4o-mini"')
    tiny_config.write_text(text)
    proc = run_cli("evaluate", "--config", str(tiny_config), "--out", str(tmp_path / "rollouts.json"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"rollouts-dspy: error: {tiny_config}: [endpoint] no API key for openai/gpt-4o-mini")
    assert "set OPENAI_API_KEY" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "rollouts.json").exists()
