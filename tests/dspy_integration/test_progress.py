"""What a DSPy user sees: by default, progress lines through DSPy's logging (the "dspy" logger's handler, on
stderr) and a progress bar over the rollouts; quiet with `dspy.disable_logging()` or a higher "dspy" log level."""

from __future__ import annotations

import logging

import dspy
import pytest

from rollouts_dspy.dspy_integration import RolloutsGEPA, RolloutsMIPRO, rows_to_examples
from rollouts_dspy.testing import generate_intent_queries

EXAMPLES = rows_to_examples(generate_intent_queries(16, seed=2), ["query"])


def compile_small(method, task_lm, reflect_lm):
    with dspy.context(lm=task_lm):
        if method == "gepa":
            return RolloutsGEPA(reflection_lm=reflect_lm, max_metric_calls=40).compile(
                dspy.Predict("query -> intent"), trainset=EXAMPLES[:8], valset=EXAMPLES[8:])
        return RolloutsMIPRO(prompt_model=reflect_lm, auto=None, num_candidates=2, max_rollouts=60).compile(
            dspy.Predict("query -> intent"), trainset=EXAMPLES[:8], valset=EXAMPLES[8:], num_trials=3,
            minibatch_size=4)


@pytest.mark.parametrize("method", ["gepa", "mipro"])
def test_progress_is_shown_by_default(method, task_lm, reflect_lm, capsys):
    compile_small(method, task_lm, reflect_lm)
    err = capsys.readouterr().err
    step = "generation" if method == "gepa" else "trial"
    assert f"INFO dspy.teleprompt.rollouts_dspy: [{method}] starting" in err  # DSPy's own handler and format
    assert f"INFO dspy.teleprompt.rollouts_dspy: [{method}] {step} 0:" in err
    assert f"[{method}] done" in err
    assert f"{method.upper()} Optimization (rollouts-dspy)" in err and "rollouts/s" in err  # the progress bar


@pytest.mark.parametrize("quiet", ["disable_logging", "log_level"])
def test_quiet_on_request(quiet, task_lm, reflect_lm, capsys):
    dspy_logger = logging.getLogger("dspy")
    level = dspy_logger.level
    if quiet == "disable_logging":
        dspy.disable_logging()
    else:
        dspy_logger.setLevel(logging.WARNING)
    try:
        compile_small("gepa", task_lm, reflect_lm)
    finally:
        dspy.enable_logging()
        dspy_logger.setLevel(level)
    err = capsys.readouterr().err
    assert "[gepa]" not in err and "Optimization (rollouts-dspy)" not in err
