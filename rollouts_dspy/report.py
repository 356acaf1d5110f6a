"""A readable report of a finished run (`rollouts-dspy show result.json`): the best prompt, the score history per
generation or trial, rollouts, tokens and cost per role, the top candidates and a diff of the best system prompt
against the initial one. Rich tables on a terminal, plain aligned text otherwise.

The report is built once as sections of (title, rows) and rendered by either writer, so both say the same.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from .prompt_optimization.events import format_cost
from .prompt_optimization.types import OptimizationResult, PromptTemplate

__all__ = ["Section", "build_report", "prompt_diff", "render_report", "score_summary"]


@dataclass(frozen=True)
class Section:
    """A titled block: a table (`headers` + `rows`) or free text (`text`, rendered verbatim)."""

    title: str
    headers: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    text: str = ""
    kind: str = "table"  # "table", "text" or "diff"


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def prompt_diff(initial: PromptTemplate | None, best: PromptTemplate) -> str:
    """A unified diff of the initial system prompt against the best one ('' when they are equal)."""
    if initial is None:
        return ""
    lines = difflib.unified_diff(initial.system.splitlines(), best.system.splitlines(),
                                 fromfile="initial system prompt", tofile="best system prompt", lineterm="")
    return "\n".join(lines)


def score_summary(record: Any) -> str:
    """'val 0.667 (n=90), train 0.767 (n=120)': a candidate's means on each split it was measured on."""
    parts = [f"{name} {mean:.3f} (n={n})" for name, mean, n in
             (("val", record.val_mean, len(record.val_scores)), ("train", record.train_mean, len(record.train_scores)))
             if mean is not None]
    return ", ".join(parts) or "-"


def _summary(result: OptimizationResult) -> Section:
    by_id = {r.id: r for r in result.candidates}
    initial = next((r for r in result.candidates if r.origin == "initial"), None)
    best = by_id.get(result.best_candidate_id)
    rows = [
        ("method", result.method or "?"),
        ("seed", str(result.seed)),
        ("stop reason", result.stop_reason or "-"),
        ("best candidate", result.best_candidate_id or result.best_template.id),
        ("best score", score_summary(best) if best is not None else _num(result.best_template.score)),
        ("initial score", score_summary(initial) if initial is not None else "-"),
        ("candidates evaluated", str(len(result.candidates) or len(result.final_population))),
        ("rollouts used", str(result.rollouts_used)),
    ]
    return Section("Run", ("", ""), tuple(rows))


def _usage(result: OptimizationResult) -> Section:
    rows = []
    totals = [0, 0, 0, 0, 0]
    cost_total, cost_known = 0.0, True
    for role, stats in sorted(result.usage.items()):
        values = [int(stats.get(k, 0) or 0) for k in ("calls", "retries", "failures", "prompt_tokens",
                                                      "completion_tokens")]
        cost = float(stats.get("cost_usd", 0.0) or 0.0)
        known = bool(stats.get("cost_known", True))
        rows.append((role, *map(str, values), format_cost(cost if known else None)))
        totals = [a + b for a, b in zip(totals, values, strict=True)]
        cost_total, cost_known = cost_total + cost, cost_known and known
    if len(rows) > 1:
        rows.append(("total", *map(str, totals), format_cost(cost_total if cost_known else None)))
    headers = ("role", "calls", "retries", "failures", "prompt tokens", "completion tokens", "cost")
    return Section("LLM usage (cost unknown: the model is not in litellm's price table)" if not cost_known
                   else "LLM usage", headers, tuple(rows))


def _history(result: OptimizationResult) -> Section:
    step = "generation" if result.method == "gepa" else "trial" if result.method == "mipro" else "step"
    # A result file written before unknown prices were recorded as None has 0.0 here for an unpriced model; its
    # usage table knows the price was unknown, and so the history says unknown too.
    priced = all(bool(stats.get("cost_known", True)) for stats in result.usage.values())
    rows = tuple(
        (str(s.generation), _num(s.best_score), _num(s.mean_score), str(s.num_evaluated), str(s.rollouts_used),
         f"{s.tokens:,}", format_cost(s.cost_usd if priced else None), f"{s.elapsed_seconds:.1f}s")
        for s in result.history
    )
    headers = (step, "best", "mean", "evaluated", "rollouts", "tokens", "cost", "elapsed")
    return Section(f"Score history ({len(rows)} {step}s)", headers, rows)


def _candidates(result: OptimizationResult, top: int) -> Section:
    full = max((len(r.train_scores) for r in result.candidates), default=0)

    def rank(r: Any) -> tuple:
        # Validated candidates first (by validation mean), then the fully trained ones, then minibatch-only ones.
        return (r.val_mean is not None, r.val_mean or 0.0, len(r.train_scores) == full, r.train_mean or 0.0)

    ranked = sorted(result.candidates, key=rank, reverse=True)[:top]
    rows = tuple(
        (r.id + (" *" if r.id == result.best_candidate_id else ""), str(r.generation), r.origin,
         ",".join(r.parents) or "-", f"{_num(r.train_mean)} ({len(r.train_scores)})",
         f"{_num(r.val_mean)} ({len(r.val_scores)})", str(r.failures))
        for r in ranked
    )
    headers = ("id", "gen", "origin", "parents", "train (n)", "val (n)", "failures")
    return Section(f"Top {len(rows)} of {len(result.candidates)} candidates (* = best)", headers, rows)


def _best_prompt(best: PromptTemplate) -> Section:
    parts = [best.system, "", f"user_template: {best.user_template}"]
    if best.few_shot_examples:
        parts.append(f"few-shot examples: {len(best.few_shot_examples)}")
        for i, ex in enumerate(best.few_shot_examples, start=1):
            tools = f" (+{len(ex.messages)} tool messages)" if ex.messages else ""
            parts.append(f"  {i}. {ex.input!r} -> {ex.output!r}{tools}")
    return Section("Best prompt", text="\n".join(parts), kind="text")


def _front(result: OptimizationResult) -> Section:
    """The Pareto front over the run's objectives: one row per candidate on it, and who is best at what."""
    front = result.front
    best = {cid: [name for name, b in front.best.items() if b == cid] for cid in front.front}
    rows = tuple((cid, *(_num(front.points[cid][name]) for name in front.objectives), ", ".join(best[cid]))
                 for cid in front.front)
    return Section(f"Pareto front over {', '.join(front.objectives)} ({len(front.front)} of {len(front.points)} "
                   "candidates)", ("candidate", *front.objectives, "best at"), rows)


def build_report(result: OptimizationResult, *, top: int = 5) -> list[Section]:
    sections = [_summary(result), _history(result), _usage(result)]
    if result.candidates:
        sections.append(_candidates(result, top))
    if result.front is not None:
        sections.append(_front(result))
    sections.append(_best_prompt(result.best_template))
    diff = prompt_diff(result.initial_template, result.best_template)
    sections.append(Section("Diff: initial -> best system prompt",
                            text=diff or "(the best system prompt is the initial one)", kind="diff"))
    return sections


def render_report(sections: Sequence[Section], stream: TextIO, *, rich: bool) -> None:
    if rich:
        _render_rich(sections, stream)
    else:
        _render_plain(sections, stream)


def _render_plain(sections: Sequence[Section], out: TextIO) -> None:
    for section in sections:
        print(f"== {section.title} ==", file=out)
        if section.kind != "table":
            print(section.text, file=out)
        else:
            _plain_table(section, out)
        print(file=out)


def _plain_table(section: Section, out: TextIO) -> None:
    rows = [section.headers, *section.rows] if any(section.headers) else list(section.rows)
    if not rows:
        print("(none)", file=out)
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out)


def _render_rich(sections: Sequence[Section], out: TextIO) -> None:
    from rich.console import Console
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out)
    for section in sections:
        if section.kind == "diff":
            console.print(Panel(Syntax(section.text, "diff", word_wrap=True), title=section.title))
        elif section.kind == "text":
            console.print(Panel(Text(section.text), title=section.title))  # prompts may hold [markup]
        else:
            show_header = any(section.headers)
            table = Table(title=section.title, show_header=show_header, title_justify="left")
            for header in section.headers:
                table.add_column(header)
            for row in section.rows:
                table.add_row(*(Text(cell) for cell in row))
            console.print(table)
