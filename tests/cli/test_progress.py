"""Progress reporters: the live rich display, plain lines off a terminal, nothing when quiet."""

from __future__ import annotations

import io

import pytest

from rollouts_dspy.progress import RichReporter, fan_out, format_duration, progress_reporter, time_left
from rollouts_dspy.prompt_optimization.events import (
    BudgetUpdated,
    LinePrinter,
    RunFinished,
    RunStarted,
    RunWarning,
    StepFinished,
)
from rollouts_dspy.prompt_optimization.types import GenerationStats


def _events():
    yield RunStarted("gepa", 4, 100)
    yield StepFinished("gepa", GenerationStats(0, 0.5, 0.4, 3, 25, 1200, 0.01, 1.0), 0.5)
    yield BudgetUpdated(25, 100, 0.01)
    yield RunWarning("train and val overlap")
    yield StepFinished("gepa", GenerationStats(1, 0.75, 0.6, 3, 50, 2400, 0.02, 2.0), 0.75)
    yield RunFinished("gepa", 0.75, "generations", 50)


def test_time_left_is_pace_times_steps_left():
    assert time_left(10.0, 2, 6) == pytest.approx(20.0)
    assert time_left(10.0, 0, 6) is None and time_left(10.0, 2, None) is None
    assert time_left(10.0, 8, 6) == 0.0
    assert [format_duration(s) for s in (None, 5, 65, 3700)] == ["?", "5s", "1m05s", "1h01m"]


def test_rich_reporter_shows_steps_budget_scores_tokens_cost_and_eta():
    clock = iter(float(t) for t in range(0, 1000, 5))
    stream = io.StringIO()
    with RichReporter(stream, clock=lambda: next(clock)) as reporter:
        for event in _events():
            reporter(event)
        assert (reporter.steps, reporter.rollouts, reporter.best, reporter.tokens) == (2, 50, 0.75, 2400)
        assert reporter.eta() is not None
    text = stream.getvalue()
    for piece in ("generations", "2/4", "50/100", "best", "0.750", "mean 0.600", "tokens 2,400", "$0.0200", "left ~",
                  "train and val overlap"):
        assert piece in text, piece


def test_progress_reporter_modes():
    stream = io.StringIO()  # not a terminal
    with progress_reporter("auto", stream) as reporter:
        assert isinstance(reporter, LinePrinter)
        for event in _events():
            reporter(event)
    assert "[gepa] generation 1: best 0.750" in stream.getvalue()
    with progress_reporter("quiet", stream) as reporter:
        assert reporter is None
    with progress_reporter("rich", io.StringIO()) as reporter:
        assert isinstance(reporter, RichReporter)
    with pytest.raises(ValueError, match="progress mode"), progress_reporter("loud"):
        pass


def test_fan_out_skips_none():
    seen_a, seen_b = [], []
    report = fan_out(seen_a.append, None, seen_b.append)
    report(RunWarning("x"))
    assert seen_a == seen_b == [RunWarning("x")]


def test_an_unknown_price_shows_as_unknown_never_as_zero_dollars():
    # An unpriced model (a local server, say): the engines report cost None; the display must not say $0.0000.
    stream = io.StringIO()
    with RichReporter(stream, clock=lambda: 0.0) as reporter:
        reporter(RunStarted("mipro", 4, 100))
        reporter(StepFinished("mipro", GenerationStats(0, 0.5, 0.4, 3, 25, 1200, None, 1.0), 0.5))
        reporter(BudgetUpdated(40, 100, None))
        assert reporter.cost is None and reporter.rollouts == 40
    text = stream.getvalue()
    assert "cost unknown" in text and "$0.0000" not in text
    # Priced runs keep their dollars.
    priced = io.StringIO()
    with RichReporter(priced, clock=lambda: 0.0) as reporter:
        reporter(StepFinished("gepa", GenerationStats(0, 0.5, 0.4, 3, 25, 1200, 0.0123, 1.0), 0.5))
    assert "cost $0.0123" in priced.getvalue()
