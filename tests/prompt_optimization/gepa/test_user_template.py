"""The opt-in to optimize the user_template too: its rewrites keep exactly the placeholders, or are rejected."""

from __future__ import annotations

import re

from gepa_helpers import WEAK, intent_score

from rollouts_dspy.dtypes import Usage
from rollouts_dspy.llm import LLMSession
from rollouts_dspy.prompt_optimization.events import CandidateDropped
from rollouts_dspy.prompt_optimization.gepa import GEPAConfig, optimize_gepa, run_gepa
from rollouts_dspy.prompt_optimization.template_task import TemplateTask
from rollouts_dspy.prompt_optimization.types import USER_TEMPLATE, Candidate
from rollouts_dspy.testing import generate_intent_queries
from tests.conftest import QUIET

DATA = generate_intent_queries(40, seed=3)
CONFIG = dict(train_seeds=tuple(range(24)), val_seeds=tuple(range(24, 40)), population_size=3, elite_size=1,
              generations=3, reflection_minibatch_size=4, seed=2, max_concurrent=8)


class TemplateWriter:
    """A fake reflection model: for the user_template it writes `rewrite` (the current template with a rule line
    added), for the system prompt it answers the system prompt unchanged plus a sentence."""

    def __init__(self, rewrite) -> None:
        self.rewrite = rewrite
        self.requests: list[str] = []

    async def complete(self, messages):
        text = messages[0].content
        self.requests.append(text)
        current = re.search(r"```\n(.*?)\n```", text, re.S).group(1)
        if "template of the user message" in text:
            return f"```\n{self.rewrite(current)}\n```", Usage(5, 5, None, 1)
        return f"```\n{current} Answer with the intent label only.\n```", Usage(5, 5, None, 1)


def _rule(current: str) -> str:
    return current + '\n- If the query mentions "refund" or "money back", answer: request_refund'


async def test_a_user_template_rewrite_that_keeps_its_placeholders_is_searched_and_returned(task_endpoint):
    task = TemplateTask(WEAK, DATA, task_endpoint, intent_score, LLMSession(max_concurrent=8),
                        optimize_user_template=True)
    model = TemplateWriter(_rule)
    initial = Candidate.from_template(WEAK, with_user_template=True)
    out = await optimize_gepa(task, model, initial, GEPAConfig(**CONFIG, optimize_user_template=True))
    assert task.components == ("system", USER_TEMPLATE)
    assert any("keep every {placeholder}" in r for r in model.requests)  # the request says what must not change
    rewritten = [r for r in out.records if r.candidate.instructions[USER_TEMPLATE] != WEAK.user_template]
    assert rewritten and all("{query}" in r.candidate.instructions[USER_TEMPLATE] for r in rewritten)
    best = out.record(out.best_id).candidate.to_template(WEAK)
    assert "request_refund" in best.user_template and "{query}" in best.user_template


async def test_a_rewrite_that_drops_or_invents_a_placeholder_is_rejected_before_it_runs(task_endpoint):
    task = TemplateTask(WEAK, DATA, task_endpoint, intent_score, LLMSession(max_concurrent=8),
                        optimize_user_template=True)
    events = []
    for broken in (lambda cur: cur.replace("{query}", "the query"), lambda cur: cur + " {customer_name}"):
        model = TemplateWriter(broken)
        out = await optimize_gepa(task, model, Candidate.from_template(WEAK, with_user_template=True),
                                  GEPAConfig(**CONFIG, optimize_user_template=True), reporter=events.append)
        assert all(r.candidate.instructions[USER_TEMPLATE] == WEAK.user_template for r in out.records)
    reasons = " ".join(r for e in events if isinstance(e, CandidateDropped) for r in e.reasons)
    assert "missing ['query']" in reasons and "invented ['customer_name']" in reasons


async def test_run_gepa_leaves_the_user_template_alone_unless_asked(task_endpoint, reflect_endpoint):
    out = await run_gepa(WEAK, GEPAConfig(**CONFIG), DATA, task_endpoint, reflect_endpoint, intent_score,
                         options=QUIET)
    assert out.best_template.user_template == WEAK.user_template
    assert all(USER_TEMPLATE not in r.candidate.instructions for r in out.candidates)
