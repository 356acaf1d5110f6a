"""Result objects, field by field, as DSPy code reads them: dspy.GEPA's `detailed_results` (a DspyGEPAResult)
and MIPROv2's `trial_logs`, `score`, `candidate_programs`, `mb_candidate_programs`, `total_calls`,
`prompt_model_total_calls`."""

from __future__ import annotations

import json

import dspy
import pytest
from dspy.teleprompt.gepa.gepa import DspyGEPAResult
from dspy_helpers import TwoStep

from rollouts_dspy.dspy_integration import RolloutsGEPA, RolloutsMIPRO, rows_to_examples
from rollouts_dspy.testing import generate_intent_queries

EXAMPLES = rows_to_examples(generate_intent_queries(40, seed=8), ["query"])
TRAIN, VAL = EXAMPLES[:12], EXAMPLES[12:22]


def instructions(program):
    return [p.signature.instructions for _, p in program.named_predictors()]


def evaluate_per_example(program, lm, devset, metric):
    with dspy.context(lm=lm):
        result = dspy.Evaluate(devset=devset, metric=metric, num_threads=4, display_progress=False)(program)
    return {i: float(getattr(s, "score", s)) for i, (_, _, s) in enumerate(result.results)}


@pytest.mark.parametrize("make", [lambda: dspy.ChainOfThought("query -> intent"), TwoStep], ids=["one", "two"])
def test_gepa_detailed_results_field_by_field(make, task_lm, reflect_lm, counting_metric, tmp_path):
    student = make()
    with dspy.context(lm=task_lm):
        optimized = RolloutsGEPA(metric=counting_metric, reflection_lm=reflect_lm, max_metric_calls=150,
                                 track_stats=True, track_best_outputs=True, log_dir=str(tmp_path), seed=4).compile(
            student, trainset=TRAIN, valset=VAL)
    d = optimized.detailed_results
    assert isinstance(d, DspyGEPAResult)
    n = len(d.candidates)
    assert n >= 2 and [len(d.parents), len(d.val_aggregate_scores), len(d.val_subscores),
                       len(d.discovery_eval_counts)] == [n] * 4
    # The seed program first, with no parent; every other candidate descends from earlier ones.
    assert instructions(d.candidates[0]) == instructions(student) and d.parents[0] == [None]
    assert all(p is not None and p < k for k in range(1, n) for p in d.parents[k])
    # Validation scores per valset position, as dspy.Evaluate measures them for the same program.
    assert all(set(s) == set(range(len(VAL))) for s in d.val_subscores)
    runs = counting_metric.runs
    assert d.val_subscores[0] == evaluate_per_example(student, task_lm, VAL, type(counting_metric)())
    assert d.val_aggregate_scores == [sum(s.values()) / len(s) for s in d.val_subscores]
    for i, front in d.per_val_instance_best_candidates.items():
        top = max(s[i] for s in d.val_subscores)
        assert front == {k for k, s in enumerate(d.val_subscores) if s[i] == top}
    assert d.highest_score_achieved_per_val_task == {i: max(s[i] for s in d.val_subscores) for i in range(len(VAL))}
    # Budget bookkeeping, the returned program, the run's settings.
    assert d.discovery_eval_counts[0] == 0 and max(d.discovery_eval_counts) <= d.total_metric_calls
    assert d.total_metric_calls == optimized.search_outcome.rollouts_used == runs
    assert d.num_full_val_evals == n and d.log_dir == str(tmp_path) and d.seed == 4
    assert instructions(d.best_candidate) == instructions(optimized)
    assert d.val_aggregate_scores[d.best_idx] == max(d.val_aggregate_scores)
    # track_best_outputs: the outputs of the best candidates on each validation example.
    assert set(d.best_outputs_valset) == set(range(len(VAL)))
    for i, outputs in d.best_outputs_valset.items():
        assert outputs and {k for k, _ in outputs} <= d.per_val_instance_best_candidates[i]
        assert all(isinstance(pred, dspy.Prediction) and pred.intent for _, pred in outputs)
    as_dict = d.to_dict()
    assert set(as_dict) >= {"candidates", "parents", "val_aggregate_scores", "val_subscores", "best_idx",
                            "per_val_instance_best_candidates", "discovery_eval_counts", "total_metric_calls"}
    assert as_dict["candidates"][0] == dict(zip([k for k, _ in student.named_predictors()],
                                                instructions(student), strict=True))
    json.dumps({k: v for k, v in as_dict.items() if k != "best_outputs_valset"})
    assert d.val_aggregate_subscores is None  # a metric without objective_scores


def test_gepa_without_valset_validates_on_the_trainset_and_without_track_stats_attaches_nothing(task_lm, reflect_lm):
    with dspy.context(lm=task_lm):
        tracked = RolloutsGEPA(reflection_lm=reflect_lm, max_metric_calls=60, track_stats=True).compile(
            dspy.Predict("query -> intent"), trainset=TRAIN[:8])
        plain = RolloutsGEPA(reflection_lm=reflect_lm, max_metric_calls=60).compile(
            dspy.Predict("query -> intent"), trainset=TRAIN[:8])
    assert all(set(s) == set(range(8)) for s in tracked.detailed_results.val_subscores)
    assert tracked.detailed_results.best_outputs_valset is None
    assert not hasattr(plain, "detailed_results") and plain.search_outcome.records


def test_mipro_results_as_miprov2_writes_them(task_lm, reflect_lm, server, tmp_path):
    with dspy.context(lm=task_lm):
        optimized = RolloutsMIPRO(prompt_model=reflect_lm, auto=None, num_candidates=3, log_dir=str(tmp_path)).compile(
            TwoStep(), trainset=TRAIN, valset=VAL, num_trials=6, minibatch_size=5)
    logs = optimized.trial_logs
    assert sorted(logs) == list(range(1, len(logs) + 1))
    assert set(logs[1]) == {"full_eval_program_path", "full_eval_score", "total_eval_calls_so_far",
                            "full_eval_program"}
    minibatch = [log for log in logs.values() if "mb_score" in log]
    assert len(minibatch) == 6
    for log in minibatch:
        assert set(log) == {"0_predictor_instruction", "0_predictor_demos", "1_predictor_instruction",
                            "1_predictor_demos", "mb_program_path", "mb_score", "total_eval_calls_so_far",
                            "mb_program"}
        assert 0 <= log["mb_score"] <= 100 and (tmp_path / "evaluated_programs").exists()
    full = optimized.candidate_programs
    assert full and [c["score"] for c in full] == sorted((c["score"] for c in full), reverse=True)
    assert all(c["full_eval"] and set(c) >= {"score", "program", "full_eval"} for c in full)
    assert optimized.score == full[0]["score"] and instructions(full[0]["program"]) == instructions(optimized)
    assert optimized.score == pytest.approx(100 * sum(evaluate_per_example(
        optimized, task_lm, VAL, lambda g, p, t=None: g.intent == p.intent).values()) / len(VAL))
    assert [c["score"] for c in optimized.mb_candidate_programs] == sorted(
        (log["mb_score"] for log in minibatch), reverse=True)
    assert optimized.total_calls == optimized.search_outcome.rollouts_used
    assert optimized.prompt_model_total_calls == server.stats().requests_by_model["scripted-reflect"] > 0


def test_mipro_candidate_programs_when_auto_trims_the_validation_split(task_lm, reflect_lm):
    many = rows_to_examples(generate_intent_queries(300, seed=5), ["query"])
    with dspy.context(lm=task_lm):
        optimized = RolloutsMIPRO(prompt_model=reflect_lm, auto="light", num_threads=16).compile(
            dspy.Predict("query -> intent"), trainset=many)
    assert optimized.candidate_programs and optimized.score == optimized.candidate_programs[0]["score"]
    assert optimized.total_calls <= optimized.optimization_result.config["max_rollouts"]
