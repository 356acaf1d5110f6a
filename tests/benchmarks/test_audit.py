"""The scripted world is fair to every optimizer: the same failures (or labeled examples) shown through each
optimizer's own request-building code are all found by the scripted reflection model, and the task model reads an
instruction the same way as a rollouts system prompt and as a DSPy program's instructions. A change to
`rollouts_dspy.testing` that made the fake favour one request format fails here."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_every_request_format_shows_the_model_the_same_evidence(banking77_dir):
    pytest.importorskip("gepa")
    from benchmarks.audit import FAILURES_K, audit

    data = audit("banking77-20", seed=0, trials=2)
    rows = {(r["request"], r["shown"]): r for r in data["rows"]}
    for k in FAILURES_K:
        found = {name: r["evidence"] for (name, shown), r in rows.items() if shown == k and name.startswith("failures")}
        assert len(found) == 3 and set(found.values()) == {float(k)}, found
    mipro = {name: r["evidence"] for (name, _), r in rows.items() if name.startswith("labeled demos")}
    assert len(mipro) == 2 and len(set(mipro.values())) == 1 and next(iter(mipro.values())) > 0, mipro
    for r in data["rows"]:
        assert r["produced"] == r["trials"], r
        assert r["heldout_system"] == r["heldout_dspy"], r  # the task model reads both prompt formats alike
