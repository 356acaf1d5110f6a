"""Every argument of dspy.GEPA.__init__, dspy.MIPROv2.__init__ and dspy.MIPROv2.compile is accepted by name;
bad values are ConfigErrors naming the argument before any LM call; an argument with no meaning here warns,
naming it. (The behaviours each argument drives are tested in the other files of this folder.)"""

from __future__ import annotations

import inspect
import sys

import dspy
import pytest

from rollouts_dspy.dspy_integration import RolloutsGEPA, RolloutsMIPRO, rows_to_examples
from rollouts_dspy.errors import ConfigError
from rollouts_dspy.testing import generate_intent_queries

EXAMPLES = rows_to_examples(generate_intent_queries(12, seed=3), ["query"])


def parameters(fn) -> list[str]:
    return [name for name in inspect.signature(fn).parameters if name not in ("self", "kwargs")]


@pytest.mark.parametrize(("ours", "theirs"), [
    (RolloutsGEPA.__init__, dspy.GEPA.__init__),
    (RolloutsMIPRO.__init__, dspy.MIPROv2.__init__),
    (RolloutsMIPRO.compile, dspy.MIPROv2.compile),
    (RolloutsGEPA.compile, dspy.GEPA.compile),
], ids=["GEPA.__init__", "MIPROv2.__init__", "MIPROv2.compile", "GEPA.compile"])
def test_every_dspy_parameter_is_accepted_by_name(ours, theirs):
    assert set(parameters(theirs)) <= set(parameters(ours)), set(parameters(theirs)) - set(parameters(ours))


def test_a_tutorial_argument_list_constructs_without_a_call(server, reflect_lm):
    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        return dspy.Prediction(score=1.0, feedback="ok")

    gepa = RolloutsGEPA(metric=metric, auto="light", num_threads=32, track_stats=True, track_best_outputs=True,
                        reflection_minibatch_size=3, candidate_selection_strategy="current_best",
                        reflection_lm=reflect_lm, skip_perfect_score=False, add_format_failure_as_feedback=True,
                        component_selector="all", use_merge=True, max_merge_invocations=2, failure_score=0.0,
                        perfect_score=1.0, warn_on_score_mismatch=False, seed=3)
    assert gepa.auto == "light" and gepa.track_stats and gepa.metric_fn is metric  # dspy.GEPA's attributes
    mipro = RolloutsMIPRO(metric, reflect_lm, None, {"lm": reflect_lm}, 2, 2, "light", None, 4, 5, 7, 0.7, True,
                          False, None, 0.5)  # MIPROv2's positional order
    assert (mipro.teacher_settings, mipro.max_errors, mipro.init_temperature, mipro.verbose) == \
        ({"lm": reflect_lm}, 5, 0.7, True)
    assert server.stats().requests_total == 0


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"candidate_selection_strategy": "best"}, "candidate_selection_strategy"),
    ({"component_selector": "random"}, "component_selector"),
    ({"skip_perfect_score": "yes"}, "skip_perfect_score"),
    ({"max_merge_invocations": -1}, "max_merge_invocations"),
    ({"reflection_minibatch_size": 0}, "reflection_minibatch_size"),
    ({"instruction_proposer": "mine"}, "instruction_proposer"),
    ({"track_best_outputs": True}, "track_stats"),
    ({"num_threads": 0}, "num_threads"),
    ({"seed": -1}, "seed"),
    ({"auto": "light", "max_metric_calls": 10}, "at most one"),
    ({"auto": "huge"}, "auto"),
])
def test_gepa_rejects_bad_values_naming_the_argument(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        RolloutsGEPA(**kwargs)


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"max_errors": 0}, "max_errors"),
    ({"verbose": 1}, "verbose"),
    ({"init_temperature": "hot"}, "init_temperature"),
    ({"teacher_settings": ["lm"]}, "teacher_settings"),
    ({"auto": None}, "num_candidates"),
    ({"num_candidates": 3}, "auto"),
])
def test_mipro_rejects_bad_values_naming_the_argument(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        RolloutsMIPRO(**kwargs)


def test_mipro_compile_rejects_bad_values_before_any_call(server, task_lm, reflect_lm):
    with dspy.context(lm=task_lm), pytest.raises(ConfigError, match="view_data_batch_size"):
        RolloutsMIPRO(prompt_model=reflect_lm).compile(dspy.Predict("query -> intent"), trainset=EXAMPLES,
                                                         view_data_batch_size=0)
    assert server.stats().requests_total == 0


def test_arguments_without_meaning_here_warn_naming_them(server, task_lm, reflect_lm):
    with pytest.warns(UserWarning, match="gepa_kwargs"):
        RolloutsGEPA(gepa_kwargs={"use_cloudpickle": True})
    with pytest.warns(UserWarning, match="code_proposer"):
        RolloutsGEPA(code_proposer=lambda **kw: {})
    with dspy.context(lm=task_lm), pytest.warns(UserWarning, match="requires_permission_to_run"), \
            pytest.raises(ConfigError, match="cannot pay"):
        # The warning comes first; the tiny budget then stops the compile before any call.
        RolloutsMIPRO(prompt_model=reflect_lm, auto=None, num_candidates=2, max_rollouts=2).compile(
            dspy.Predict("query -> intent"), trainset=EXAMPLES, requires_permission_to_run=False, num_trials=2)
    assert server.stats().requests_total == 0


@pytest.mark.parametrize(("argument", "module", "extra"), [("use_wandb", "wandb", "wandb"),
                                                           ("use_mlflow", "mlflow", "mlflow")])
def test_tracking_without_its_package_names_the_extra(monkeypatch, argument, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # what `import wandb` sees when it is not installed
    with pytest.raises(ConfigError, match=rf"rollouts-dspy\[{extra}\]"):
        RolloutsGEPA(**{argument: True})


def test_programs_the_optimizers_cannot_take_are_named(server, task_lm):
    with dspy.context(lm=task_lm):
        with pytest.raises(ConfigError, match=r"has no predictors.*dspy\.Flex"):
            RolloutsGEPA().compile(dspy.Flex("query -> intent"), trainset=EXAMPLES)
        with pytest.raises(ConfigError, match="teacher is not supported"):
            RolloutsGEPA().compile(dspy.Predict("query -> intent"), trainset=EXAMPLES,
                                   teacher=dspy.Predict("query -> intent"))
        with pytest.raises(ConfigError, match="teacher must have the student's predictors"):
            RolloutsMIPRO().compile(dspy.Predict("query -> intent"), trainset=EXAMPLES,
                                    teacher=dspy.ChainOfThought("query -> intent"))
    assert server.stats().requests_total == 0
