"""evaluate_template / evaluate_detailed end to end: real HTTP through litellm to the scripted server."""

from __future__ import annotations

import pytest

from rollouts_dspy import (
    CalculatorEnvironment,
    Metric,
    PromptTemplate,
    Score,
    SharedEvaluation,
    evaluate_detailed,
    evaluate_template,
)
from rollouts_dspy.testing import ScriptedServer, generate_arithmetic_problems, generate_intent_queries
from tests.conftest import make_endpoint

DATA = generate_intent_queries(60, seed=3)
USER = "Query: {query}"
WEAK = PromptTemplate(system="Classify the query.", user_template=USER)
RULES = PromptTemplate(
    system=(
        "Classify the customer query into exactly one intent label and answer with the label only.\n"
        "Rules:\n"
        '- If the query mentions "arrived" or "arrive" or "delivery" or "still waiting", answer: card_arrival\n'
        '- If the query mentions "refund" or "money back", answer: request_refund\n'
        '- If the query mentions "locked" or "unlock" or "wrong pin" or "blocked", answer: pin_blocked\n'
        '- If the query mentions "rate" or "conversion", answer: exchange_rate\n'
        '- If the query mentions "lost" or "stolen", answer: lost_or_stolen_card\n'
        '- If the query mentions "shut down" or "close my account" or "delete my account", answer: terminate_account\n'
        '- If the query mentions "set up" or "activate", answer: activate_my_card\n'
    ),
    user_template=USER,
)


def exact(trajectory, sample) -> Score:
    got = trajectory.final_text.strip()
    ok = got.lower() == str(sample.ground_truth).lower()
    return Score(metrics=(Metric("correct", 1.0 if ok else 0.0),),
                 feedback=None if ok else f'Expected intent "{sample.ground_truth}", got "{got}".')


async def test_a_prompt_stating_the_right_rules_scores_higher(task_endpoint):
    seeds = range(len(DATA))
    weak = await evaluate_template(WEAK, seeds, DATA, task_endpoint, exact)
    ruled = await evaluate_template(RULES, seeds, DATA, task_endpoint, exact)
    assert weak.score is not None and ruled.score is not None
    assert ruled.score >= weak.score + 0.15, (weak.score, ruled.score)  # rules cover 7 of 12 intents
    assert ruled.system == RULES.system and ruled.id == RULES.id  # same template, score set


async def test_detailed_report_and_a_shared_evaluation(server, task_endpoint):
    shared = SharedEvaluation()
    report = await evaluate_detailed(WEAK, [0, 1, 2, 3], DATA, task_endpoint, exact, shared=shared)
    assert [r.sample_index for r in report.rollouts] == [0, 1, 2, 3]
    assert all(r.inputs == {"query": DATA[r.sample_index]["query"]} for r in report.rollouts)
    assert all((r.score == 1.0) == (r.feedback.startswith("reward")) for r in report.rollouts)
    assert report.usage.calls == 4 and report.usage.total_tokens > 0
    assert server.stats().requests_total == 4
    again = await evaluate_detailed(WEAK, [2, 3, 4], DATA, task_endpoint, exact, shared=shared)
    assert server.stats().requests_total == 5  # only sample 4 was new
    assert again.rollouts[0] is report.rollouts[2]
    assert shared.session.stats["task"].calls == 5  # one LLM session counted both calls' requests


async def test_concurrency_limit_holds_during_evaluation():
    with ScriptedServer(latency=0.05) as srv:
        await evaluate_template(WEAK, range(40), DATA, make_endpoint(srv), exact, max_concurrent=8)
        assert srv.stats().max_in_flight == 8


async def test_failures_are_recorded_per_sample_and_never_kill_the_run(server):
    endpoint = make_endpoint(server, max_retries=0)

    def flaky(trajectory, sample) -> Score:
        if sample.id == "2":
            raise KeyError("no label column")
        return exact(trajectory, sample)

    server.fail_next(1, "500")  # with no retries allowed, sample 0 fails for good
    # one at a time, in order, so the forced fault hits sample 0
    report = await evaluate_detailed(WEAK, [0, 1, 2, 3], DATA, endpoint, flaky, max_concurrent=1)
    by_index = {r.sample_index: r for r in report.rollouts}
    assert by_index[0].score is None and by_index[0].error.kind == "llm"
    assert by_index[2].score is None and by_index[2].error.kind == "score_fn" and "no label" in by_index[2].error.detail
    assert by_index[1].score is not None and by_index[3].score is not None
    assert report.failures == {"llm": 1, "score_fn": 1}
    measured = [by_index[1].score, by_index[3].score]
    assert report.mean == pytest.approx(sum(measured) / 2)  # failures are not zeros


async def test_permanent_llm_errors_score_the_prompt_as_failed(server, task_endpoint):
    server.fail_next(1, "context_length")
    report = await evaluate_detailed(WEAK, [0], DATA, task_endpoint, exact, max_concurrent=1)
    rollout = report.rollouts[0]
    assert rollout.score == 0.0 and rollout.error.kind == "prompt"
    assert server.stats().requests_total == 1


async def test_agents_through_an_async_environment_factory(task_endpoint):
    problems = generate_arithmetic_problems(6, seed=1)
    template = PromptTemplate(
        system="Use the calculator tools for every arithmetic step, then call complete_task with the result.",
        user_template="{problem}",
    )
    made = []

    async def factory(row):
        made.append(row["problem"])
        return CalculatorEnvironment()

    def numeric(trajectory, sample) -> Score:
        calls = [c for m in trajectory.messages for c in m.tool_calls if c.name == "complete_task"]
        got = calls[-1].args.get("final_result") if calls else trajectory.final_text
        try:
            ok = got == sample.ground_truth == "error" or abs(float(got) - float(sample.ground_truth)) < 1e-6
        except (TypeError, ValueError):
            ok = False
        return Score(metrics=(Metric("correct", float(ok)),))

    report = await evaluate_detailed(template, range(6), problems, task_endpoint, numeric, factory)
    assert report.mean == 1.0 and len(made) == 6
    assert "[tool call] complete_task" in report.rollouts[0].output
    assert report.rollouts[0].demos["system"]["messages"]  # the demo keeps its tool calls


async def test_a_provider_that_is_down_stops_the_evaluation_with_a_clear_error():
    from rollouts_dspy.prompt_optimization.evaluation import ProviderUnavailableError

    with ScriptedServer(down=True) as srv:
        endpoint = make_endpoint(srv, max_retries=1)
        with pytest.raises(ProviderUnavailableError, match="failed 10 rollouts in a row") as info:
            await evaluate_detailed(WEAK, range(10), DATA, endpoint, exact)
        assert "ServiceUnavailable" in info.value.last_error or "503" in info.value.last_error
        assert srv.stats().requests_total == 20  # bounded: each sample tried once plus one retry


async def test_a_rollout_never_sees_its_own_sample_as_a_demo(task_endpoint):
    from rollouts_dspy import FewShotExample

    row = DATA[0]
    wrong = next(label for label in ("change_pin", "card_arrival") if label != row["intent"])
    own = FewShotExample(f"Query: {row['query']}", wrong)  # sample 0 itself, with a label the model would copy
    template = PromptTemplate("Classify the query.", USER, (own,))
    report = await evaluate_detailed(template, [0], DATA, task_endpoint, exact)
    plain = await evaluate_detailed(WEAK, [0], DATA, task_endpoint, exact)
    assert report.rollouts[0].output == plain.rollouts[0].output != wrong
