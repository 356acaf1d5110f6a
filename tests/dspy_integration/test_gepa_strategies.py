"""dspy.GEPA's strategy arguments drive the engine: `component_selector` ("round_robin" | "all" | a
ReflectionComponentSelector callable, called with gepa's arguments), `instruction_proposer` (a ProposalFn given
dspy.GEPA's reflective dataset, in the reflection LM's context, replayed on resume), `candidate_selection_strategy`,
`skip_perfect_score`, `use_merge`/`max_merge_invocations`; and each predictor's own feedback reaches its own
reflection, for one- and two-predictor programs."""

from __future__ import annotations

import re
import threading

import dspy
import pytest
from dspy_helpers import RecordingLM, TwoStep

from rollouts_dspy.dspy_integration import RolloutsGEPA, rows_to_examples
from rollouts_dspy.prompt_optimization.events import CandidateDropped
from rollouts_dspy.testing import generate_intent_queries

EXAMPLES = rows_to_examples(generate_intent_queries(40, seed=21), ["query"])
TRAIN, VAL = EXAMPLES[:12], EXAMPLES[12:22]


def per_predictor(gold, pred, trace=None, pred_name=None, pred_trace=None):
    ok = str(pred.intent).strip().lower() == gold.intent.lower()
    return dspy.Prediction(score=float(ok), feedback=f"feedback for {pred_name} (expected: {gold.intent})")


def compile_gepa(student, task_lm, **kwargs):
    kwargs.setdefault("metric", per_predictor)
    kwargs.setdefault("max_metric_calls", 120)
    with dspy.context(lm=task_lm):
        return RolloutsGEPA(**kwargs).compile(student, trainset=TRAIN, valset=VAL)


def changed(program):
    """For each mutated child of the run: the predictors whose instructions differ from its parent's."""
    outcome = program.search_outcome
    out = []
    for r in outcome.records:
        if r.origin == "mutation":
            parent = outcome.record(r.parents[0]).candidate.instructions
            out.append({c for c, text in r.candidate.instructions.items() if text != parent[c]})
    return out


class RecordingSelector:
    """A ReflectionComponentSelector (gepa's protocol) that records its arguments and always picks `pick`."""

    def __init__(self, pick=None):
        self.pick, self.calls = pick, []
        self._lock = threading.Lock()

    def __call__(self, state, trajectories, subsample_scores, candidate_idx, candidate):
        with self._lock:
            self.calls.append((state, trajectories, subsample_scores, candidate_idx, candidate))
        return [self.pick] if self.pick else [state.list_of_named_predictors[0]]


def test_a_custom_component_selector_is_called_with_gepas_arguments(task_lm, reflect_lm):
    selector = RecordingSelector(pick="check")
    optimized = compile_gepa(TwoStep(), task_lm, reflection_lm=reflect_lm, component_selector=selector,
                             reflection_minibatch_size=3)
    assert selector.calls
    for state, trajectories, scores, idx, candidate in selector.calls:
        assert state.list_of_named_predictors == ["draft", "check"]
        assert state.program_candidates[idx] == candidate and state.parent_program_for_candidate[0] == [None]
        assert all(set(s) <= set(range(len(VAL))) for s in state.prog_candidate_val_subscores)
        assert len(trajectories) == len(scores) <= 3
        for run, score in zip(trajectories, scores, strict=True):
            assert run["score"] == score and run["example"] in TRAIN
            assert [type(p).__name__ for p, _, _ in run["trace"]] == ["Predict", "Predict"]
            assert run["prediction"].intent == run["trace"][-1][2].intent
    children = changed(optimized)
    assert children and all(c == {"check"} for c in children)  # the selector decided what changed


def test_gepas_own_round_robin_selector_and_the_named_strategies(task_lm, reflect_lm):
    from gepa.strategies.component_selector import RoundRobinReflectionComponentSelector

    gepas = changed(compile_gepa(TwoStep(), task_lm, reflection_lm=reflect_lm,
                                 component_selector=RoundRobinReflectionComponentSelector()))
    assert all(len(c) == 1 for c in gepas) and set().union(*gepas) == {"draft", "check"}
    every = changed(compile_gepa(TwoStep(), task_lm, reflection_lm=reflect_lm, component_selector="all"))
    assert any(c == {"draft", "check"} for c in every)


def test_current_best_starts_every_step_from_the_best_candidate(task_lm, reflect_lm):
    selector = RecordingSelector()
    compile_gepa(TwoStep(), task_lm, reflection_lm=reflect_lm, component_selector=selector,
                 candidate_selection_strategy="current_best")
    assert len(selector.calls) > 3
    for state, _, _, idx, _ in selector.calls:
        assert state.program_full_scores_val_set[idx] == max(state.program_full_scores_val_set)
    pareto = RecordingSelector()
    compile_gepa(TwoStep(), task_lm, reflection_lm=reflect_lm, component_selector=pareto)
    for state, _, _, idx, _ in pareto.calls:  # a parent of the per-instance Pareto front
        assert any(idx in front for front in state.program_at_pareto_front_valset.values())


class RecordingProposer:
    """A ProposalFn (gepa's protocol) recording what it is given and the LM in effect; proposes the rules its
    reflective dataset's feedback names (so its children can win)."""

    def __init__(self, fail_first=False):
        self.calls, self.fail_first = [], fail_first
        self._lock = threading.Lock()

    def __call__(self, candidate, reflective_dataset, components_to_update):
        with self._lock:
            self.calls.append((dict(candidate), reflective_dataset, list(components_to_update), dspy.settings.lm))
            if self.fail_first and len(self.calls) == 1:
                raise ValueError("a bug in the proposer")
        out = {}
        for name in components_to_update:
            labels = sorted({m for ex in reflective_dataset.get(name, ()) for m in
                             re.findall(r"expected: (\w+)", ex["Feedback"])})
            out[name] = candidate[name] + "".join(f"\n- Possible answer: {label}" for label in labels)
        return out


def test_a_custom_instruction_proposer_gets_dspys_reflective_dataset(task_lm, reflect_lm, server):
    proposer = RecordingProposer()
    optimized = compile_gepa(TwoStep(), task_lm, reflection_lm=reflect_lm, instruction_proposer=proposer)
    assert proposer.calls
    for candidate, dataset, components, lm in proposer.calls:
        assert lm is reflect_lm and set(candidate) == {"draft", "check"} and set(dataset) <= set(components)
        for name, examples in dataset.items():
            fields = {"draft": {"query"}, "check": {"query", "draft"}}[name]
            for ex in examples:
                assert set(ex) == {"Inputs", "Generated Outputs", "Feedback"}
                assert set(ex["Inputs"]) == fields and all(isinstance(v, str) for v in ex["Inputs"].values())
                assert set(ex["Generated Outputs"]) == {"intent"}
                assert ex["Feedback"].startswith(f"feedback for {name} ")  # that predictor's own feedback
    proposed = [r for r in optimized.search_outcome.records if "Possible answer" in str(r.candidate.instructions)]
    assert proposed  # the proposals became candidates
    assert "scripted-reflect" not in server.stats().requests_by_model  # the proposer made no LM call


def test_a_failed_proposal_drops_one_child_and_the_run_goes_on(task_lm):
    proposer, events = RecordingProposer(fail_first=True), []
    compile_gepa(dspy.Predict("query -> intent"), task_lm, instruction_proposer=proposer, reporter=events.append)
    dropped = [e for e in events if isinstance(e, CandidateDropped)]
    assert any("ValueError: a bug in the proposer" in " ".join(e.reasons) for e in dropped)
    assert len(proposer.calls) > 1


def test_a_resumed_run_replays_the_proposals_and_the_selections(task_lm, tmp_path):
    def run():
        proposer, selector = RecordingProposer(), RecordingSelector()
        program = compile_gepa(TwoStep(), task_lm, instruction_proposer=proposer, component_selector=selector,
                               log_dir=str(tmp_path))
        return program, proposer, selector

    before, proposed, selected = run()
    assert proposed.calls and selected.calls
    after, again, reselected = run()
    assert again.calls == [] and reselected.calls == []  # everything came back from the checkpoint
    assert [(r.id, r.candidate, dict(r.val_scores)) for r in after.search_outcome.records] == \
        [(r.id, r.candidate, dict(r.val_scores)) for r in before.search_outcome.records]


def test_dspys_built_in_instruction_proposer_works_here(task_lm, reflect_lm, server):
    from dspy.teleprompt.gepa.instruction_proposal import InstructionProposer

    optimized = compile_gepa(dspy.ChainOfThought("query -> intent"), task_lm, reflection_lm=reflect_lm,
                             instruction_proposer=InstructionProposer(), track_stats=True)
    asked = server.stats().requests_by_model.get("scripted-reflect", 0)
    assert asked > 0 and len(optimized.detailed_results.candidates) > 1
    # The proposer's own LM calls are the run's reflection calls.
    assert optimized.search_outcome.usage["reflection"]["calls"] == asked
    assert optimized.optimization_result.usage["reflection"]["calls"] == asked


def test_a_resumed_run_replays_reflections_on_per_predictor_feedback(server, task_lm, reflect_lm, tmp_path):
    def run():
        return compile_gepa(TwoStep(), task_lm, reflection_lm=reflect_lm, log_dir=str(tmp_path))

    before = run()
    server.reset_stats()
    after = run()
    assert server.stats().requests_total == 0  # every rollout and reflection came back from the checkpoint
    assert [(r.id, r.candidate) for r in after.search_outcome.records] == \
        [(r.id, r.candidate) for r in before.search_outcome.records]


@pytest.mark.parametrize("make", [lambda: dspy.ChainOfThought("query -> intent"), TwoStep], ids=["one", "two"])
def test_each_predictors_feedback_reaches_its_own_reflection(make, server, task_lm):
    reflect = RecordingLM("openai/scripted-reflect", api_base=server.base_url, api_key="x", cache=False)
    student = make()
    compile_gepa(student, task_lm, reflection_lm=reflect)
    names = [n for n, _ in student.named_predictors()]
    assert reflect.requests
    for text, _ in reflect.requests:
        asked = re.findall(r'the step called "(\w+)"', text) or names  # one predictor: the step is not named
        given = set(re.findall(r"Feedback: feedback for (\w+)", text))
        assert len(asked) == 1 and given == {asked[0]}


def test_skip_perfect_score(server, task_lm, reflect_lm):
    train = {id(ex) for ex in TRAIN}

    def perfect_on_train(gold, pred, trace=None, pred_name=None, pred_trace=None):
        ok = id(gold) in train or str(pred.intent).strip().lower() == gold.intent.lower()
        return dspy.Prediction(score=float(ok), feedback="ok")

    compile_gepa(dspy.Predict("query -> intent"), task_lm, metric=perfect_on_train, reflection_lm=reflect_lm)
    assert "scripted-reflect" not in server.stats().requests_by_model  # every minibatch was perfect
    compile_gepa(dspy.Predict("query -> intent"), task_lm, metric=perfect_on_train, reflection_lm=reflect_lm,
                 skip_perfect_score=False)
    assert server.stats().requests_by_model["scripted-reflect"] > 0


def test_max_merge_invocations_caps_the_merges(task_lm, reflect_lm):
    def merges(**kwargs):
        # Small reflections keep the steps cheap, so 300 calls make enough steps to merge several times.
        program = compile_gepa(dspy.Predict("query -> intent"), task_lm, reflection_lm=reflect_lm,
                               max_metric_calls=300, seed=1, reflection_minibatch_size=4, **kwargs)
        return sum(r.origin.startswith("merge") for r in program.search_outcome.records)

    assert merges() >= 2
    assert merges(max_merge_invocations=1) == 1
    assert merges(use_merge=False) == 0


def test_a_reply_that_did_not_parse_reaches_a_proposer_as_dspy_shows_it():
    import asyncio

    from rollouts_dspy.dspy_integration import ProgramTask, TaskOptions
    from rollouts_dspy.dspy_integration.candidates import candidate_of
    from rollouts_dspy.dspy_integration.gepa_strategies import DSPyProposer
    from rollouts_dspy.prompt_optimization.gepa import ProposalRequest

    class Unparseable(dspy.LM):
        def __call__(self, prompt=None, messages=None, **kwargs):
            return ["I would rather not use your format."]

    student, proposer = dspy.Predict("query -> intent"), RecordingProposer()
    lm = Unparseable("openai/none")
    task = ProgramTask(student, TRAIN, per_predictor, lm, TaskOptions(add_format_failure_as_feedback=True))
    candidate = candidate_of(student)

    async def go():
        try:
            rollouts = await asyncio.gather(*(task.run(candidate, i) for i in range(2)))
            evidence = tuple(await task.component_feedback(candidate, rollouts, "self"))
            return await DSPyProposer(proposer, task, lm).propose(ProposalRequest(candidate, ("self",),
                                                                                 {"self": evidence}))
        finally:
            task.close()

    asyncio.run(go())
    (_, dataset, _, _), = proposer.calls
    assert len(dataset["self"]) == 2
    for example in dataset["self"]:
        assert example["Generated Outputs"].startswith("Couldn't parse the output as per the expected output format")
        assert "I would rather not use your format." in example["Generated Outputs"]
        assert example["Feedback"].startswith("Your output failed to parse. Follow this structure:")
        assert example["Inputs"] == {"query": TRAIN[dataset["self"].index(example)].query}
