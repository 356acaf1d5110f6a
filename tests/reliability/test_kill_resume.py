"""SIGKILL in the middle of a generation (GEPA) or a batch of trials (MIPRO), then resume in a new process: the
resumed run re-runs nothing the checkpoint holds, loses at most the work in flight when it was killed, and ends
exactly where an uninterrupted run ends. Checkpoints are written atomically; a damaged one is a clear
CheckpointError (and a one-line message from the CLI), never a traceback."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from reliability_helpers import (
    LONGER,
    REPO,
    checkpoint_rollouts,
    config_for,
    journal_steps,
    popen,
    run,
    task_requests,
    write_script,
)

from rollouts_dspy.errors import CheckpointError
from rollouts_dspy.io import load_result
from rollouts_dspy.testing import ScriptedServer

METHODS = ["gepa", "mipro"]

RUNNER = """
import asyncio, sys, types
from pathlib import Path
from reliability_helpers import LONGER, config_for, run
from rollouts_dspy.io import save_result

method, directory, base_url = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
server = types.SimpleNamespace(base_url=base_url)
result = asyncio.run(run(method, server, config_for(method, directory, **LONGER[method])))
save_result(result, directory / "result.json")
print("done", flush=True)
"""


def checkpoint_path(method: str, directory: Path) -> Path:
    return directory / "ckpt" / ("gepa_state.json" if method == "gepa" else "journal.jsonl")


def steps_done(method: str, directory: Path) -> int:
    """Finished generations (GEPA) or trials (MIPRO) in the checkpoint; 0 while none can be read."""
    if method == "mipro":
        return journal_steps(checkpoint_path(method, directory))
    try:
        data = json.loads(checkpoint_path(method, directory).read_text())
    except (OSError, ValueError):
        return 0
    return data["state"]["generation"]


def comparable(result) -> tuple:
    return (result.best_template.system, result.best_template.few_shot_examples, result.best_template.score,
            [(c.id, c.train_scores, c.val_scores) for c in result.candidates])


@pytest.mark.parametrize("method", METHODS)
async def test_sigkill_mid_run_then_resume_loses_and_reruns_nothing(method, tmp_path):
    script = write_script(tmp_path / "runner.py", RUNNER)
    with ScriptedServer() as clean:
        full = await run(method, clean, config_for(method, None, **LONGER[method]))
        uninterrupted = task_requests(clean)

    work = tmp_path / "run"
    work.mkdir()
    with ScriptedServer(latency=0.05) as slow:
        proc = popen([str(script), method, str(work), slow.base_url], cwd=tmp_path)
        deadline = time.monotonic() + 60
        while steps_done(method, work) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        # Now in the middle of the next generation / batch: let some of its rollouts finish, then kill.
        mark = task_requests(slow)
        while task_requests(slow) < mark + 6 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)
        in_flight = slow.stats().in_flight
        proc.wait(timeout=10)
        killed = task_requests(slow)
        saved = len([r for r in checkpoint_rollouts(method, work) if r["score"] is not None or r["error"]])
        assert steps_done(method, work) >= 1

        slow.reset_stats()
        proc = popen([str(script), method, str(work), slow.base_url], cwd=tmp_path)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        resumed_requests = task_requests(slow)

    resumed = load_result(work / "result.json")
    assert comparable(resumed) == comparable(full)
    # rollouts_used counts what the provider was asked for: the uninterrupted run's, plus (MIPRO's journal) the
    # calls that were in flight at the kill and were paid for a second time.
    extra = resumed.rollouts_used - full.rollouts_used
    assert extra == 0 if method == "gepa" else 0 <= extra <= LONGER[method]["max_concurrent"], extra
    # Nothing the checkpoint holds is run again, and the resumed run does exactly the rest of the work.
    assert resumed_requests == uninterrupted - saved, (resumed_requests, uninterrupted, saved)
    # Lost to the kill: only calls that were still in flight (a finished rollout is in the checkpoint); the
    # server saw `in_flight` of them at the kill, and never more than max_concurrent can be.
    lost = killed - saved
    assert lost <= LONGER[method]["max_concurrent"], (killed, saved, in_flight)


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    """A crash in the middle of writing leaves the previous checkpoint intact and no stray temp file."""
    from rollouts_dspy.prompt_optimization import checkpoint

    target = tmp_path / "state.json"
    checkpoint.write_json_atomic(target, {"kind": "k", "version": 1, "n": 1})

    def crash(*_a, **_k):
        raise KeyboardInterrupt  # e.g. Ctrl-C between writing and renaming

    monkeypatch.setattr(checkpoint.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.write_json_atomic(target, {"kind": "k", "version": 1, "n": 2, "big": "x" * 100_000})
    assert json.loads(target.read_text())["n"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def damage(path: Path, how: str) -> None:
    """Damage a JSON state (GEPA) or a JSON-lines journal (MIPRO: its header line is the part that is damaged)."""
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    journal = path.suffix == ".jsonl"
    if how == "truncated":
        path.write_bytes(lines[0][: len(lines[0]) // 2] if journal else raw[: len(raw) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "binary":
        path.write_bytes(b"\x00\xff\xfe garbage")
    elif how == "wrong_kind":
        path.write_text(json.dumps({"kind": "something-else", "version": 1}))
    elif how == "newer":
        data = json.loads(lines[0] if journal else raw)
        data["version"] = 99
        path.write_bytes(b"\n".join([json.dumps(data).encode(), *lines[1:]]) if journal else json.dumps(data).encode())
    elif how == "not_an_object":
        path.write_text("[1, 2, 3]")
    elif how == "missing_fields":
        if journal:  # a rollout record without its candidate key, in the middle of the journal
            k = next(n for n, line in enumerate(lines) if b'"t":"r"' in line)
            record = json.loads(lines[k])
            record.pop("k")
            lines[k] = json.dumps(record).encode()
            path.write_bytes(b"\n".join(lines))
        else:
            data = json.loads(raw)
            data["state"].pop("entries")
            path.write_text(json.dumps(data))


DAMAGE = ["truncated", "empty", "binary", "wrong_kind", "newer", "not_an_object", "missing_fields"]


@pytest.fixture(scope="module")
def finished_checkpoints(tmp_path_factory):
    """One small finished run per method, with its checkpoint (copied per test before damaging it)."""
    import asyncio

    root = tmp_path_factory.mktemp("finished")
    with ScriptedServer() as clean:
        for method in METHODS:
            (root / method).mkdir()
            cfg = config_for(method, root / method, **({"generations": 2} if method == "gepa" else {"num_trials": 2}))
            asyncio.run(run(method, clean, cfg))
    return root


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("method", METHODS)
async def test_a_damaged_checkpoint_is_a_clear_error(method, how, finished_checkpoints, tmp_path):
    import shutil

    shutil.copytree(finished_checkpoints / method, tmp_path, dirs_exist_ok=True)
    path = checkpoint_path(method, tmp_path)
    damage(path, how)
    with ScriptedServer() as clean:
        cfg = config_for(method, tmp_path, **({"generations": 2} if method == "gepa" else {"num_trials": 2}))
        if method == "mipro" and how == "empty":  # an empty journal is a run that never started: it starts over
            result = await run(method, clean, cfg)
            assert result.history and clean.stats().requests_total > 0
            return
        with pytest.raises(CheckpointError) as caught:
            await run(method, clean, cfg)
        assert clean.stats().requests_total == 0  # refused before any LLM call
    message = str(caught.value)
    assert str(path) in message, message
    assert len(message) < 600 and "Traceback" not in message


@pytest.mark.parametrize("method", METHODS)
def test_the_cli_reports_a_damaged_checkpoint_in_one_line(method, tmp_path):
    from test_outage import write_cli_config

    config = write_cli_config(tmp_path, "http://127.0.0.1:9/v1", method)
    out_dir = tmp_path / "out"
    name = "gepa_state.json" if method == "gepa" else "journal.jsonl"
    state = out_dir / "checkpoint" / name
    state.parent.mkdir(parents=True)
    state.write_text('{"kind": "rollouts-dspy/gepa-state", "version": 1, "fingerprint": {"popul')  # cut short
    proc = popen(["-m", "rollouts_dspy.cli", "optimize", "--method", method, "--config", config, "--out",
                  str(out_dir), "--quiet", "--resume"], cwd=REPO, OPENAI_API_KEY="sk-test")
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 2, (out, err)
    assert "Traceback" not in err and ("corrupted" in err or "damaged" in err) and str(state) in err, err
