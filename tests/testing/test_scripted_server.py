"""The scripted server over real HTTP (litellm, DSPy, raw urllib): policies, formats, faults and counters."""

from __future__ import annotations

import asyncio
import json
import os
import random
import urllib.error
import urllib.request

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402
import litellm  # noqa: E402
import pytest  # noqa: E402
from gepa.strategies.instruction_proposal import InstructionProposalSignature  # noqa: E402

from rollouts_dspy.testing import (  # noqa: E402
    FaultConfig,
    IntentWorld,
    PolicyConfig,
    ScriptedServer,
    generate_arithmetic_problems,
    generate_intent_queries,
    respond,
)
from rollouts_dspy.testing.reflection_policy import CALCULATOR_SENTENCE  # noqa: E402

TASK = "openai/scripted-task"
REFLECT = "openai/scripted-reflect"
CALC_TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": params}}
    for name, params in [
        *[
            (op, {"type": "object", "properties": {"value": {"type": "number"}}})
            for op in ("add", "subtract", "multiply", "divide")
        ],
        ("clear", {"type": "object", "properties": {}}),
        ("complete_task", {"type": "object", "properties": {"final_result": {"type": "string"}}}),
    ]
]


@pytest.fixture(scope="module")
def server():
    with ScriptedServer() as s:
        yield s


def chat(server: ScriptedServer, messages, model: str = TASK, **kwargs):
    return litellm.completion(
        model=model, api_base=server.base_url, api_key="scripted", messages=messages, num_retries=0, **kwargs
    )


def post(server: ScriptedServer, body: dict, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(
        server.base_url + "/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def ask(query: str, system: str = "Classify the query.") -> dict:
    return {
        "model": "scripted-task",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": f"Query: {query}"}],
    }


# -- intent world ------------------------------------------------------------------------------------------------


def test_rule_in_system_prompt_decides_answer(server):
    system = 'Classify the query.\n- If the query mentions "refund" or "money back", answer: request_refund'
    reply = asyncio.run(
        litellm.acompletion(
            model=TASK,
            api_base=server.base_url,
            api_key="scripted",
            messages=[
                {"role": "system", "content": system},
                {"role": "user", "content": "Query: I want my money back"},
            ],
        )
    )
    assert reply.choices[0].message.content == "request_refund"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens >= 1 and reply.usage.completion_tokens >= 1


def test_rule_with_most_keyword_hits_wins_and_labels_keep_their_spelling():
    labels = ("card_arrival", "Refund_not_showing_up", "reverted_card_payment?")
    config = PolicyConfig(intent_world=IntentWorld(labels=labels))
    system = (
        "- If the query mentions 'card', answer: card_arrival\n"
        '- If the query mentions "refund" or "showing", respond with: refund_not_showing_up\n'
        '- If the query mentions "revert", classify as reverted_card_payment?'
    )
    assert respond(ask("my refund is not showing on my card", system), config).content == "Refund_not_showing_up"
    assert respond(ask("the payment got reverted", system), config).content == "reverted_card_payment?"


def test_demos_are_imitated_and_weak_guess_otherwise(server):
    demo = [
        {"role": "user", "content": "Query: my card still has not arrived in the post"},
        {"role": "assistant", "content": "card_arrival"},
    ]
    question = {"role": "user", "content": "Query: my card has not arrived yet"}
    assert chat(server, [*demo, question]).choices[0].message.content == "card_arrival"
    # No rule, no similar demo: the literal-minded weak guess (first label when no label name is spelled out).
    assert chat(server, [question]).choices[0].message.content == "card_arrival"
    assert (
        chat(server, [{"role": "user", "content": "Query: what is my exchange rate"}]).choices[0].message.content
        == "exchange_rate"
    )
    assert (
        chat(server, [{"role": "user", "content": "Query: where did my package go"}]).choices[0].message.content
        == "card_arrival"
    )


def test_dspy_predict_and_chain_of_thought(server):
    lm = dspy.LM(TASK, api_base=server.base_url, api_key="scripted", cache=False)
    with dspy.context(lm=lm):
        predict = dspy.Predict("query -> intent")
        predict.signature = predict.signature.with_instructions(
            'Classify.\n- If the query mentions "stolen", answer: lost_or_stolen_card'
        )
        assert predict(query="my wallet was stolen").intent == "lost_or_stolen_card"
        cot = dspy.ChainOfThought("query -> intent")
        cot.predict.signature = cot.predict.signature.with_instructions(
            'Classify.\n- If the query mentions "pin", answer: change_pin'
        )
        prediction = cot(query="how to set a new PIN")
        assert prediction.intent == "change_pin" and prediction.reasoning
        with dspy.context(adapter=dspy.JSONAdapter()):
            assert predict(query="my wallet was stolen").intent == "lost_or_stolen_card"


def test_streaming_is_answered_as_sse(server):
    chunks = list(chat(server, [{"role": "user", "content": "Query: top up failed"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "top_up_failed"


# -- calculator world --------------------------------------------------------------------------------------------


def run_agent(server: ScriptedServer, system: str, problem: str) -> list[tuple[str, dict]]:
    """Play the environment by hand: feed each tool call's result back until complete_task."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": problem}]
    value, calls = 0.0, []
    for _ in range(10):
        message = chat(server, messages, tools=CALC_TOOLS).choices[0].message
        assert message.tool_calls, message.content
        call = message.tool_calls[0]
        args = json.loads(call.function.arguments)
        calls.append((call.function.name, args))
        messages.append({"role": "assistant", "content": None, "tool_calls": [call.model_dump()]})
        if call.function.name == "complete_task":
            return calls
        if call.function.name == "divide" and args["value"] == 0:
            result = "Error: division by zero"
        else:
            x = args["value"]
            value = {"add": value + x, "subtract": value - x, "multiply": value * x, "divide": value / x}[
                call.function.name
            ]
            result = f"current value: {value:g}"
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    raise AssertionError("agent did not finish")


def test_calculator_agent_steps_to_complete_task(server):
    system = "Use the calculator tools for every arithmetic step, one step at a time."
    calls = run_agent(server, system, "Start with 12. Add 7. Multiply by 3. Subtract 4.")
    assert [name for name, _ in calls] == ["add", "add", "multiply", "subtract", "complete_task"]
    assert calls[-1][1] == {"final_result": "53"}
    assert run_agent(server, system, "Take 5. Divide by 0. Add 2.")[-1] == ("complete_task", {"final_result": "error"})
    for row in generate_arithmetic_problems(5, seed=3):
        assert run_agent(server, system, row["problem"])[-1][1]["final_result"] == f"{row['answer']:g}"


def test_weak_calculator_prompt_answers_text_and_errs_on_long_problems(server):
    short = chat(server, [{"role": "user", "content": "Start with 2. Add 3. Multiply by 4."}], tools=CALC_TOOLS)
    assert short.choices[0].message.content == "The answer is 20." and not short.choices[0].message.tool_calls
    long = chat(
        server, [{"role": "user", "content": "Start with 2. Add 3. Multiply by 4. Subtract 1."}], tools=CALC_TOOLS
    )
    assert long.choices[0].message.content == "The answer is 20."  # dropped the last op; truth is 19


def test_arithmetic_generator_is_deterministic():
    rows = generate_arithmetic_problems(50, seed=1, with_zero_division=True)
    assert rows == generate_arithmetic_problems(50, seed=1, with_zero_division=True)
    assert any(r["answer"] == "error" for r in rows) and all(2 <= r["problem"].count(".") - 1 <= 5 for r in rows)


# -- reflection / proposer ---------------------------------------------------------------------------------------


def gepa_prompt(instruction: str, records: list[tuple[str, str, str]]) -> str:
    dataset = [
        {
            "Inputs": {"query": q},
            "Generated Outputs": {"intent": p},
            "Feedback": "Correct." if p == gold else f"Incorrect. The expected intent is {gold}.",
        }
        for q, p, gold in records
    ]
    return InstructionProposalSignature.prompt_renderer(
        {"current_instruction_doc": instruction, "dataset_with_feedback": dataset}
    )


def test_reflection_writes_rules_from_feedback_in_a_fence(server):
    prompt = gepa_prompt(
        "Classify the query.",
        [
            ("my card never arrived in the mail", "activate_my_card", "card_arrival"),
            ("I want a refund for my order", "card_arrival", "request_refund"),
            ("what exchange rate do you use", "exchange_rate", "exchange_rate"),
        ],
    )
    text = chat(server, [{"role": "user", "content": prompt}], model=REFLECT).choices[0].message.content
    assert text.startswith("```")
    instruction = InstructionProposalSignature.output_extractor(text)["new_instruction"]
    assert instruction.startswith("Classify the query.")
    assert "answer: card_arrival" in instruction and "answer: request_refund" in instruction
    # Labels only predicted (activate_my_card) or only correct without a cue (exchange_rate) are not evidence.
    assert "activate_my_card" not in instruction and "exchange_rate" not in instruction
    # The new instruction really helps the task model on those queries.
    config = PolicyConfig()
    assert respond(ask("my card never arrived", instruction), config).content == "card_arrival"


def test_reflection_keeps_existing_rules_and_is_deterministic(server):
    current = 'Classify.\n- If the query mentions "stolen", answer: lost_or_stolen_card'
    prompt = gepa_prompt(current, [("how do I close my account for good", "card_arrival", "terminate_account")])
    first = chat(server, [{"role": "user", "content": prompt}], model=REFLECT).choices[0].message.content
    again = chat(server, [{"role": "user", "content": prompt}], model=REFLECT).choices[0].message.content
    assert first == again
    assert '- If the query mentions "stolen", answer: lost_or_stolen_card' in first
    assert "answer: terminate_account" in first


def test_reflection_on_calculator_failures_adds_tool_sentence(server):
    prompt = (
        "Current instruction: Solve the problem.\nThe assistant has tools add, multiply and complete_task.\n"
        "Problem: Start with 2. Add 3. Multiply by 4. Subtract 1. Answer: The answer is 20. Score: 0. Expected 19."
    )
    text = (
        chat(server, [{"role": "user", "content": prompt}], model="openai/scripted-mutator").choices[0].message.content
    )
    assert CALCULATOR_SENTENCE in text


def test_dspy_format_proposer_answer_is_parsed(server):
    class ProposeInstruction(dspy.Signature):
        """Use the information below to learn about a task that we are trying to solve."""

        task_demos: str = dspy.InputField(desc="Example inputs/outputs of our module.")
        basic_instruction: str = dspy.InputField(desc="Basic instruction.")
        proposed_instruction: str = dspy.OutputField(desc="Propose an instruction.")

    lm = dspy.LM("openai/scripted-proposer", api_base=server.base_url, api_key="scripted", cache=False)
    demos = (
        "Query: I lost my wallet and card\nIntent: lost_or_stolen_card\n\n"
        "Query: close my account\nIntent: terminate_account"
    )
    with dspy.context(lm=lm):
        out = dspy.Predict(ProposeInstruction)(
            task_demos=demos, basic_instruction="Given the fields `query`, produce the fields `intent`."
        )
    assert out.proposed_instruction.startswith("Given the fields `query`")
    assert "answer: lost_or_stolen_card" in out.proposed_instruction
    assert "answer: terminate_account" in out.proposed_instruction


def test_learned_rules_beat_the_weak_prompt_on_quickstart_data():
    rows = generate_intent_queries(300, seed=0)
    train, test = rows[:150], rows[150:]
    config = PolicyConfig()

    def accuracy(instruction: str, data) -> float:
        return sum(respond(ask(r["query"], instruction), config).content == r["intent"] for r in data) / len(data)

    rng, instruction = random.Random(0), "Classify the query."
    for _ in range(40):
        batch = rng.sample(train, 8)
        records = [(r["query"], respond(ask(r["query"], instruction), config).content, r["intent"]) for r in batch]
        prompt = gepa_prompt(instruction, records)
        text = respond({"model": "scripted-reflect", "messages": [{"role": "user", "content": prompt}]}, config).content
        candidate = InstructionProposalSignature.output_extractor(text)["new_instruction"]
        if accuracy(candidate, batch) > accuracy(instruction, batch):
            instruction = candidate
    weak, learned = accuracy("Classify the query.", test), accuracy(instruction, test)
    assert weak < 0.45 and learned > weak + 0.2, (weak, learned)


# -- faults, counters, lifecycle ---------------------------------------------------------------------------------


def test_forced_faults_produce_each_kind():
    body = ask("hello")
    with ScriptedServer(faults=FaultConfig(schedule={1: "429", 2: "500", 3: "malformed", 4: "empty"})) as s:
        status, raw = post(s, body)
        assert status == 429 and b"rate_limit" in raw
        assert post(s, body)[0] == 500
        status, raw = post(s, body)
        assert status == 200 and pytest.raises(ValueError, json.loads, raw)
        status, raw = post(s, body)
        assert status == 200 and json.loads(raw)["choices"][0]["message"]["content"] == ""
        assert post(s, body)[0] == 200
        s.fail_next(1, "500")
        assert post(s, body)[0] == 500
        assert s.stats().faults_injected == {"429": 1, "500": 2, "malformed": 1, "empty": 1}


def test_timeout_fault_stalls_past_the_client_timeout():
    with ScriptedServer(faults=FaultConfig(timeout_seconds=1.0)) as s:
        s.fail_next(1, "timeout")
        with pytest.raises(OSError):
            post(s, ask("hello"), timeout=0.3)
        assert post(s, ask("hello"))[0] == 200


def test_random_faults_are_reproducible_with_the_seed():
    def faulted(seed: int) -> list[int]:
        with ScriptedServer(faults=FaultConfig(rate=0.3, kinds=("500", "429"), seed=seed)) as s:
            return [i for i in range(30) if post(s, ask("hello"))[0] != 200]

    first = faulted(7)
    assert first == faulted(7) and 3 <= len(first) <= 20 and first != faulted(8)


def test_max_in_flight_counts_concurrent_requests():
    with ScriptedServer(latency=0.2) as s:

        async def burst():
            return await asyncio.gather(
                *[
                    litellm.acompletion(
                        model=TASK,
                        api_base=s.base_url,
                        api_key="scripted",
                        messages=[{"role": "user", "content": f"Query: q{i}"}],
                    )
                    for i in range(10)
                ]
            )

        asyncio.run(burst())
        stats = s.stats()
        assert stats.max_in_flight == 10 and stats.in_flight == 0
        assert stats.requests_total == 10 and stats.requests_by_model == {"scripted-task": 10}
        s.reset_stats()
        assert s.stats().requests_total == 0


def test_stats_by_model_and_http_endpoints(server):
    server.reset_stats()
    chat(server, [{"role": "user", "content": "Query: hi"}])
    chat(server, [{"role": "user", "content": "Summarize."}], model="openai/scripted-proposer")
    stats = server.stats()
    assert stats.requests_by_model == {"scripted-task": 1, "scripted-proposer": 1}
    assert stats.prompt_tokens > 0 and stats.completion_tokens > 0
    base = server.base_url.removesuffix("/v1")
    with urllib.request.urlopen(base + "/stats") as response:
        assert json.loads(response.read())["requests_total"] == 2
    with urllib.request.urlopen(server.base_url + "/models") as response:
        assert json.loads(response.read())["object"] == "list"


def test_down_server_answers_503():
    with ScriptedServer(down=True) as s:
        assert post(s, ask("hello"))[0] == 503
