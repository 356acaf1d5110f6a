"""A provider that is down: the run stops with a clear error after bounded retries, its checkpoint written, instead
of marching on scoring zeros. The error reaches every front door: run_gepa/run_mipro, the DSPy teleprompters and
the CLI (a message, exit code 1, no traceback). Once the provider is back, the run resumes."""

from __future__ import annotations

import json

import pytest
from reliability_helpers import DATA, REPO, checkpoint_files, gepa_config, mipro_config, popen, run, task_requests

from rollouts_dspy.prompt_optimization.events import StepFinished
from rollouts_dspy.runtime import DEFAULT_OUTAGE_THRESHOLD, ProviderUnavailableError
from rollouts_dspy.testing import ScriptedServer
from tests.conftest import QUIET

METHODS = ["gepa", "mipro"]


def storage(method: str, tmp_path) -> dict:
    return {"checkpoint_dir": str(tmp_path / "ckpt")}


@pytest.mark.parametrize("method", METHODS)
async def test_a_provider_down_for_the_whole_run_stops_it_after_bounded_retries(method, tmp_path):
    cfg = (gepa_config(**storage(method, tmp_path)) if method == "gepa"
           else mipro_config(**storage(method, tmp_path)))
    with ScriptedServer(down=True) as down:
        with pytest.raises(ProviderUnavailableError) as caught:
            await run(method, down, cfg, endpoint_overrides={"max_retries": 2})
        requests = down.stats().requests_total
    error = caught.value
    # The user reads what happened, the provider's own words and what to do.
    assert "provider" in str(error) and "resume" in str(error)
    assert "scripted server is down" in error.last_error and error.last_error in str(error)
    assert error.failures >= DEFAULT_OUTAGE_THRESHOLD
    # Bounded retries: every failed rollout was tried 1 + max_retries = 3 times, and the run stopped after the
    # outage threshold of rollouts (plus the ones already in flight) instead of going on through the dataset.
    assert DEFAULT_OUTAGE_THRESHOLD * 3 <= requests <= (DEFAULT_OUTAGE_THRESHOLD + cfg.max_concurrent) * 3, requests
    assert checkpoint_files(tmp_path), "the checkpoint must be written before the error propagates"


@pytest.mark.parametrize("method", METHODS)
async def test_an_outage_mid_run_keeps_the_paid_work_and_the_run_resumes_after_it(method, tmp_path):
    cfg = (gepa_config(**storage(method, tmp_path)) if method == "gepa"
           else mipro_config(**storage(method, tmp_path)))
    with ScriptedServer() as flaky:
        def take_down_after_first_step(event) -> None:
            if isinstance(event, StepFinished):
                flaky.down = True

        with pytest.raises(ProviderUnavailableError):
            await run(method, flaky, cfg, reporter=take_down_after_first_step,
                      endpoint_overrides={"max_retries": 1})
        before = task_requests(flaky)
        flaky.down = False
        flaky.reset_stats()
        resumed = await run(method, flaky, cfg)
        after = task_requests(flaky)
    assert resumed.best_template.score is not None
    with ScriptedServer() as clean:
        fresh = await run(method, clean, (gepa_config() if method == "gepa" else mipro_config()))
        full = task_requests(clean)
    # The resumed run reuses what was measured before the outage: it needs fewer task calls than a fresh run,
    # and ends where an uninterrupted run ends.
    assert after < full, (before, after, full)
    assert resumed.best_template.system == fresh.best_template.system
    assert resumed.best_template.few_shot_examples == fresh.best_template.few_shot_examples


def test_the_teleprompters_surface_the_outage(tmp_path):
    dspy = pytest.importorskip("dspy")
    from rollouts_dspy.dspy_integration.data import rows_to_examples
    from rollouts_dspy.dspy_integration.gepa import RolloutsGEPA
    from rollouts_dspy.dspy_integration.mipro import RolloutsMIPRO

    examples = rows_to_examples(DATA, ["query"])
    with ScriptedServer(down=True) as down:
        lm = dspy.LM("openai/scripted-task", api_base=down.base_url, api_key="scripted", cache=False, num_retries=1)
        for make in (lambda: RolloutsGEPA(reflection_lm=lm, max_metric_calls=60, checkpoint_dir=str(tmp_path / "g")),
                     lambda: RolloutsMIPRO(prompt_model=lm, task_model=lm, auto=None, num_candidates=2,
                                           log_dir=str(tmp_path / "m"), config={"num_trials": 2})):
            down.reset_stats()
            with dspy.context(lm=lm), pytest.raises(ProviderUnavailableError):
                make().compile(dspy.Predict("query -> intent"), trainset=examples[:12], valset=examples[12:20])
            # Stopped after the outage threshold (plus the rollouts in flight, num_threads 8), each rollout tried
            # 1 + num_retries = 2 times: not a march through every example of every trial.
            assert down.stats().requests_total <= 2 * (DEFAULT_OUTAGE_THRESHOLD + 8), down.stats()
    assert checkpoint_files(tmp_path / "g") and checkpoint_files(tmp_path / "m")  # written before the error


def write_cli_config(tmp_path, base_url: str, method: str, **table: object) -> str:
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in DATA))
    settings = {"gepa": dict(population_size=4, generations=3, elite_size=1, minibatch_size=6, seed=1),
                "mipro": dict(num_candidates=3, num_trials=4, minibatch_size=6, num_demo_sets=3)}[method]
    settings.update(table)
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
    text = f"""
[template]
system = "Classify the query."
user_template = "Query: {{query}}"

[dataset]
path = "{data}"
inputs = ["query"]
label = "intent"
train = 0.4
val = 0.3
seed = 0

[scorer]
type = "exact_match"

[endpoint]
provider = "openai"
model = "scripted-task"
api_base = "{base_url}"
timeout = 0.5
max_retries = 1
retry_backoff = 0.01

[optimizer_endpoint]
provider = "openai"
model = "scripted-reflect"
api_base = "{base_url}"
timeout = 0.5
max_retries = 1
retry_backoff = 0.01

[{method}]
{lines}
"""
    path = tmp_path / "run.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("method", METHODS)
def test_the_cli_reports_the_outage_without_a_traceback_or_the_key(method, tmp_path):
    """The provider fails every call, quoting the key litellm read from OPENAI_API_KEY in its message: the CLI
    prints one clear error with the resume command (exit 1), keeps the checkpoint, and shows the key nowhere."""
    from reliability_helpers import FAKE_KEY
    from test_secrets import echoing_provider, files_with_key, leaks

    with echoing_provider(500) as down:
        config = write_cli_config(tmp_path, down.base_url, method)
        proc = popen(["-m", "rollouts_dspy.cli", "optimize", "--method", method, "--config", config,
                      "--out", str(tmp_path / "out"), "--progress", "lines"], cwd=REPO, OPENAI_API_KEY=FAKE_KEY)
        out, err = proc.communicate(timeout=90)
    assert proc.returncode == 1, (proc.returncode, out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    assert "provider" in err and "--resume" in err, err
    assert (tmp_path / "out" / "checkpoint").is_dir()
    assert not leaks(out + err) and not files_with_key(tmp_path)


@pytest.mark.parametrize("method", METHODS)
async def test_an_optimizer_model_that_is_down_stops_the_run_too(method, tmp_path):
    """The reflection/proposer model down while the task model answers: without it the search cannot propose
    anything, so the run must stop with the outage error rather than finish 'successfully' with the initial
    prompt after generations (or trials) that silently proposed nothing."""
    from reliability_helpers import WEAK, endpoints, intent_score

    from rollouts_dspy.prompt_optimization.gepa import run_gepa
    from rollouts_dspy.prompt_optimization.mipro import run_mipro

    cfg = (gepa_config(**storage(method, tmp_path)) if method == "gepa"
           else mipro_config(**storage(method, tmp_path)))
    with ScriptedServer() as up, ScriptedServer(down=True) as down:
        task, _ = endpoints(up)
        _, optimizer = endpoints(down, max_retries=1)
        optimize = run_gepa if method == "gepa" else run_mipro
        with pytest.raises(ProviderUnavailableError):
            await optimize(WEAK, cfg, DATA, task, optimizer, intent_score, options=QUIET)
        assert down.stats().requests_total <= 2 * (DEFAULT_OUTAGE_THRESHOLD + cfg.max_concurrent)
    assert checkpoint_files(tmp_path)


@pytest.mark.parametrize("method", METHODS)
async def test_a_rejected_api_key_stops_the_run_instead_of_scoring_zeros(method, tmp_path):
    """401 on every call: not the prompt's fault, so no rollout may be scored 0 for it; the run stops with the
    provider's message (its key redacted) after a bounded number of calls, which are not retried."""
    from test_secrets import echoing_provider

    cfg = (gepa_config(**storage(method, tmp_path)) if method == "gepa"
           else mipro_config(**storage(method, tmp_path)))
    with echoing_provider(401) as provider:
        with pytest.raises(ProviderUnavailableError) as caught:
            await run(method, provider, cfg)
    assert "AuthenticationError" in str(caught.value) and "Incorrect API key" in str(caught.value)
    assert checkpoint_files(tmp_path)


def test_cli_evaluate_reports_the_outage_without_a_traceback(tmp_path, capsys):
    from reliability_helpers import FAKE_KEY
    from test_secrets import echoing_provider, leaks

    from rollouts_dspy.cli import main

    with echoing_provider(503) as down:
        config = write_cli_config(tmp_path, down.base_url, "gepa")
        with pytest.MonkeyPatch.context() as env:
            env.setenv("OPENAI_API_KEY", FAKE_KEY)
            code = main(["evaluate", "--config", config, "--split", "val"])
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    assert "provider" in err and "Traceback" not in err
    assert not leaks(out + err)
