"""The journal checkpoint: constant-cost appends, a resumed runtime that remembers everything paid, damage."""

from __future__ import annotations

import asyncio

import pytest

from rollouts_dspy.dtypes import Message
from rollouts_dspy.errors import CheckpointError
from rollouts_dspy.prompt_optimization.types import Candidate
from rollouts_dspy.runtime import JOURNAL_FILE, Budget, Runtime

from .fakes import FakeModel, FakeTask

WORDS = [f"w{i}" for i in range(30)]


def _open(tmp_path, **kw) -> Runtime:
    return Runtime(method="gepa", budget=Budget(**kw), max_concurrent=4, checkpoint_dir=str(tmp_path),
                   fingerprint={"dataset": "abc"})


async def _spend(rt: Runtime, task: FakeTask, model_answer: str = "```\nnew instructions here\n```") -> None:
    ev = rt.evaluator(task)
    await ev.evaluate(Candidate({"system": "w1"}), range(10))
    await rt.model(FakeModel(model_answer), "reflection").complete([Message("user", "reflect")])
    rt.step(1)


async def test_a_resumed_runtime_keeps_every_paid_rollout_answer_dollar_and_the_elapsed_time(tmp_path):
    # Defect 3: resume forgot the unfinished generation's dollars, tokens and failed rollouts; the usage table
    # counted only the resumed process and elapsed restarted at 0.
    rt = _open(tmp_path)
    task = FakeTask(WORDS, fail={9: "RateLimitError"})
    await _spend(rt, task)
    await rt.evaluator(task).evaluate(Candidate({"system": "w2"}), range(10, 15))  # after the last step marker
    before = rt.usage()
    await asyncio.sleep(0.05)  # the first process ran at least this long
    rt.close()  # e.g. Ctrl-C

    again = _open(tmp_path)
    task2 = FakeTask(WORDS)
    ev = again.evaluator(task2)
    cached = await ev.evaluate(Candidate({"system": "w1"}), range(9))
    assert len(cached) == 9 and task2.runs == []  # served from the journal, nothing paid again
    assert again.usage() == before
    assert again.rollouts_used == 15
    assert again.ledger.cost_usd == pytest.approx(rt.ledger.cost_usd)
    assert again.meter.elapsed >= 0.05  # elapsed continues from the first process, it does not restart at 0
    model = again.model(FakeModel("different"), "reflection")
    assert (await model.complete([Message("user", "reflect")]))[0] == "```\nnew instructions here\n```"


async def test_the_failed_pair_is_tried_again_after_a_resume(tmp_path):
    rt = _open(tmp_path)
    await _spend(rt, FakeTask(WORDS, fail={9: "RateLimitError"}))
    rt.close()
    again = _open(tmp_path)
    task = FakeTask(WORDS)
    out = await again.evaluator(task).evaluate(Candidate({"system": "w1"}), range(10))
    assert task.runs == [(Candidate({"system": "w1"}).key, 9)] and out[9].score == 0.0


async def test_a_torn_last_line_is_dropped_and_appending_goes_on(tmp_path):
    rt = _open(tmp_path)
    await _spend(rt, FakeTask(WORDS))
    rt.close()
    path = tmp_path / JOURNAL_FILE
    path.write_bytes(path.read_bytes() + b'{"t":"r","k":"abc","r":{"sample_in')  # killed mid-write
    again = _open(tmp_path)
    assert len(again.cache) == 10
    await again.evaluator(FakeTask(WORDS)).evaluate(Candidate({"system": "w3"}), [0])
    again.close()
    assert len(_open(tmp_path).cache) == 11


def test_a_journal_of_other_settings_or_damaged_in_the_middle_is_refused(tmp_path):
    _open(tmp_path).close()
    with pytest.raises(CheckpointError, match="dataset differ"):
        Runtime(method="gepa", budget=Budget(), max_concurrent=1, checkpoint_dir=str(tmp_path),
                fingerprint={"dataset": "other"})
    with pytest.raises(CheckpointError, match="belongs to a gepa run"):
        Runtime(method="mipro", budget=Budget(), max_concurrent=1, checkpoint_dir=str(tmp_path),
                fingerprint={"dataset": "abc"})
    path = tmp_path / JOURNAL_FILE
    path.write_text(path.read_text() + "not json\n" + '{"t":"admit","n":1}\n')
    with pytest.raises(CheckpointError, match="damaged at line"):
        _open(tmp_path)


async def test_appending_costs_the_same_late_in_a_long_run(tmp_path):
    # Defect 4: checkpoints rewrote the whole state per rollout. The journal only appends: the bytes written per
    # rollout do not grow with the run.
    rt = _open(tmp_path)
    ev = rt.evaluator(FakeTask([f"w{i}" for i in range(2000)]))
    path = tmp_path / JOURNAL_FILE
    sizes = []
    for n in range(4):
        start = path.stat().st_size
        await ev.evaluate(Candidate({"system": f"p{n}"}), range(500))
        sizes.append(path.stat().st_size - start)
    assert max(sizes) - min(sizes) < 0.05 * min(sizes)
