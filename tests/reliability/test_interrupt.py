"""Ctrl-C on the CLI in the middle of a run: it stops within seconds, saves the checkpoint and the best prompt so
far and says how to resume (also the CLI's secrets check: the API key is in the environment and the provider is
flaky; no output or file shows the key). A cancelled Python run saves every finished rollout."""

from __future__ import annotations

import json
import signal
import time

import pytest
from reliability_helpers import FAKE_KEY, REPO, popen
from test_outage import write_cli_config
from test_secrets import files_with_key, leaks

from rollouts_dspy.io import load_template
from rollouts_dspy.testing import FaultConfig, ScriptedServer

LONG = {"gepa": {"generations": 5}, "mipro": {"num_trials": 10}}


def steps_done(method: str, state_dir) -> int:
    if method == "mipro":
        from reliability_helpers import journal_steps

        return journal_steps(state_dir / "journal.jsonl")
    try:
        data = json.loads((state_dir / "gepa_state.json").read_text())
    except (OSError, ValueError):
        return 0
    return data["state"]["generation"]


@pytest.mark.parametrize("method", ["gepa", "mipro"])
def test_ctrl_c_stops_within_seconds_and_saves_what_was_found(method, tmp_path):
    out_dir = tmp_path / "out"
    # A flaky provider, and the key in the environment: the interrupted run shows it nowhere.
    faults = FaultConfig(rate=0.1, seed=8, timeout_seconds=1.0)
    with ScriptedServer(latency=0.05, faults=faults) as slow:
        config = write_cli_config(tmp_path, slow.base_url, method, **LONG[method])
        args = ["-m", "rollouts_dspy.cli", "optimize", "--method", method, "--config", config, "--out",
                str(out_dir), "--progress", "lines"]
        proc = popen(args, cwd=REPO, OPENAI_API_KEY=FAKE_KEY)
        deadline = time.monotonic() + 60
        while steps_done(method, out_dir / "checkpoint") < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        lines, stopped = [], None
        for line in proc.stderr:  # read as it comes: when did the run say it stopped and saved?
            lines.append(line)
            if "resume with:" in line and stopped is None:
                stopped = time.monotonic() - sent
        proc.wait(timeout=30)
        exited = time.monotonic() - sent
        out, err = proc.stdout.read(), "".join(lines)
        # Stopped and saved within seconds; the interpreter's own teardown (litellm, optuna, pydantic) on a
        # loaded 2-core CI machine gets a looser bound.
        assert stopped is not None and stopped < 6, (stopped, err)
        assert exited < 20, exited
        assert proc.returncode == 130, (out, err)
        assert "Traceback" not in err, err
        assert "resume with:" in err and "--resume" in err, err
        assert steps_done(method, out_dir / "checkpoint") >= 1
        best = load_template(out_dir / "best.json")  # the best prompt so far, readable
        assert best.score is not None and best.user_template

    # (`--resume` itself is tests/cli's; resuming exactly is pinned by the SIGKILL and cancel tests.)
    assert not leaks(out + err) and not files_with_key(tmp_path)


@pytest.mark.parametrize("method", ["gepa", "mipro"])
async def test_cancelling_a_python_run_saves_every_finished_rollout(method, tmp_path):
    """Ctrl-C inside `asyncio.run(run_gepa(...))` cancels the run's task: it stops at once, the checkpoint holds
    every rollout that finished, and the resumed run does exactly the rest of the work."""
    import asyncio

    from reliability_helpers import LONGER, checkpoint_rollouts, config_for, run, task_requests

    from rollouts_dspy.prompt_optimization.events import StepFinished

    with ScriptedServer() as clean:
        full = await run(method, clean, config_for(method, None, **LONGER[method]))
        uninterrupted = task_requests(clean)
    cfg = config_for(method, tmp_path, **LONGER[method])
    with ScriptedServer(latency=0.02) as slow:
        first_step = asyncio.Event()
        job = asyncio.create_task(run(method, slow, cfg, reporter=lambda e: isinstance(e, StepFinished)
                                      and first_step.set()))
        await asyncio.wait_for(first_step.wait(), 60)
        mark = task_requests(slow)
        while task_requests(slow) < mark + 5 and not job.done():
            await asyncio.sleep(0.005)
        job.cancel()
        started = asyncio.get_running_loop().time()
        with pytest.raises(asyncio.CancelledError):
            await job
        assert asyncio.get_running_loop().time() - started < 2
        interrupted = task_requests(slow)
        saved = len([r for r in checkpoint_rollouts(method, tmp_path) if r["score"] is not None or r["error"]])
        slow.reset_stats()
        resumed = await run(method, slow, cfg)
        rest = task_requests(slow)
    assert resumed.best_template.system == full.best_template.system
    assert [(c.id, c.train_scores, c.val_scores) for c in resumed.candidates] == \
        [(c.id, c.train_scores, c.val_scores) for c in full.candidates]
    assert rest == uninterrupted - saved
    assert interrupted - saved <= LONGER[method]["max_concurrent"]
