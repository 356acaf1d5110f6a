"""Dependent rounds of LLM requests: the critical path of a run, measured at the server.

depth(request) = 1 + the largest depth among the requests that had finished before it started (0 when none had).
The run's `rounds` is the largest depth. A request launched because another one's answer was needed (a reflection
after the minibatch it reflects on, a child's evaluation after the reflection that wrote it) or because a
concurrency slot freed up starts after that request finished, so `rounds` counts both the search's data
dependencies and the queueing behind the concurrency limit -- exactly the waits that make wall time grow with
latency: at a latency L per call, wall time is about rounds x L plus the optimizer's own CPU time. That is how the
latency table projects wall time to latencies the harness did not run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["rounds"]


def rounds(spans: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """`spans` are (start, end) times of every request. Returns {"rounds": max depth, "requests": n}."""
    if not spans:
        return {"rounds": 0, "requests": 0}
    by_start = sorted(range(len(spans)), key=lambda i: spans[i][0])
    by_end = sorted(range(len(spans)), key=lambda i: spans[i][1])
    depth = [0] * len(spans)
    finished_max, j = 0, 0
    # A request's end is stamped after its answer was written, so on a loaded machine the next request of the
    # same chain can be stamped as starting a few milliseconds before it: a tenth of the typical request's
    # duration absorbs that (requests sent together still start a whole duration before any of them ends).
    durations = sorted(end - begin for begin, end in spans)
    slack = 0.1 * durations[len(durations) // 2]
    for i in by_start:
        start = spans[i][0] + slack
        # every request that ended before this one started is a possible predecessor; each of them started
        # earlier still, so its depth is already known
        while j < len(by_end) and spans[by_end[j]][1] < start:
            finished_max = max(finished_max, depth[by_end[j]])
            j += 1
        depth[i] = finished_max + 1
    return {"rounds": max(depth), "requests": len(spans)}
