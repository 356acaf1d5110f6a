"""Built-in score_fns and `module:function` loading."""

from __future__ import annotations

import pytest

from rollouts_dspy.dtypes import Message, Sample, Score, ToolCall, Trajectory
from rollouts_dspy.errors import ConfigError
from rollouts_dspy.scorers import (
    answer_text,
    contains,
    exact_match,
    load_callable,
    make_scorer,
    numeric_tolerance,
    regex_extract,
)


def _traj(text: str) -> Trajectory:
    return Trajectory((Message("user", "q"), Message("assistant", text)))


def _sample(truth) -> Sample:
    return Sample("0", {"query": "q"}, truth)


def test_exact_match_normalizes_case_quotes_and_period_and_explains_itself():
    score = exact_match()(_traj("  `Request_Refund`. "), _sample("request_refund"))
    assert isinstance(score, Score) and score.reward == 1.0
    wrong = exact_match()(_traj("card_arrival"), _sample("request_refund"))
    assert wrong.reward == 0.0 and wrong.feedback == "expected: request_refund, got: card_arrival"
    assert exact_match(case_sensitive=True)(_traj("Request_Refund"), _sample("request_refund")).reward == 0.0
    assert "(empty answer)" in exact_match()(_traj(""), _sample("x")).feedback


def test_contains():
    fn = contains()
    assert fn(_traj("The intent is REQUEST_REFUND."), _sample("request_refund")).reward == 1.0
    assert fn(_traj("card_arrival"), _sample("request_refund")).reward == 0.0
    assert fn(_traj("anything"), _sample("")).reward == 0.0


def test_numeric_tolerance_uses_the_last_number_and_text_labels():
    fn = numeric_tolerance(tolerance=0.01)
    assert fn(_traj("First 3, so the answer is 1,234.005"), _sample(1234.0)).reward == 1.0
    assert fn(_traj("42"), _sample("41")).reward == 0.0
    assert fn(_traj("no number"), _sample(1)).reward == 0.0
    assert fn(_traj("Error"), _sample("error")).reward == 1.0
    rel = numeric_tolerance(tolerance=0.1, relative=True)
    assert rel(_traj("105"), _sample(100)).reward == 1.0 and rel(_traj("111"), _sample(100)).reward == 0.0
    with pytest.raises(ConfigError, match="tolerance"):
        numeric_tolerance(tolerance=-1)


def test_regex_extract_takes_the_last_match():
    fn = regex_extract(pattern=r"intent:\s*(\w+)")
    assert fn(_traj("intent: foo ... final intent: bar"), _sample("bar")).reward == 1.0
    missing = fn(_traj("no idea"), _sample("bar"))
    assert missing.reward == 0.0 and "no match" in missing.feedback and "expected: bar" in missing.feedback
    with pytest.raises(ConfigError, match="does not compile"):
        regex_extract(pattern="(")
    with pytest.raises(ConfigError, match="group"):
        regex_extract(pattern="a", group=2)


def test_answer_text_reads_the_final_tool_call_of_an_agent_rollout():
    call = ToolCall("1", "complete_task", {"final_result": "70"})
    traj = Trajectory((Message("user", "q"), Message("assistant", "", (call,)),
                       Message("tool", "task complete: 70", tool_call_id="1")))
    assert answer_text(traj) == "70"
    assert numeric_tolerance()(traj, _sample(70.0)).reward == 1.0
    assert answer_text(Trajectory((Message("user", "q"),))) == ""


def test_make_scorer_errors_list_the_choices():
    with pytest.raises(ConfigError, match="exact_match, contains, numeric, regex"):
        make_scorer("fuzzy")
    with pytest.raises(ConfigError, match="scorer 'exact_match'"):
        make_scorer("exact_match", tolerance=1)


def test_load_callable_from_a_folder(tmp_path):
    (tmp_path / "my_scoring_mod.py").write_text("def score(t, s):\n    return 1\nclass A:\n    b = 2\n")
    assert load_callable("my_scoring_mod:score", search_dir=tmp_path)(None, None) == 1
    assert load_callable("my_scoring_mod:A.b", search_dir=tmp_path) == 2
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        load_callable("my_scoring_mod:nope", search_dir=tmp_path)
    with pytest.raises(ConfigError, match="cannot import module"):
        load_callable("no_such_module_xyz:f")
    with pytest.raises(ConfigError, match="module:function"):
        load_callable("just_a_name")
