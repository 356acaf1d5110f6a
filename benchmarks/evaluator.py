"""The one held-out evaluator: a candidate spec, run as its contender would run it, judged by the world's rule on
the world's `val` rows, outside every budget.

The intent world calls the scripted server's policy function (`rollouts_dspy.testing.respond`, the very function
the server answers with, same labels) in-process on the exact request the contender would send (DSPy's
ChatAdapter formats and parses DSPy programs): same answers as over HTTP, 30x cheaper, so every candidate of every
run can be scored. The calculator world needs the agent loop, so it goes over HTTP to a separate zero-latency
server process.

Specs come in two kinds: `messages` (the prompt prefix a rollouts/gepa contender sends before the sample's user
message: system prompt and demo turns) and `dspy` (instructions and demos per predictor of the DSPy student).
Results are cached in memory by (world, spec content, rows), so identical prompts are evaluated once per worker.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from .metering import spec_key
from .worlds import World

__all__ = ["HeldOutEvaluator", "messages_spec"]


def messages_spec(prefix: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "messages", "prefix": prefix}


def _to_messages(prefix: list[dict[str, Any]]):
    import json as _json

    from rollouts_dspy.dtypes import Message, ToolCall

    out = []
    for m in prefix:
        calls = tuple(ToolCall(c["id"], c["function"]["name"], _json.loads(c["function"].get("arguments") or "{}"))
                      for c in m.get("tool_calls") or ())
        out.append(Message(m["role"], m.get("content") or "", calls, m.get("tool_call_id")))
    return out


class HeldOutEvaluator:
    _CACHE: dict[str, float] = {}  # per worker process

    def __init__(self, world: World, base_url: str, *, concurrency: int = 8) -> None:
        self.world = world
        self.base_url = base_url
        self.concurrency = concurrency
        rows = json.dumps(list(world.val), sort_keys=True, default=str)
        self.rows_key = hashlib.sha256(rows.encode()).hexdigest()[:12]
        self.cache = self._CACHE

    def score(self, spec: dict[str, Any]) -> float:
        key = f"{self.world.name}:{self.rows_key}:{spec_key(spec)}"
        if key not in self.cache:
            scores = self._messages(spec) if spec["kind"] == "messages" else self._dspy(spec)
            self.cache[key] = sum(scores) / len(scores) if scores else 0.0
        return self.cache[key]

    # -- messages kind: the rollouts call layer, one completion or the agent loop ---------------------------------
    def _policy(self):
        from rollouts_dspy.testing import IntentWorld, PolicyConfig

        labels = tuple(json.loads(Path(self.world.labels_file).read_text())) if self.world.labels_file else None
        return PolicyConfig(intent_world=IntentWorld(labels=labels) if labels else IntentWorld())

    def _messages(self, spec: dict[str, Any]) -> list[float]:
        if self.world.uses_tools:
            return asyncio.run(self._messages_async(_to_messages(spec["prefix"])))
        from rollouts_dspy.testing import respond

        config, world, prefix = self._policy(), self.world, spec["prefix"]
        scores = []
        for row in world.val:
            user = {"role": "user", "content": world.user_message(row)}
            request = {"model": "scripted-task", "messages": [*prefix, user]}
            scores.append(world.judge(respond(request, config).content, row[world.label_field])[0])
        return scores

    async def _messages_async(self, prefix) -> list[float]:
        from rollouts_dspy.agents import AgentError, run_agent, run_completion
        from rollouts_dspy.dtypes import Endpoint, Message
        from rollouts_dspy.environments.calculator import CalculatorEnvironment
        from rollouts_dspy.llm import LLMSession
        from rollouts_dspy.scorers import answer_text

        endpoint = Endpoint(provider="openai", model="scripted-task", api_base=self.base_url, api_key="scripted",
                            timeout=30.0, max_retries=2, retry_backoff=0.05)
        session = LLMSession(max_concurrent=self.concurrency)
        world = self.world

        async def one(row: dict[str, Any]) -> float:
            messages = [*prefix, Message("user", world.user_message(row))]
            try:
                if world.uses_tools:
                    trajectory = await run_agent(messages, endpoint, CalculatorEnvironment(), session=session)
                else:
                    trajectory = await run_completion(messages, endpoint, session=session)
            except AgentError:
                return 0.0
            return world.judge(answer_text(trajectory), row[world.label_field])[0]

        return list(await asyncio.gather(*(one(r) for r in world.val)))

    # -- dspy kind: the student with the spec applied ---------------------------------------------------------------
    def _dspy(self, spec: dict[str, Any]) -> list[float]:
        import dspy

        from rollouts_dspy.testing import respond

        from .dspy_side import apply_spec

        predictor = apply_spec(spec, self.world).classify
        adapter, config, world = dspy.ChatAdapter(), self._policy(), self.world
        scores = []
        for row in world.val:
            messages = adapter.format(predictor.signature, predictor.demos, {"query": row["query"]})
            answer = respond({"model": "scripted-task", "messages": messages}, config).content
            try:
                intent = adapter.parse(predictor.signature, answer).get("intent", "")
            except Exception:  # noqa: BLE001 - an unparseable answer is a wrong answer
                intent = ""
            scores.append(world.judge(str(intent), row["intent"])[0])
        return scores
