"""What the distributed tests send to Ray workers: the intent world's score_fn, a score_fn that stalls on one node
(so that node can be killed mid-rollout), and a fake Task that writes what it ran to a log file.

The conftest registers this module with Ray's cloudpickle "by value": workers receive these functions and classes
themselves, so they need not import the tests package.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollouts_dspy.dtypes import Metric, Score
from rollouts_dspy.prompt_optimization.protocols import Rollout
from rollouts_dspy.prompt_optimization.types import SYSTEM, Candidate, PromptTemplate
from rollouts_dspy.testing import QUICKSTART_INTENTS, generate_intent_queries

TEMPLATE = PromptTemplate(system="Classify the query.",
                          user_template="Query: {query}\nIntents: " + ", ".join(QUICKSTART_INTENTS))


def intent_dataset(n: int = 40) -> list[dict]:
    return generate_intent_queries(n, seed=0)


def score_intent(trajectory, sample) -> Score:  # noqa: ANN001
    answer = trajectory.final_text.strip()
    correct = answer == sample.ground_truth
    feedback = None if correct else f"expected: {sample.ground_truth}, got: {answer}"
    return Score(metrics=(Metric("correct", float(correct)),), feedback=feedback)


@dataclass(frozen=True)
class StallOnNode:
    """The intent score_fn, except that the first rollout scored on node `victim` writes `marker` (its pid) and
    then stalls, holding that node's only CPU, until the test kills the node. Its LLM call was already made, so
    the server saw one request for a rollout whose result is lost and must be run again elsewhere."""

    victim: str
    marker: str

    def __call__(self, trajectory, sample) -> Score:  # noqa: ANN001
        import ray

        if ray.get_runtime_context().get_node_id() == self.victim:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                time.sleep(120)  # the test kills this process long before
        return score_intent(trajectory, sample)


# -- a fake Task that logs what it runs -------------------------------------------------------------------------
def _locked_update(path: Path, line: str, delta: int) -> None:
    """Append `line` to the log at `path` and keep `path`.count = rollouts running now, `path`.peak = the most
    at once (under an exclusive lock: workers are separate processes)."""
    with open(f"{path}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        count_file, peak_file = Path(f"{path}.count"), Path(f"{path}.peak")
        running = int(count_file.read_text() or 0) if count_file.exists() else 0
        peak = int(peak_file.read_text() or 0) if peak_file.exists() else 0
        running += delta
        count_file.write_text(str(running))
        peak_file.write_text(str(max(peak, running)))
        with open(path, "a") as log:
            log.write(line + "\n")


def read_log(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def peak_running(path: Path) -> int:
    peak = Path(f"{path}.peak")
    return int(peak.read_text()) if peak.exists() else 0


@dataclass(frozen=True)
class LoggingTaskRecipe:
    log: str
    seconds: float = 0.05
    die_on: int | None = None
    raise_on: int | None = None
    partner_for_first: bool = False

    def build(self) -> LoggingTask:
        return LoggingTask(self)


class LoggingTask:
    """Scores sample i as (i % 3) / 2 after `seconds` of work, logging 'start i pid', then 'end i pid' or
    'cancelled i pid'. On sample `die_on` it SIGKILLs its own process (a worker that dies mid-rollout, every
    time); on `raise_on` it raises (a bug in a Task). With `partner_for_first`, sample 0 waits (up to 30 s)
    until another rollout runs beside it, so a test sees two at once as soon as the cluster can run two."""

    components = (SYSTEM,)

    def __init__(self, recipe: LoggingTaskRecipe) -> None:
        self._recipe = recipe
        self.log = Path(recipe.log)

    def recipe(self) -> LoggingTaskRecipe:
        return self._recipe

    async def run(self, candidate: Candidate, index: int) -> Rollout:
        import asyncio

        pid = os.getpid()
        _locked_update(self.log, f"start {index} {pid}", +1)
        if index == self._recipe.die_on:
            os.kill(pid, signal.SIGKILL)
        if index == self._recipe.raise_on:
            raise RuntimeError(f"a bug in the task on sample {index}")
        try:
            if index == 0 and self._recipe.partner_for_first:
                await _until(lambda: _running(self.log) >= 2, timeout=30.0)
            await asyncio.sleep(self._recipe.seconds)
        except asyncio.CancelledError:
            _locked_update(self.log, f"cancelled {index} {pid}", -1)
            raise
        _locked_update(self.log, f"end {index} {pid}", -1)
        return Rollout(index, (index % 3) / 2, inputs={"i": str(index)})

    def labeled_demo(self, index: int, component: str) -> Mapping[str, Any] | None:
        return None


def _running(path: Path) -> int:
    count = Path(f"{path}.count")
    return int(count.read_text() or 0) if count.exists() else 0


async def _until(condition, timeout: float) -> None:  # noqa: ANN001
    import asyncio

    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def dspy_feedback_metric(gold, pred, trace=None, pred_name=None, pred_trace=None):  # noqa: ANN001, ANN201
    """dspy.GEPA's feedback metric for the intent world: the expected label is what reflection learns from."""
    import dspy

    correct = pred.intent.strip() == gold.intent
    return dspy.Prediction(score=float(correct), feedback="Correct." if correct else f"expected: {gold.intent}")


def two_step_program():  # noqa: ANN201
    """A draft answer, then a check of it: two predictors, each with its own instructions (per-predictor
    feedback has something to tell apart)."""
    import dspy

    class TwoStep(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.draft = dspy.Predict("query -> intent")
            self.check = dspy.Predict("query, draft -> intent")

        def forward(self, query):  # noqa: ANN001, ANN201
            return self.check(query=query, draft=self.draft(query=query).intent)

    return TwoStep()


def per_predictor_metric(gold, pred, trace=None, pred_name=None, pred_trace=None):  # noqa: ANN001, ANN201
    """Feedback that depends on which predictor is asked about and on what that predictor's call produced
    (read from `pred_trace`): only the run's own trace can answer it."""
    import dspy

    correct = pred.intent.strip() == gold.intent
    if pred_name is None or not pred_trace:
        return dspy.Prediction(score=float(correct), feedback="Correct." if correct else f"expected: {gold.intent}")
    _, _, outputs = pred_trace[0]
    said = getattr(outputs, "intent", "?")
    return dspy.Prediction(score=float(correct), feedback=f"{pred_name} said {said}; expected: {gold.intent}")


def dspy_lm(server, model: str):  # noqa: ANN001, ANN201
    """A DSPy LM on the scripted server, uncached (every call reaches the server and is counted)."""
    import dspy

    return dspy.LM(f"openai/{model}", api_base=server.base_url, api_key="scripted", cache=False, num_retries=1)


def dspy_examples(n: int) -> list:
    import dspy

    return [dspy.Example(query=r["query"], intent=r["intent"]).with_inputs("query") for r in intent_dataset(n)]


def warm_up() -> str:
    """Run on a fresh node before a test needs it: its worker imports the LLM stack (seconds) and the scheduler
    has seen the node take work. Returns the node's id."""
    import ray

    import rollouts_dspy.llm  # noqa: F401

    return ray.get_runtime_context().get_node_id()
