"""The rollouts front door's Task: a PromptTemplate run through litellm (or the agent loop) and a score_fn."""

from __future__ import annotations

import inspect
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..agents import DEFAULT_MAX_TURNS, AgentError, run_agent, run_completion
from ..dtypes import Endpoint, Environment, Message, Sample, Score, ScoreFn, Trajectory, Usage
from ..errors import DatasetError, ScoreFnError, TemplateError
from ..llm import LLMSession
from ..runtime.errors import SYSTEMIC_KINDS
from .formatting import format_prompt, placeholders, to_sample, validate_dataset
from .protocols import Rollout, RolloutError
from .types import SYSTEM, USER_TEMPLATE, Candidate, PromptTemplate

__all__ = [
    "EndpointModel", "EnvironmentFactory", "TemplateTask", "check_score_fn", "preflight", "probe_score_fn",
    "render_transcript", "without_own_demo",
]

EnvironmentFactory = Callable[[dict], Any]
"""`(row) -> Environment`, sync or async; called once per rollout for a fresh environment."""


class EndpointModel:
    """A LanguageModel over an Endpoint, sharing the run's LLMSession (its concurrency limit and accounting)."""

    def __init__(self, endpoint: Endpoint, session: LLMSession, role: str) -> None:
        self.endpoint = endpoint
        self.session = session
        self.role = role

    async def complete(self, messages: Sequence[Message]) -> tuple[str, Usage]:
        completion = await self.session.complete(self.endpoint, messages, role=self.role)
        return completion.message.content, completion.usage


def check_score_fn(score_fn: Any) -> None:
    """Reject what cannot be a score_fn before any LLM call."""
    if not callable(score_fn):
        raise ScoreFnError(f"score_fn must be callable as score_fn(trajectory, sample) -> Score, "
                           f"but got {type(score_fn).__name__}")
    try:
        annotation = inspect.signature(score_fn).return_annotation
    except (TypeError, ValueError):
        return
    if annotation in (inspect.Signature.empty, Score, "Score") or isinstance(annotation, str):
        return
    origin = getattr(annotation, "__origin__", None)
    if isinstance(annotation, type) and not issubclass(annotation, Score) and origin is None:
        raise ScoreFnError(f"score_fn is annotated to return {annotation.__name__}, but must return a Score")


def probe_score_fn(score_fn: ScoreFn, messages: list[Message], sample: Sample) -> None:
    """Call the score_fn once on an empty answer: a wrong return type is then a clear error before any LLM
    call. An async score_fn is awaited on a private event loop in a worker thread (this runs inside the caller's
    loop). A score_fn that raises on an empty answer is left alone (it may rightly need a real one)."""
    try:
        value = score_fn(Trajectory(tuple(messages) + (Message("assistant", ""),)), sample)
        if inspect.isawaitable(value):
            value = _await_aside(value)
    except Exception:  # noqa: BLE001 - see docstring: raising on an empty answer is allowed
        return
    if not isinstance(value, Score):
        raise ScoreFnError(f"score_fn must return a Score, but returned {type(value).__name__}: {value!r:.200}")


def _await_aside(awaitable: Any, timeout: float = 30.0) -> Any:
    import asyncio
    import concurrent.futures

    async def wait() -> Any:
        return await awaitable

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, wait()).result(timeout=timeout)


def preflight(
    template: PromptTemplate,
    dataset: Sequence[Mapping[str, Any]],
    score_fn: Any,
    environment_factory: Any,
    *,
    train_seeds: Sequence[int],
    val_seeds: Sequence[int] = (),
    owner: str,
    stacklevel: int = 2,
) -> None:
    """Every check a run makes before its first LLM call: the seeds name rows that fill the template, the
    score_fn is callable and returns a Score (probed once on an empty answer), the environment_factory is callable.
    Overlapping train and validation seeds are a warning (`owner` names the config in it)."""
    validate_dataset(template, dataset, train_seeds, what="train_seeds" if val_seeds else "seeds")
    validate_dataset(template, dataset, val_seeds, what="val_seeds")
    if not train_seeds:
        raise DatasetError("train_seeds is empty" if val_seeds else "seeds is empty: give at least one row index")
    check_score_fn(score_fn)
    if environment_factory is not None and not callable(environment_factory):
        raise TypeError(f"environment_factory must be callable as factory(row) -> Environment, "
                        f"but got {type(environment_factory).__name__}")
    first = train_seeds[0]
    probe_score_fn(score_fn, format_prompt(template, dataset[first]), to_sample(template, dataset, first))
    overlap = sorted(set(train_seeds) & set(val_seeds))
    if overlap:
        warnings.warn(f"{owner}: train_seeds and val_seeds share {len(overlap)} indices (e.g. {overlap[:5]}); "
                      "the validation score is then not held out", UserWarning, stacklevel=stacklevel + 1)


def render_transcript(messages: Sequence[Message]) -> str:
    """The model's side of a rollout as text: answers, tool calls and tool results, in order."""
    lines: list[str] = []
    for m in messages:
        if m.role == "assistant":
            if m.content:
                lines.append(m.content)
            for call in m.tool_calls:
                lines.append(f"[tool call] {call.name}({json.dumps(dict(call.args), sort_keys=True)})")
        elif m.role == "tool":
            lines.append(f"[tool result] {m.content}")
    return "\n".join(lines)


class TemplateTask:
    """Runs a candidate as `base` with its system prompt and demos -- and, with `optimize_user_template`, its
    user_template (a second component, whose text must keep exactly the base's {placeholders})."""

    def __init__(
        self,
        base: PromptTemplate,
        dataset: Sequence[Mapping[str, Any]],
        endpoint: Endpoint,
        score_fn: ScoreFn,
        session: LLMSession,
        *,
        environment_factory: EnvironmentFactory | None = None,
        max_turns: int = DEFAULT_MAX_TURNS,
        optimize_user_template: bool = False,
    ) -> None:
        self.components = (SYSTEM, USER_TEMPLATE) if optimize_user_template else (SYSTEM,)
        self.base = base
        self.dataset = dataset
        self.endpoint = endpoint
        self.score_fn = score_fn
        self.session = session
        self.environment_factory = environment_factory
        self.max_turns = max_turns
        self._fields = placeholders(base.user_template)

    def check_instruction(self, component: str, text: str) -> str | None:
        """A user_template must keep exactly the base's {placeholders} (no field dropped, none invented)."""
        if component != USER_TEMPLATE:
            return None
        try:
            found = set(placeholders(text))
        except TemplateError as exc:
            return f"the user_template does not parse: {exc}"
        if found != set(self._fields):
            missing, invented = sorted(set(self._fields) - found), sorted(found - set(self._fields))
            return f"the user_template must keep its placeholders exactly (missing {missing}, invented {invented})"
        return None

    async def run(self, candidate: Candidate, index: int) -> Rollout:
        sample = to_sample(self.base, self.dataset, index)
        user_template = candidate.instructions.get(USER_TEMPLATE, self.base.user_template)
        user = format_prompt(PromptTemplate("", user_template), sample)[-1].content
        template = without_own_demo(candidate, SYSTEM, lambda demo: demo.get("input") == user).to_template(self.base)
        messages = format_prompt(template, sample)
        inputs = {k: str(v) for k, v in sample.input.items()}
        try:
            trajectory = await self._trajectory(messages, sample)
        except AgentError as exc:
            # A wrong key, a missing model or an exhausted account is the provider's refusal, not the prompt's
            # failure: unmeasured like an outage (so a run of them stops the run), never scored 0.
            unmeasured = exc.retryable or exc.kind in SYSTEMIC_KINDS
            error = RolloutError("llm" if unmeasured else _kind(exc.kind), exc.message, exc.kind if unmeasured else "")
            # A permanent LLM error (bad request, context too long) is this prompt's failure: a measured 0.
            score = None if error.kind in ("llm", "environment") else 0.0
            out = render_transcript(exc.trajectory.messages[len(messages):])
            return Rollout(index, score, f"rollout failed: {exc.kind}", inputs, out, error,
                           exc.trajectory.total_usage)
        usage = trajectory.total_usage
        output = render_transcript(trajectory.messages[len(messages):])
        try:
            score = await _call_score_fn(self.score_fn, trajectory, sample)
        except Exception as exc:  # noqa: BLE001 - a score_fn bug on one sample is that sample's failure
            return Rollout(index, None, "", inputs, output,
                           RolloutError("score_fn", f"{type(exc).__name__}: {exc}"), usage)
        demo = _demo(messages, trajectory)
        # Several named metrics are objectives a multi-objective search can trade off (one is just the score).
        objectives = {m.name: float(m.value) for m in score.metrics} if len(score.metrics) > 1 else {}
        return Rollout(index, score.reward, _feedback(score, sample), inputs, output, None, usage, {SYSTEM: demo},
                       objectives)

    def retries(self) -> dict[str, int]:
        return {role: stats.retries for role, stats in self.session.stats.items()}

    def add_retries(self, counts: Mapping[str, int]) -> None:
        for role, n in counts.items():
            self.session.role_stats(role).retries += n

    def labeled_demo(self, index: int, component: str) -> Mapping[str, Any] | None:
        sample = to_sample(self.base, self.dataset, index)
        if sample.ground_truth is None:
            return None
        user = format_prompt(PromptTemplate("", self.base.user_template), sample)[-1].content
        truth = sample.ground_truth
        output = truth if isinstance(truth, str) else json.dumps(truth, sort_keys=True, default=str)
        return {"input": user, "output": output}

    async def _trajectory(self, messages: list[Message], sample: Sample) -> Trajectory:
        if self.environment_factory is None:
            return await run_completion(messages, self.endpoint, session=self.session)
        try:
            environment = self.environment_factory(dict(sample.metadata["row"]))
            if inspect.isawaitable(environment):
                environment = await environment
        except Exception as exc:  # noqa: BLE001
            raise AgentError("environment_error", f"environment_factory failed: {type(exc).__name__}: {exc}",
                             Trajectory(tuple(messages))) from exc
        if not isinstance(environment, Environment):
            raise AgentError("environment_error", f"environment_factory returned {type(environment).__name__}, "
                             "which has no get_tools()/exec_tool()", Trajectory(tuple(messages)))
        return await run_agent(messages, self.endpoint, environment, self.max_turns, session=self.session)


def without_own_demo(candidate: Candidate, component: str, is_own: Callable[[Mapping[str, Any]], bool]) -> Candidate:
    """The candidate minus the demos that show the sample being scored (leave-one-out).

    Demos are drawn from the training samples that candidates are scored on; a model shown the sample's own
    answer as a demo would score it by copying, and the demo set would look better than it is."""
    demos = candidate.demos.get(component, ())
    kept = tuple(d for d in demos if not is_own(d))
    return candidate if len(kept) == len(demos) else candidate.with_demos(component, kept)


def _feedback(score: Score, sample: Sample) -> str:
    """The score_fn's feedback; when it gives none, a summary of the metrics plus the expected answer of this
    training sample, so a reflection model can tell what went wrong rather than only that something did."""
    if score.feedback or sample.ground_truth is None:
        return score.describe()
    truth = sample.ground_truth
    expected = truth if isinstance(truth, str) else json.dumps(truth, sort_keys=True, default=str)
    return f"{score.describe()}; expected: {expected}"


def _kind(agent_kind: str) -> str:
    return "environment" if agent_kind == "environment_error" else "prompt"


async def _call_score_fn(score_fn: ScoreFn, trajectory: Trajectory, sample: Sample) -> Score:
    value = score_fn(trajectory, sample)
    if inspect.isawaitable(value):
        value = await value
    if not isinstance(value, Score):
        raise ScoreFnError(f"score_fn must return a Score, but returned {type(value).__name__}")
    return value


def _demo(prompt: list[Message], trajectory: Trajectory) -> dict[str, Any]:
    """This rollout as a FewShotExample dict: the user message, the tool-call turns, the final answer."""
    produced = list(trajectory.messages[len(prompt):])
    final = ""
    if produced and produced[-1].role == "assistant" and not produced[-1].tool_calls:
        final = produced.pop().content
    out: dict[str, Any] = {"input": prompt[-1].content, "output": final}
    if produced:
        out["messages"] = [m.to_openai() for m in produced]
    return out

