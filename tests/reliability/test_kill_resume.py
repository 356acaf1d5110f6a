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
    journal_records,
    popen,
    run,
    steps_done,
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
    return directory / "ckpt" / "journal.jsonl"


def admitted(directory: Path) -> int:
    """Rollouts the journal says were sent (admitted), finished or not."""
    return sum(r["n"] for p in directory.rglob("journal.jsonl") for r in journal_records(p) if r.get("t") == "admit")


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
        while steps_done(work) < 1 and proc.poll() is None and time.monotonic() < deadline:
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
        sent = admitted(work)
        assert steps_done(work) >= 1

        slow.reset_stats()
        proc = popen([str(script), method, str(work), slow.base_url], cwd=tmp_path)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        resumed_requests = task_requests(slow)

    resumed = load_result(work / "result.json")
    assert comparable(resumed) == comparable(full)
    # The calls lost in flight at the kill were sent (the journal admitted them before they started): they count.
    assert resumed.rollouts_used == full.rollouts_used + (sent - saved)
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
    if path.suffix == ".jsonl":
        damage_journal(path, how)
        return
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "binary":
        path.write_bytes(b"\x00\xff\xfe garbage")
    elif how == "wrong_kind":
        path.write_text(json.dumps({"kind": "something-else", "version": 1}))
    elif how == "newer":
        data = json.loads(raw)
        data["version"] = 99
        path.write_text(json.dumps(data))
    elif how == "not_an_object":
        path.write_text("[1, 2, 3]")
    elif how == "missing_fields":
        data = json.loads(raw)
        (data["state"] if "state" in data else data).pop("trials" if "trials" in data else "entries")
        path.write_text(json.dumps(data))


def damage_journal(path: Path, how: str) -> None:
    lines = path.read_bytes().split(b"\n")
    header = json.loads(lines[0])
    if how == "truncated":  # a line in the middle cut short (a torn LAST line is a kill, and is tolerated)
        lines[2] = lines[2][: len(lines[2]) // 2]
    elif how == "empty":
        lines[0] = b""
    elif how == "binary":
        lines[0] = b"\x00\xff\xfe garbage"
    elif how == "wrong_kind":
        lines[0] = json.dumps({**header, "kind": "something-else"}).encode()
    elif how == "newer":
        lines[0] = json.dumps({**header, "version": 99}).encode()
    elif how == "not_an_object":
        lines[1] = b"[1, 2, 3]"
    elif how == "missing_fields":
        record = json.loads(lines[2])
        record.pop("r", None) or record.pop("n", None) or record.pop("d", None)
        lines[2] = json.dumps(record).encode()
    path.write_bytes(b"\n".join(lines))


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
    state = out_dir / "checkpoint" / "journal.jsonl"
    state.parent.mkdir(parents=True)
    state.write_text('{"kind": "rollouts-dspy/journal", "version": 1, "fingerprint": {"popul')  # cut short
    proc = popen(["-m", "rollouts_dspy.cli", "optimize", "--method", method, "--config", config, "--out",
                  str(out_dir), "--quiet", "--resume"], cwd=REPO, OPENAI_API_KEY="sk-test")
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 2, (out, err)
    assert "Traceback" not in err and ("corrupted" in err or "damaged" in err) and str(state) in err, err
