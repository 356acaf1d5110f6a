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
from rollouts_dspy.dspy_integration.metrics import ExactMatch
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
    # Validation scores per valset position, as dspy.Evaluate measures them for the same program; a valset this
    # small (<= pareto_size) is compared on whole.
    assert d.compared_ids == list(range(len(VAL))) and all(set(s) == set(range(len(VAL))) for s in d.val_subscores)
    runs = counting_metric.runs
    assert d.val_subscores[0] == evaluate_per_example(student, task_lm, VAL, type(counting_metric)())
    assert d.val_aggregate_scores == [sum(s.values()) / len(s) for s in d.val_subscores]
    for i, front in d.per_val_instance_best_candidates.items():
        top = max(s[i] for s in d.val_subscores)
        assert front == {k for k, s in enumerate(d.val_subscores) if s[i] == top}
    assert d.highest_score_achieved_per_val_task == {i: max(s[i] for s in d.val_subscores) for i in range(len(VAL))}
    # Budget bookkeeping (rollouts used when each candidate was found: after its parents were scored on the
    # valset, before it was), the returned program, the run's settings.
    assert d.discovery_eval_counts[0] == 0 and d.discovery_eval_counts == sorted(d.discovery_eval_counts)
    for k in range(1, n):
        assert all(d.discovery_eval_counts[p] + len(VAL) < d.discovery_eval_counts[k] for p in d.parents[k])
        assert d.discovery_eval_counts[k] + len(VAL) <= d.total_metric_calls
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


def test_gepa_results_cover_the_sample_of_a_large_valset_candidates_were_compared_on(task_lm, reflect_lm):
    large = EXAMPLES[12:40]
    with dspy.context(lm=task_lm):
        optimized = RolloutsGEPA(reflection_lm=reflect_lm, max_metric_calls=150, track_stats=True,
                                 track_best_outputs=True, config={"pareto_size": 8}).compile(
            dspy.Predict("query -> intent"), trainset=TRAIN, valset=large)
    d = optimized.detailed_results
    compared = d.compared_ids
    assert len(compared) == 8 and set(compared) < set(range(len(large)))
    assert all(set(s) == set(compared) for s in d.val_subscores)
    assert set(d.per_val_instance_best_candidates) == set(d.best_outputs_valset) == set(compared)
    seed = evaluate_per_example(dspy.Predict("query -> intent"), task_lm, large, ExactMatch())
    assert d.val_subscores[0] == {i: seed[i] for i in compared}  # the seed's scores on exactly those examples


def test_gepa_multi_objective_fields_as_dspy_fills_them(task_lm, reflect_lm):
    def two_objectives(gold, pred, trace=None, pred_name=None, pred_trace=None):
        ok = float(str(pred.intent).strip().lower() == gold.intent.lower())
        short = 1.0 / (1 + len(gold.query.split()))  # the same for every candidate: ties everywhere
        return dspy.Prediction(score=ok, feedback=f"expected: {gold.intent}",
                               objective_scores={"accuracy": ok, "short": short})

    with dspy.context(lm=task_lm):
        optimized = RolloutsGEPA(metric=two_objectives, reflection_lm=reflect_lm, max_metric_calls=120,
                                 track_stats=True).compile(dspy.Predict("query -> intent"), trainset=TRAIN,
                                                           valset=VAL)
    d = optimized.detailed_results
    n = len(d.candidates)
    assert n >= 2 and len(d.val_aggregate_subscores) == n
    short = sum(1.0 / (1 + len(ex.query.split())) for ex in VAL) / len(VAL)
    for k in range(n):
        assert d.val_aggregate_subscores[k]["accuracy"] == pytest.approx(d.val_aggregate_scores[k])
        assert d.val_aggregate_subscores[k]["short"] == pytest.approx(short)
    best = max(d.val_aggregate_scores)
    assert d.objective_pareto_front == pytest.approx({"accuracy": best, "short": short})
    assert d.per_objective_best_candidates["accuracy"] == {k for k in range(n) if d.val_aggregate_scores[k] == best}
    assert d.per_objective_best_candidates["short"] == set(range(n))
    as_dict = d.to_dict()
    assert as_dict["per_objective_best_candidates"]["short"] == list(range(n))
    json.dumps({k: v for k, v in as_dict.items() if k != "best_outputs_valset"})


def test_gepa_best_outputs_survive_a_resume(server, task_lm, reflect_lm, tmp_path):
    def run():
        with dspy.context(lm=task_lm):
            return RolloutsGEPA(reflection_lm=reflect_lm, max_metric_calls=80, track_stats=True,
                                track_best_outputs=True, log_dir=str(tmp_path)).compile(
                dspy.ChainOfThought("query -> intent"), trainset=TRAIN, valset=VAL)

    def outputs(program):
        return {i: [(k, dict(p.items())) for k, p in found]
                for i, found in program.detailed_results.best_outputs_valset.items()}

    first = run()
    server.reset_stats()
    second = run()
    assert server.stats().requests_by_model.get("scripted-task", 0) == 0  # replayed from the checkpoint
    assert outputs(second) == outputs(first)
    assert all(found for found in outputs(first).values())


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
