"""One engine, two front doors: run_gepa on a PromptTemplate (litellm) and RolloutsGEPA on the same template as
a DSPy module (dspy.LM) send the same prompts and measure the same scores."""

from __future__ import annotations

import asyncio

import dspy

from rollouts_dspy.dspy_integration.data import rows_to_examples
from rollouts_dspy.dspy_integration.gepa import RolloutsGEPA
from rollouts_dspy.dspy_integration.metrics import score_fn_to_metric
from rollouts_dspy.dspy_integration.program_task import ProgramTask, TaskOptions
from rollouts_dspy.dspy_integration.template_module import module_to_template, template_to_module
from rollouts_dspy.dtypes import Metric, Score
from rollouts_dspy.llm import LLMSession
from rollouts_dspy.prompt_optimization.gepa import GEPAConfig, run_gepa
from rollouts_dspy.prompt_optimization.template_task import TemplateTask
from rollouts_dspy.prompt_optimization.types import SYSTEM, Candidate, PromptTemplate
from rollouts_dspy.testing import generate_intent_queries
from tests.conftest import QUIET

TEMPLATE = PromptTemplate(system="Classify the customer query into one intent label.",
                          user_template="Customer query: {query}\nAnswer with the label only.")
ROWS = generate_intent_queries(20, seed=5)


def score_fn(trajectory, sample):
    ok = trajectory.final_text.strip() == sample.ground_truth
    return Score(metrics=(Metric("correct", float(ok)),),
                 feedback="Correct." if ok else f"Wrong. The expected label: {sample.ground_truth}")


async def test_run_gepa_and_rollouts_gepa_score_the_same_prompts_the_same(task_endpoint, reflect_endpoint, server):
    config = GEPAConfig(population_size=4, generations=3, elite_size=1, train_seeds=tuple(range(12)),
                        val_seeds=tuple(range(12, 20)), seed=0, max_rollouts=120)
    rollouts_result = await run_gepa(TEMPLATE, config, ROWS, task_endpoint, reflect_endpoint, score_fn,
                                     options=QUIET)

    module = template_to_module(TEMPLATE, output_field="intent")
    metric = score_fn_to_metric(score_fn, TEMPLATE, output_field="intent", feedback=True)
    examples = rows_to_examples(ROWS, TEMPLATE)
    lm = dspy.LM("openai/scripted-task", api_base=server.base_url, api_key="scripted", cache=False)
    reflect = dspy.LM("openai/scripted-reflect", api_base=server.base_url, api_key="scripted", cache=False)
    with dspy.context(lm=lm):  # compile from inside a running event loop: the bridge uses a helper thread
        optimized = RolloutsGEPA(metric=metric, reflection_lm=reflect, config=config).compile(
            module, trainset=examples[:12], valset=examples[12:])

    dspy_records = {r.candidate.instructions["predict"]: r for r in optimized.search_outcome.records}
    rollouts_records = {r.candidate.instructions[SYSTEM]: r for r in rollouts_result.candidates}
    # The initial prompt: identical per-sample scores on both paths.
    assert dspy_records[TEMPLATE.system].train_scores == rollouts_records[TEMPLATE.system].train_scores
    # Every prompt both runs evaluated has the same scores, sample by sample.
    shared = set(dspy_records) & set(rollouts_records)
    for text in shared:
        a, b = dspy_records[text], rollouts_records[text]
        common = set(a.train_scores) & set(b.train_scores)
        assert {i: a.train_scores[i] for i in common} == {i: b.train_scores[i] for i in common}
        common = set(a.val_scores) & set(b.val_scores)
        assert {i: a.val_scores[i] for i in common} == {i: b.val_scores[i] for i in common}
    # Both improved on the initial prompt, and the optimized module converts back to a template.
    # Each side's best prompt, run through the other side's Task, scores the same sample by sample.
    session = LLMSession(max_concurrent=8)
    template_task = TemplateTask(TEMPLATE, ROWS, task_endpoint, score_fn, session)
    program_task = ProgramTask(module, examples, metric, lm, TaskOptions(max_concurrent=8))
    train = range(12)
    try:
        bests = ((rollouts_result.best_template.system, rollouts_records),
                 (module_to_template(optimized).system, dspy_records))
        for text, own in bests:
            via_dspy = await asyncio.gather(*(program_task.run(Candidate({"predict": text}), i) for i in train))
            via_rollouts = await asyncio.gather(*(template_task.run(Candidate({SYSTEM: text}), i) for i in train))
            assert [r.score for r in via_dspy] == [r.score for r in via_rollouts]
            assert {r.sample_index: r.score for r in via_dspy} == dict(own[text].train_scores)
    finally:
        program_task.close()
    # Both front doors improved on the initial prompt.
    initial = rollouts_records[TEMPLATE.system].train_mean
    assert rollouts_records[rollouts_result.best_template.system].train_mean > initial
    assert dspy_records[module_to_template(optimized).system].train_mean > initial
    best = module_to_template(optimized)
    assert best.user_template == TEMPLATE.user_template and best.system in dspy_records
    assert optimized.optimization_result.best_template.system == best.system
