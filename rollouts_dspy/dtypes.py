"""The rollouts-style value types: endpoints, messages, trajectories, scores, samples, environments.

These mirror the `rollouts.dtypes` names the design spec imports (that library is not on PyPI), so code written
against the spec runs here with only its import lines changed. Every type is a frozen dataclass.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Union, runtime_checkable

from .providers import known_provider

__all__ = [
    "Endpoint",
    "Environment",
    "Message",
    "Metric",
    "Sample",
    "Score",
    "ScoreFn",
    "Tool",
    "ToolCall",
    "ToolResult",
    "Trajectory",
    "Usage",
]

Role = Literal["system", "user", "assistant", "tool"]
_ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """Where and how to call an LLM.

    `api_key=""` means "read the provider's usual environment variable" (litellm does that); a server on this
    machine or network (`api_base="http://localhost:8000/v1"`) needs no key at all. The key is excluded
    from `repr`, equality, `identity()` and every serialized form, so it never reaches logs, results or files.
    `pricing` optionally overrides litellm's cost table as (USD per million input tokens, USD per million output
    tokens); without it cost comes from litellm's table when the model is known, else only tokens are counted.
    """

    provider: str
    model: str
    api_base: str | None = None
    api_key: str = field(default="", repr=False, compare=False)
    temperature: float = 0.0
    max_tokens: int | None = None
    timeout: float = 60.0
    max_retries: int = 3
    retry_backoff: float = 0.5
    pricing: tuple[float, float] | None = None
    extra_params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.provider, str) or not self.provider:
            raise ValueError(f"Endpoint.provider must be a non-empty string, but got {self.provider!r}")
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"Endpoint.model must be a non-empty string, but got {self.model!r}")
        if not known_provider(self.provider):
            raise ValueError(
                f"Endpoint.provider {self.provider!r} is not a provider litellm knows "
                "(e.g. 'openai', 'anthropic', 'ollama', 'hosted_vllm'; any OpenAI-compatible server: 'openai' "
                "with api_base)"
            )
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"Endpoint.temperature must be in [0, 2], but got {self.temperature!r}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"Endpoint.max_tokens must be >= 1 or None, but got {self.max_tokens!r}")
        if not self.timeout > 0:
            raise ValueError(f"Endpoint.timeout must be > 0 seconds, but got {self.timeout!r}")
        if self.max_retries < 0:
            raise ValueError(f"Endpoint.max_retries must be >= 0, but got {self.max_retries!r}")
        if self.retry_backoff < 0:
            raise ValueError(f"Endpoint.retry_backoff must be >= 0, but got {self.retry_backoff!r}")
        if self.pricing is not None and (len(self.pricing) != 2 or min(self.pricing) < 0):
            raise ValueError(f"Endpoint.pricing must be (input, output) USD per million tokens, got {self.pricing!r}")

    @property
    def litellm_model(self) -> str:
        """The model string litellm routes on (`provider/model`)."""
        prefix = f"{self.provider}/"
        return self.model if self.model.startswith(prefix) else prefix + self.model

    def identity(self) -> str:
        """A stable description of what answers a call (no secrets), for cache keys and result files."""
        return json.dumps(
            [self.provider, self.model, self.api_base, self.temperature, self.max_tokens,
             sorted((str(k), repr(v)) for k, v in self.extra_params.items())]
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form without the API key."""
        return {
            "provider": self.provider,
            "model": self.model,
            "api_base": self.api_base,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "retry_backoff": self.retry_backoff,
            "pricing": list(self.pricing) if self.pricing else None,
            "extra_params": dict(self.extra_params),
        }


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for."""

    id: str
    name: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolResult:
    """What a tool returned. `stop=True` says the task is complete: the agent loop ends after this call."""

    content: str
    is_error: bool = False
    stop: bool = False


@dataclass(frozen=True)
class Tool:
    """A function the model may call, described by a JSON schema for its parameters."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": dict(self.parameters)},
        }


@dataclass(frozen=True)
class Message:
    """One chat message. Assistant messages may carry tool calls; tool messages answer one by `tool_call_id`."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(f"Message.role must be one of {_ROLES}, but got {self.role!r}")

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": json.dumps(dict(c.args), sort_keys=True)}}
                for c in self.tool_calls
            ]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


@dataclass(frozen=True)
class Usage:
    """Tokens and dollars of one or more LLM calls. `cost_usd` is None when the model's price is unknown."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    calls: int = 0

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        if self.calls == 0:
            cost = other.cost_usd
        elif other.calls == 0:
            cost = self.cost_usd
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            cost,
            self.calls + other.calls,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Trajectory:
    """A conversation as run: every message, the usage of each LLM call in order, and free metadata."""

    messages: tuple[Message, ...] = ()
    usage: tuple[Usage, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def total_usage(self) -> Usage:
        total = Usage()
        for u in self.usage:
            total = total + u
        return total

    @property
    def final_text(self) -> str:
        """The content of the last assistant message ('' when the model never answered)."""
        for m in reversed(self.messages):
            if m.role == "assistant":
                return m.content
        return ""


@dataclass(frozen=True)
class Metric:
    """One named measurement; `Score.reward` is the weighted mean of its metrics."""

    name: str
    value: float
    weight: float = 1.0
    metadata: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)) or not math.isfinite(self.value):
            raise ValueError(f"Metric {self.name!r} value must be a finite number, but got {self.value!r}")
        if self.weight < 0:
            raise ValueError(f"Metric {self.name!r} weight must be >= 0, but got {self.weight!r}")


@dataclass(frozen=True)
class Score:
    """The score of one rollout. `feedback` is free text that GEPA's reflection reads (why it scored so)."""

    metrics: tuple[Metric, ...] = ()
    feedback: str | None = None

    @property
    def reward(self) -> float:
        total_weight = sum(m.weight for m in self.metrics)
        if total_weight == 0:
            return 0.0
        return sum(m.value * m.weight for m in self.metrics) / total_weight

    def __bool__(self) -> bool:
        # A Score object is never a truth value: thresholds compare `reward`. Refusing bool() catches
        # `if score:` bugs (DSPy's Prediction is always truthy, the classic mistake).
        raise TypeError("a Score has no truth value; compare score.reward against a threshold")

    def describe(self) -> str:
        """The feedback text, or a summary of the metrics when there is none."""
        if self.feedback:
            return self.feedback
        parts = ", ".join(f"{m.name}={m.value:g}" for m in self.metrics)
        return f"reward {self.reward:.3g} ({parts})" if parts else f"reward {self.reward:.3g}"


@dataclass(frozen=True)
class Sample:
    """One dataset row as the score_fn sees it: its inputs, its ground truth (the labels) and metadata."""

    id: str
    input: Mapping[str, Any]
    ground_truth: Any = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


ScoreFn = Callable[[Trajectory, Sample], Union[Score, Awaitable[Score]]]
"""`(trajectory, sample) -> Score`, sync or async."""


@runtime_checkable
class Environment(Protocol):
    """Tools for an agent rollout. A fresh environment is made per sample, so it may keep state.

    `exec_tool` must not raise for a bad call: it returns `ToolResult(is_error=True)` for the model to see.
    A result with `stop=True` ends the rollout (the task is complete).
    """

    def get_tools(self) -> Sequence[Tool]: ...

    async def exec_tool(self, call: ToolCall) -> ToolResult: ...
