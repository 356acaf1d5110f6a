"""Progress reporters for optimization runs: a live rich display on terminals, plain lines elsewhere, nothing when
quiet. Each is a callable taking the engines' events (see `prompt_optimization.events`); the engines never print.

    with progress_reporter(mode="auto") as report:
        result = await run_gepa(..., options=RunOptions(reporter=report))
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from .prompt_optimization.events import (
    BudgetUpdated,
    Event,
    LinePrinter,
    Reporter,
    RunFinished,
    RunStarted,
    RunWarning,
    StepFinished,
    format_cost,
)

__all__ = ["RichReporter", "fan_out", "format_cost", "format_duration", "progress_reporter", "time_left"]


def time_left(elapsed: float, done: int, total: int | None) -> float | None:
    """Seconds left at the pace so far: elapsed / done * (total - done); None when it cannot be estimated."""
    if not total or done <= 0 or elapsed < 0:
        return None
    return max(0.0, elapsed / done * (total - done))


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fan_out(*reporters: Reporter | None) -> Reporter:
    """One reporter that hands every event to each of `reporters` (None entries are skipped)."""
    active = [r for r in reporters if r is not None]

    def report(event: Event) -> None:
        for r in active:
            r(event)

    return report


class RichReporter:
    """A live display: steps done, rollouts used of the budget, best and mean score, tokens, cost, elapsed and
    time left. Use as a context manager (the display stops on exit, also on Ctrl-C)."""

    def __init__(self, stream: TextIO | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        from rich.console import Console

        self.console = Console(file=stream or sys.stderr)
        self.clock = clock
        self.method = ""
        self.step_word = "step"
        self.max_steps: int | None = None
        self.max_rollouts: int | None = None
        self.steps = 0
        self.rollouts = 0
        self.best: float | None = None
        self.mean: float | None = None
        self.tokens = 0
        self.cost: float | None = 0.0  # None once any event says a price is unknown
        self.started = clock()
        self.warnings: list[str] = []
        self._live = None

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def __enter__(self) -> RichReporter:
        from rich.live import Live

        self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(None, None, None)
            self._live = None

    # -- events ---------------------------------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.method = event.method
            self.step_word = "generation" if event.method == "gepa" else "trial"
            self.max_steps, self.max_rollouts = event.max_steps, event.max_rollouts
            self.started = self.clock()
        elif isinstance(event, StepFinished):
            s = event.stats
            self.steps += 1
            self.mean = s.mean_score
            self.best = event.best_so_far if event.best_so_far is not None else self.best
            self.rollouts = max(self.rollouts, s.rollouts_used)
            self.tokens = max(self.tokens, s.tokens)
            self._spent(s.cost_usd)
        elif isinstance(event, BudgetUpdated):
            self.rollouts = event.rollouts_used
            self.tokens = max(self.tokens, event.tokens)
            self._spent(event.cost_usd)
            self.max_rollouts = event.max_rollouts
        elif isinstance(event, RunWarning):
            self.warnings.append(event.message)
            self.console.print(f"[yellow]warning:[/] {event.message}")
        elif isinstance(event, RunFinished):
            self.best = event.best_score if event.best_score is not None else self.best
            self.rollouts = max(self.rollouts, event.rollouts_used)
        if self._live is not None:
            self._live.update(self._render())

    def _spent(self, cost_usd: float | None) -> None:
        # Dollars only grow; an unknown price makes the total unknown for the rest of the run.
        if cost_usd is None or self.cost is None:
            self.cost = None
        else:
            self.cost = max(self.cost, cost_usd)

    def eta(self) -> float | None:
        elapsed = self.clock() - self.started
        estimates = [time_left(elapsed, self.steps, self.max_steps),
                     time_left(elapsed, self.rollouts, self.max_rollouts)]
        known = [e for e in estimates if e is not None]
        return min(known) if known else None  # the run stops at whichever limit comes first

    def _render(self):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        table.add_column(justify="right", style="bold")
        table.add_column(width=30)
        table.add_column()
        steps_total = self.max_steps or max(self.steps, 1)
        table.add_row(f"{self.step_word}s", ProgressBar(total=steps_total, completed=self.steps, width=30),
                      f"{self.steps}/{self.max_steps or '?'}")
        if self.max_rollouts:
            table.add_row("rollouts", ProgressBar(total=self.max_rollouts, completed=self.rollouts, width=30),
                          f"{self.rollouts}/{self.max_rollouts}")
        else:
            table.add_row("rollouts", "", str(self.rollouts))
        best = "-" if self.best is None else f"{self.best:.3f}"
        mean = "-" if self.mean is None else f"{self.mean:.3f}"
        elapsed = self.clock() - self.started
        summary = (f"best [bold green]{best}[/]  mean {mean}  tokens {self.tokens:,}  cost {format_cost(self.cost)}  "
                   f"elapsed {format_duration(elapsed)}  left ~{format_duration(self.eta())}")
        title = f"[bold]{self.method or 'optimize'}[/]"
        return Group(title, table, summary)


@contextlib.contextmanager
def progress_reporter(mode: str = "auto", stream: TextIO | None = None) -> Iterator[Reporter | None]:
    """`mode`: "auto" (rich on a terminal, lines otherwise), "rich", "lines" or "quiet" (None: nothing)."""
    if mode not in ("auto", "rich", "lines", "quiet"):
        raise ValueError(f"progress mode must be auto, rich, lines or quiet, but got {mode!r}")
    out = stream or sys.stderr
    if mode == "quiet":
        yield None
        return
    if mode == "rich" or (mode == "auto" and out.isatty()):
        with RichReporter(out) as reporter:
            yield reporter
        return
    yield LinePrinter(out)
