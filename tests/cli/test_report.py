"""`rollouts-dspy show`'s report: what it says about cost when a model's price is known and when it is not."""

from __future__ import annotations

from rollouts_dspy.prompt_optimization.types import GenerationStats, OptimizationResult, PromptTemplate
from rollouts_dspy.report import build_report

TEMPLATE = PromptTemplate(system="Classify.", user_template="Query: {query}", id="initial")


def result(history_costs, *, cost_known: bool, role_cost: float = 0.0) -> OptimizationResult:
    history = tuple(GenerationStats(i, 0.5, 0.4, 3, 10 * (i + 1), 100 * (i + 1), cost, 1.0)
                    for i, cost in enumerate(history_costs))
    usage = {"task": {"calls": 20, "retries": 0, "failures": 0, "prompt_tokens": 150, "completion_tokens": 50,
                      "cost_usd": role_cost, "cost_known": cost_known}}
    return OptimizationResult(best_template=TEMPLATE, final_population=(TEMPLATE,), history=history,
                              method="gepa", usage=usage, initial_template=TEMPLATE, rollouts_used=20)


def section(sections, title_start):
    return next(s for s in sections if s.title.startswith(title_start))


def test_history_shows_unknown_cost_as_unknown():
    history = section(build_report(result([None, None], cost_known=False)), "Score history")
    assert [row[6] for row in history.rows] == ["unknown", "unknown"]
    usage = section(build_report(result([None, None], cost_known=False)), "LLM usage")
    assert usage.rows[0][-1] == "unknown"


def test_an_old_result_file_with_zero_for_an_unpriced_model_says_unknown():
    # Written before unknown prices were recorded as None: history says 0.0, the usage table knows better.
    history = section(build_report(result([0.0, 0.0], cost_known=False)), "Score history")
    assert [row[6] for row in history.rows] == ["unknown", "unknown"]


def test_known_prices_are_shown_in_dollars():
    sections = build_report(result([0.01, 0.02], cost_known=True, role_cost=0.02))
    assert [row[6] for row in section(sections, "Score history").rows] == ["$0.0100", "$0.0200"]
    assert section(sections, "LLM usage").rows[0][-1] == "$0.0200"
