"""Test fakes that really behave: a scripted OpenAI-compatible LLM server and its two synthetic worlds.

The server answers over real HTTP, so everything (litellm, DSPy, the optimizers) is exercised end to end, and its
policies make a better prompt really score better. See `server`, `policies` and `worlds`.
"""

from .faults import FAULT_KINDS, FaultConfig
from .policies import PolicyConfig, PolicyReply, respond
from .worlds import (
    QUICKSTART_INTENTS,
    CalculatorWorld,
    IntentWorld,
    generate_arithmetic_problems,
    generate_intent_queries,
)


# The server module loads lazily so `python -m rollouts_dspy.testing.server` does not import it twice.
def __getattr__(name: str) -> object:
    if name in ("ScriptedServer", "ServerStats"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FAULT_KINDS",
    "QUICKSTART_INTENTS",
    "CalculatorWorld",
    "FaultConfig",
    "IntentWorld",
    "PolicyConfig",
    "PolicyReply",
    "ScriptedServer",
    "ServerStats",
    "generate_arithmetic_problems",
    "generate_intent_queries",
    "respond",
]
