"""Resuming run_mipro from its journal (real HTTP on the scripted server): nothing paid twice, the same result, a
journal of another world refused, and the best so far of an interrupted run read from the engine's own markers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rollouts_dspy.errors import CheckpointError
from rollouts_dspy.partial import best_so_far
from rollouts_dspy.prompt_optimization.events import StepFinished
from rollouts_dspy.runtime import JOURNAL_FILE, read_journal

from .worlds import ROWS, WEAK_INTENT, mipro_config, run_world


async def test_resume_from_the_journal_repeats_no_finished_trial(server, tmp_path):
    ckpt = str(tmp_path / "ckpt")
    first = await run_world(server, mipro_config(num_trials=3, checkpoint_dir=ckpt))
    second = await run_world(server, mipro_config(num_trials=6, checkpoint_dir=ckpt))
    assert [h.mean_score for h in second.history[:3]] == [h.mean_score for h in first.history]
    assert len(second.history) == 6
    server.reset_stats()
    third = await run_world(server, mipro_config(num_trials=6, checkpoint_dir=ckpt))
    assert server.stats().requests_total == 0  # every trial, proposal and validation came from the journal
    assert third.best_template.system == second.best_template.system
    assert third.usage == second.usage  # the usage table counts every process of the run, once


async def test_resuming_against_another_dataset_or_model_is_refused(server, tmp_path):
    # Defect 8: MIPRO's resume fingerprint had no dataset hash and no model identity, so a study of one dataset
    # was resumed against another and its cached rollouts reused as if they were measured on it.
    ckpt = str(tmp_path / "ckpt")
    config = mipro_config(num_trials=2, checkpoint_dir=ckpt)
    await run_world(server, config)
    other = [dict(r) for r in ROWS]
    other[5]["intent"] = "card_arrival" if other[5]["intent"] != "card_arrival" else "lost_card"
    server.reset_stats()
    with pytest.raises(CheckpointError, match="dataset differ"):
        await run_world(server, config, rows=other)
    with pytest.raises(CheckpointError, match="optimizer_endpoint differ"):
        await run_world(server, config, proposer_model="scripted-task")
    assert server.stats().requests_total == 0  # refused before any call


class _Stop(Exception):
    """Stands in for Ctrl-C: raised from the reporter, it ends the run mid-search."""


async def test_the_best_so_far_is_the_engines_own_choice(server, tmp_path):
    # partial.py (the CLI's answer to Ctrl-C) re-implemented the engine's choice; now it reads the engine's marker.
    done = tmp_path / "done"
    result = await run_world(server, mipro_config(num_trials=4, checkpoint_dir=str(done)))
    best = best_so_far("mipro", done, WEAK_INTENT)
    assert (best.id, best.system, best.score) == (result.best_candidate_id, result.best_template.system,
                                                  result.best_template.score)

    cut = tmp_path / "cut"
    seen: list[StepFinished] = []

    def stop_after_two(event) -> None:
        if isinstance(event, StepFinished):
            seen.append(event)
            if len(seen) == 2:
                raise _Stop

    with pytest.raises(_Stop):
        await run_world(server, mipro_config(num_trials=6, checkpoint_dir=str(cut)), reporter=stop_after_two)
    marker = read_journal(cut / JOURNAL_FILE, method="mipro", fingerprint=None).best
    interrupted = best_so_far("mipro", cut, WEAK_INTENT)
    assert interrupted.id == marker["id"] and interrupted.score == marker["score"]
    assert marker["scored_on"] == "minibatch" and marker["score"] == max(s.stats.best_score for s in seen)


def test_importing_the_engine_loads_no_llm_library():
    code = ("import sys\n"
            "import rollouts_dspy.prompt_optimization.mipro as m\n"
            "from rollouts_dspy.prompt_optimization.mipro import engine, runner, optimize_mipro, MIPROConfig\n"
            "loaded = [n for n in sys.modules if n.startswith('litellm') or n == 'rollouts_dspy.llm']\n"
            "assert not loaded, loaded\n"
            "m.run_mipro\n"
            "assert 'rollouts_dspy.llm' in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
