"""RolloutsGEPA / RolloutsMIPRO compile real DSPy programs through dspy.LM against the scripted server."""

from __future__ import annotations

import dspy
import pytest

from rollouts_dspy.dspy_integration.data import rows_to_examples
from rollouts_dspy.dspy_integration.gepa import RolloutsGEPA
from rollouts_dspy.dspy_integration.mipro import RolloutsMIPRO
from rollouts_dspy.errors import ConfigError
from rollouts_dspy.prompt_optimization.types import OptimizationResult, SearchOutcome
from rollouts_dspy.testing import generate_intent_queries

ROWS = generate_intent_queries(40, seed=3)
EXAMPLES = rows_to_examples(ROWS, ["query"])
TRAIN, VAL = EXAMPLES[:20], EXAMPLES[20:]


def accuracy(example, pred, trace=None):
    return example.intent == pred.intent


def evaluate(program, lm, devset=VAL) -> float:
    with dspy.context(lm=lm):
        return dspy.Evaluate(devset=devset, metric=accuracy, num_threads=8, display_progress=False)(program).score


class TwoStep(dspy.Module):
    """A draft answer, then a reasoned check of it: two predictors, each with its own instructions."""

    def __init__(self):
        super().__init__()
        self.draft = dspy.Predict("query -> intent")
        self.check = dspy.ChainOfThought("query, draft -> intent")

    def forward(self, query):
        return self.check(query=query, draft=self.draft(query=query).intent)


def shape(program):
    return [(name, list(p.signature.input_fields), list(p.signature.output_fields))
            for name, p in program.named_predictors()]


def state(program):
    return [(name, p.signature.__doc__, [dict(d) for d in p.demos]) for name, p in program.named_predictors()]


@pytest.mark.parametrize("make", [lambda: dspy.Predict("query -> intent"),
                                  lambda: dspy.ChainOfThought("query -> intent"), TwoStep],
                         ids=["predict", "chain_of_thought", "two_predictors"])
def test_gepa_improves_and_leaves_the_student_alone(make, task_lm, reflect_lm):
    student = make()
    before, baseline = state(student), evaluate(student, task_lm)
    with dspy.context(lm=task_lm):  # no dspy.configure anywhere: the context alone is enough
        optimized = RolloutsGEPA(reflection_lm=reflect_lm, max_metric_calls=200, track_stats=True).compile(
            student, trainset=TRAIN, valset=VAL)
    assert state(student) == before
    assert type(optimized) is type(student) and shape(optimized) == shape(student)
    assert evaluate(optimized, task_lm) > baseline
    assert [dict(d) for _, p in optimized.named_predictors() for d in p.demos] == []
    assert not getattr(optimized, "_compiled", False)
    details = optimized.detailed_results
    assert state(details.candidates[0]) == before and details.parents[0] == [None]
    assert state(details.best_candidate) == state(optimized)
    assert all(0.0 <= s <= 1.0 for s in details.val_aggregate_scores)
    assert details.total_metric_calls <= 200
    assert isinstance(optimized.search_outcome, SearchOutcome)
    single = len(shape(student)) == 1
    assert isinstance(optimized.optimization_result, OptimizationResult) if single else \
        optimized.optimization_result is None


@pytest.mark.parametrize("make", [lambda: dspy.ChainOfThought("query -> intent"), TwoStep],
                         ids=["chain_of_thought", "two_predictors"])
def test_mipro_improves_with_instructions_and_demos(make, task_lm, reflect_lm):
    student = make()
    before, baseline = state(student), evaluate(student, task_lm)
    optimizer = RolloutsMIPRO(prompt_model=reflect_lm, auto=None, num_candidates=4, max_rollouts=300)
    with dspy.context(lm=task_lm):
        optimized = optimizer.compile(student, trainset=TRAIN, valset=VAL, num_trials=8, minibatch_size=10)
    assert state(student) == before and shape(optimized) == shape(student)
    assert evaluate(optimized, task_lm) > baseline
    assert 0 <= optimized.score <= 100
    scores = [c["score"] for c in optimized.candidate_programs]
    assert scores == sorted(scores, reverse=True) and optimized.score == scores[0]
    logs = optimized.trial_logs
    assert "full_eval_score" in logs[1]
    assert all("mb_score" in log or "full_eval_score" in log for log in logs.values())


def test_save_load_round_trip(tmp_path, task_lm, reflect_lm):
    with dspy.context(lm=task_lm):
        optimized = RolloutsMIPRO(prompt_model=reflect_lm, auto=None, num_candidates=3, max_rollouts=120).compile(
            dspy.ChainOfThought("query -> intent"), trainset=TRAIN[:10], valset=VAL[:10], num_trials=4,
            minibatch_size=5)
    optimized.save(str(tmp_path / "program.json"))
    loaded = dspy.ChainOfThought("query -> intent")
    loaded.load(str(tmp_path / "program.json"))
    assert loaded.predict.signature.instructions == optimized.predict.signature.instructions
    assert [dict(d) for d in loaded.predict.demos] == [dict(d) for d in optimized.predict.demos]
    assert evaluate(loaded, task_lm) == evaluate(optimized, task_lm)
    optimized.save(str(tmp_path / "whole"), save_program=True)
    assert evaluate(dspy.load(str(tmp_path / "whole"), allow_pickle=True), task_lm) == evaluate(optimized, task_lm)


def test_no_constructor_arguments(server, task_lm):
    student = dspy.Predict("query -> intent")
    with dspy.context(lm=task_lm):
        optimized = RolloutsGEPA().compile(student, trainset=TRAIN[:8])
    # Defaults: exact match on the `intent` label, the LM in effect reflects, a light preset budget.
    assert shape(optimized) == shape(student)
    assert optimized.search_outcome.rollouts_used <= optimized.optimization_result.config["max_rollouts"]
    assert server.stats().requests_by_model.get("scripted-task", 0) > 8
    assert "scripted-reflect" not in server.stats().requests_by_model


def test_better_together_accepts_the_optimizers(task_lm, reflect_lm):
    gepa = RolloutsGEPA(metric=accuracy, reflection_lm=reflect_lm, max_metric_calls=60)
    mipro = RolloutsMIPRO(metric=accuracy, prompt_model=reflect_lm)
    together = dspy.BetterTogether(metric=accuracy, p=gepa, m=mipro)
    assert together.optimizers == {"p": gepa, "m": mipro}
    student = dspy.Predict("query -> intent")
    student.set_lm(task_lm)
    result = together.compile(student, trainset=TRAIN[:10], valset=VAL[:10], strategy="p")
    assert not result.flag_compilation_error_occurred
    assert [c["strategy"] for c in result.candidate_programs] in (["p", ""], ["", "p"])


def test_checkpoint_resume_through_log_dir(tmp_path, server, task_lm, reflect_lm):
    def run():
        with dspy.context(lm=task_lm):
            return RolloutsGEPA(reflection_lm=reflect_lm, max_metric_calls=60, log_dir=str(tmp_path)).compile(
                dspy.Predict("query -> intent"), trainset=TRAIN[:10], valset=VAL[:10])

    first = run()
    server.reset_stats()
    second = run()
    assert second.signature.instructions == first.signature.instructions
    assert server.stats().requests_by_model.get("scripted-task", 0) == 0  # everything came from the checkpoint


def test_cache_on(task_lm, reflect_lm, server):
    cached = dspy.LM("openai/scripted-task", api_base=server.base_url, api_key="scripted", cache=True)
    with dspy.context(lm=cached):
        optimized = RolloutsGEPA(reflection_lm=reflect_lm, max_metric_calls=40, track_stats=True).compile(
            dspy.Predict("query -> intent"), trainset=TRAIN[:8], valset=VAL[:8])
    assert optimized.detailed_results.total_metric_calls <= 40


def test_validation_before_any_call(server, task_lm):
    with pytest.raises(ConfigError, match="at most one"):
        RolloutsGEPA(auto="light", max_metric_calls=10)
    with pytest.raises(ConfigError, match="auto must be one of"):
        RolloutsGEPA(auto="huge")
    with pytest.raises(ConfigError, match="num_candidates"):
        RolloutsMIPRO(auto=None)
    with pytest.raises(ConfigError, match="no LM is in effect"):
        RolloutsGEPA().compile(dspy.Predict("query -> intent"), trainset=TRAIN)
    with dspy.context(lm=task_lm):
        with pytest.raises(ConfigError, match="teacher"):
            RolloutsGEPA().compile(dspy.Predict("query -> intent"), trainset=TRAIN, teacher=dspy.Predict("a -> b"))
        with pytest.raises(ConfigError, match="match none of the program's output fields"):
            RolloutsGEPA().compile(dspy.Predict("query -> answer"), trainset=TRAIN)
    assert server.stats().requests_total == 0
