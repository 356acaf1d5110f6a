"""The multi-objective variant of the rollouts front door (issue 14: "the benchmark reports the front's shortest
prompt within 1 pt of the best").

`run_gepa+length` is run_gepa given what `run_gepa` gets (the training rows, the budget, the concurrency, the seed)
plus `objectives=("prompt_length",)`, nothing else. From the result's `front` (an `ObjectiveFront`: every compared
candidate's score on the rows candidates were compared on, its prompt length in characters, and the Pareto front)
it records two candidates and hands both to the worker to score on the held-out rows, exactly as the final prompt
is scored: the best-score candidate and the shortest prompt on the front whose compared score is within 1 pt
(0.01) of the best. It runs only in the suite that names it (`every_suite=False`), not in the issue's grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import Contender, ContenderResult, RunContext
from .ours import rollouts_gepa, template_spec

__all__ = ["CONTENDERS", "NAME", "TOLERANCE", "front_summary", "shortest_within"]

NAME = "run_gepa+length"
OBJECTIVES = ("prompt_length",)
TOLERANCE = 0.01
"""1 pt: scores are fractions of the compared rows."""
_EPS = 1e-9  # a score exactly 1 pt below the best is within it although 0.13 - 0.01 > 0.12 in floats


def shortest_within(front: Mapping[str, Any], tolerance: float = TOLERANCE) -> str | None:
    """The id of the shortest prompt on the front whose score is within `tolerance` of the best score (ties on
    length: the higher score, then the earlier candidate); None when the front is empty. `front` is an
    `ObjectiveFront.to_dict()`. The best score is the front's highest: no candidate off the front scores more."""
    points = front.get("points") or {}
    ids = [cid for cid in front.get("front") or () if cid in points]
    if not ids:
        return None
    top = max(points[cid]["score"] for cid in ids)
    near = [cid for cid in ids if points[cid]["score"] >= top - tolerance - _EPS]
    return min(near, key=lambda cid: (points[cid]["prompt_length"], -points[cid]["score"]))


def front_summary(front: Mapping[str, Any], chosen_id: str, compared_rows: int) -> dict[str, Any]:
    """What the report needs from one run's front: the best-score candidate and the pick (id, compared score,
    prompt length), every point of the front, how many rows the scores are means over (one row is 1/n: on
    fewer than 100 rows "within 1 pt" can only be a tie), and the id the result chose as its best_template
    (`chosen_id`; it can differ from the best compared score when the engine validates on held-back rows)."""
    points = front.get("points") or {}
    best, pick = (front.get("best") or {}).get("score"), shortest_within(front)
    if best is None or pick is None:
        return {"unknown": "the result's front compared no candidate"}

    def described(cid: str) -> dict[str, Any]:
        return {"id": cid, "score": points[cid]["score"], "prompt_length": points[cid]["prompt_length"]}

    return {"objectives": list(front.get("objectives") or ()), "compared": len(points),
            "front_size": len(front.get("front") or ()), "compared_rows": compared_rows, "tolerance": TOLERANCE,
            "front": [described(cid) for cid in front.get("front") or () if cid in points],
            "best": described(best), "shortest_within": described(pick), "chosen_id": chosen_id}


def run_run_gepa_length(ctx: RunContext) -> ContenderResult:
    result, out = rollouts_gepa(ctx, objectives=OBJECTIVES)
    if result.front is None:
        out.extra["front"] = {"unknown": "run_gepa returned no front although objectives were given"}
        return out
    summary = front_summary(result.front.to_dict(), result.best_candidate_id, len(result.compared_on))
    out.extra["front"] = summary
    if "unknown" not in summary:
        templates = {t.id: t for t in result.final_population}
        out.also_score = {"best": template_spec(templates[summary["best"]["id"]]),
                          "shortest_within": template_spec(templates[summary["shortest_within"]["id"]])}
    return out


CONTENDERS = [
    Contender(NAME, "gepa", True, "messages", run_run_gepa_length, every_suite=False, like="run_gepa",
              validation="as run_gepa, plus objectives=('prompt_length',): the result holds the Pareto front of "
                         "score vs prompt length on the rows candidates were compared on"),
]
