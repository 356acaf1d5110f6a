"""The rollouts-style types: validation, the Score contract, and the API key never leaking."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rollouts_dspy import Endpoint, Message, Metric, Score, Usage


def test_endpoint_key_is_never_shown_or_serialized():
    ep = Endpoint(provider="openai", model="gpt-4o-mini", api_key="sk-TESTKEY-abcdef123456")
    assert "sk-TESTKEY" not in repr(ep)
    assert "sk-TESTKEY" not in str(ep)
    assert "sk-TESTKEY" not in json.dumps(ep.to_dict())
    assert "sk-TESTKEY" not in ep.identity()
    # The key does not change what answers a call, so it is not part of equality either.
    assert ep == Endpoint(provider="openai", model="gpt-4o-mini", api_key="other")


def test_endpoint_model_string_for_litellm():
    assert Endpoint(provider="openai", model="gpt-4o-mini").litellm_model == "openai/gpt-4o-mini"
    assert Endpoint(provider="ollama", model="ollama/llama3").litellm_model == "ollama/llama3"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"provider": "no-such-provider", "model": "m"}, "not a provider litellm knows"),
        ({"provider": "openai", "model": ""}, "Endpoint.model"),
        ({"provider": "openai", "model": "m", "temperature": 3.0}, "temperature"),
        ({"provider": "openai", "model": "m", "max_retries": -1}, "max_retries"),
        ({"provider": "openai", "model": "m", "timeout": 0}, "timeout"),
        ({"provider": "openai", "model": "m", "pricing": (1.0,)}, "pricing"),
    ],
)
def test_endpoint_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Endpoint(**kwargs)


def test_score_reward_is_the_weighted_mean():
    score = Score(metrics=(Metric("correct", 1.0, weight=3.0), Metric("brevity", 0.0, weight=1.0)))
    assert score.reward == pytest.approx(0.75)
    assert Score().reward == 0.0
    assert "correct=1" in score.describe()
    assert Score(metrics=(Metric("x", 0.0),), feedback="wrong label").describe() == "wrong label"


def test_a_score_is_never_a_truth_value():
    with pytest.raises(TypeError, match="no truth value"):
        bool(Score(metrics=(Metric("correct", 0.0),)))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "1"])
def test_metric_value_must_be_a_finite_number(value):
    with pytest.raises(ValueError, match="finite number"):
        Metric("m", value)


def test_message_role_is_checked_and_renders_tool_calls():
    with pytest.raises(ValueError, match="role"):
        Message("robot", "hi")
    from rollouts_dspy import ToolCall

    m = Message("assistant", "", (ToolCall("c1", "add", {"value": 2}),))
    out = m.to_openai()
    assert out["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"value": 2}'}


def test_usage_adds_and_unknown_cost_stays_unknown():
    a = Usage(10, 5, 0.01, 1)
    b = Usage(1, 1, None, 1)
    assert (a + a).cost_usd == pytest.approx(0.02)
    assert (a + b).cost_usd is None
    assert (Usage() + b).calls == 1
    assert (a + b).total_tokens == 17


def test_the_types_do_not_import_the_llm_layer():
    # One direction only: llm imports dtypes, never the reverse -- even when an Endpoint asks litellm whether
    # it knows a provider (a fresh process, so nothing else imported the LLM layer first).
    code = ("import sys; from rollouts_dspy.dtypes import Endpoint; Endpoint(provider='cerebras', model='m'); "
            "print(sorted(m for m in sys.modules if m.startswith('rollouts_dspy')))")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split("\n")[-2] == "['rollouts_dspy', 'rollouts_dspy.dtypes', 'rollouts_dspy.providers']"
