"""Ctrl-C on the CLI in the middle of a run: it stops at once (no provider call after the signal beyond the ones
already in flight), saves the checkpoint and the best prompt so far and says how to resume (also the CLI's secrets
check: the API key is in the environment and the provider is flaky; no output or file shows the key). A cancelled
Python run makes no call after the cancellation and saves every finished rollout."""

from __future__ import annotations

import signal
import time

import pytest
from reliability_helpers import FAKE_KEY, REPO, popen, steps_done
from test_outage import write_cli_config
from test_secrets import files_with_key, leaks

from rollouts_dspy.io import load_template
from rollouts_dspy.testing import FaultConfig, ScriptedServer

LONG = {"gepa": {"generations": 5}, "mipro": {"num_trials": 10}}


@pytest.mark.parametrize("method", ["gepa", "mipro"])
def test_ctrl_c_stops_at_once_and_saves_what_was_found(method, tmp_path):
    out_dir = tmp_path / "out"
    # A flaky provider, and the key in the environment: the interrupted run shows it nowhere.
    faults = FaultConfig(rate=0.1, seed=8, timeout_seconds=1.0)
    with ScriptedServer(latency=0.05, faults=faults) as slow:
        config = write_cli_config(tmp_path, slow.base_url, method, **LONG[method])
        args = ["-m", "rollouts_dspy.cli", "optimize", "--method", method, "--config", config, "--out",
                str(out_dir), "--progress", "lines"]
        proc = popen(args, cwd=REPO, OPENAI_API_KEY=FAKE_KEY)
        deadline = time.monotonic() + 60
        while steps_done(out_dir / "checkpoint") < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        at_signal = slow.stats().requests_total
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)  # a guard against a hang, not a speed verdict
        after_exit = slow.stats().requests_total
        # Stopped at once: the only provider calls after the signal are ones already on their way (at most
        # max_concurrent, 10 here); a run that went on would make the remaining steps' hundreds of calls.
        assert after_exit - at_signal <= 10, (at_signal, after_exit)
        assert proc.returncode == 130, (out, err)
        assert "Traceback" not in err, err
        assert "resume with:" in err and "--resume" in err, err
        assert steps_done(out_dir / "checkpoint") >= 1
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

    # No faults here: a generous timeout, so a loaded machine never turns a slow answer into a retried request
    # (requests are what this test counts).
    patient = {"timeout": 10.0}
    with ScriptedServer() as clean:
        full = await run(method, clean, config_for(method, None, **LONGER[method]), endpoint_overrides=patient)
        uninterrupted = task_requests(clean)
    cfg = config_for(method, tmp_path, **LONGER[method])
    with ScriptedServer(latency=0.02) as slow:
        first_step = asyncio.Event()
        job = asyncio.create_task(run(method, slow, cfg, endpoint_overrides=patient,
                                      reporter=lambda e: isinstance(e, StepFinished) and first_step.set()))
        await asyncio.wait_for(first_step.wait(), 60)
        mark = task_requests(slow)
        while task_requests(slow) < mark + 5 and not job.done():
            await asyncio.sleep(0.005)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        interrupted = task_requests(slow)
        await asyncio.sleep(0.3)  # 15 latencies of the slow server: a call still going on would show up
        assert task_requests(slow) == interrupted, "no provider call after the run was cancelled"
        saved = len([r for r in checkpoint_rollouts(method, tmp_path) if r["score"] is not None or r["error"]])
        slow.reset_stats()
        resumed = await run(method, slow, cfg, endpoint_overrides=patient)
        rest = task_requests(slow)
    assert resumed.best_template.system == full.best_template.system
    assert [(c.id, c.train_scores, c.val_scores) for c in resumed.candidates] == \
        [(c.id, c.train_scores, c.val_scores) for c in full.candidates]
    assert rest == uninterrupted - saved
    assert interrupted - saved <= LONGER[method]["max_concurrent"]
