"""What the package knows about LLM providers before calling one: litellm itself (imported once, lazily, offline),
provider names, whether an `api_base` is a server on this machine or network, which environment variable holds a
provider's API key, and whether litellm's cost table prices a model.

This module imports nothing from the package: `dtypes` (Endpoint validation) and `llm` (the calls) both use it,
so the dependency runs one way only (llm -> dtypes -> providers).
"""

from __future__ import annotations

import ipaddress
import os
from types import ModuleType
from urllib.parse import urlsplit

__all__ = ["LOCAL_SERVER_KEY", "is_local_base", "known_provider", "litellm_module", "litellm_prices",
           "missing_key_variables"]

_litellm: ModuleType | None = None


def litellm_module() -> ModuleType:
    """Import litellm once, offline-safe: its cost map is read from the package, never downloaded.

    Only process-wide settings that cannot change a call's result are set here (quiet debug output); everything
    that shapes a request is passed per call, so other users of litellm in the process are not affected.
    """
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.suppress_debug_info = True  # else a failed cost lookup prints litellm's provider list
        _litellm = litellm
    return _litellm


# Providers we can name without asking litellm (whose import costs seconds); anything else is checked against
# litellm's own list.
_COMMON_PROVIDERS = frozenset(
    {"openai", "anthropic", "azure", "gemini", "vertex_ai", "ollama", "ollama_chat", "hosted_vllm", "vllm",
     "groq", "together_ai", "mistral", "openrouter", "bedrock", "deepseek", "fireworks_ai", "cohere", "xai",
     "huggingface", "lm_studio", "text-completion-openai"}
)


def known_provider(provider: str) -> bool:
    return provider in _COMMON_PROVIDERS or provider in set(litellm_module().provider_list)


LOCAL_SERVER_KEY = "no-key-local-server"
"""The API key sent to a local server when none is configured. Keyless servers (vLLM and llama.cpp without
--api-key, LM Studio, Ollama) ignore it; the OpenAI client refuses to send a request without some key."""

_LOCAL_NAMES = frozenset({"localhost", "host.docker.internal"})


def is_local_base(api_base: str | None) -> bool:
    """Is `api_base` a server on this machine or the local network? Loopback, private and link-local addresses,
    'localhost', '*.localhost', '*.local', 'host.docker.internal' and single-label host names (a LAN machine or a
    container name such as 'vllm'). A public host name or address is not local."""
    if not api_base:
        return False
    try:
        host = urlsplit(api_base if "//" in api_base else f"//{api_base}").hostname
    except ValueError:
        return False
    if not host:
        return False
    host = host.lower().rstrip(".")
    if host in _LOCAL_NAMES or host.endswith((".localhost", ".local")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host  # a single-label name only resolves on the local network
    return address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified


def missing_key_variables(litellm_model: str) -> tuple[str, ...]:
    """The environment variables holding the model's provider API key, when litellm says they are all unset
    (any one of them would do); () when a key is set, or when the provider's credentials are not a plain API key
    (cloud credentials such as AWS or Vertex may come from files or instance roles, so their absence from the
    environment proves nothing)."""
    try:
        report = litellm_module().validate_environment(model=litellm_model)
    except Exception:  # noqa: BLE001 - litellm raises for models it cannot map; then it cannot tell us either
        return ()
    missing = tuple(str(name) for name in report.get("missing_keys") or ())
    if missing and all(name.endswith("_API_KEY") for name in missing):
        return missing
    return ()


_PRICED: dict[str, bool] = {}


def litellm_prices(litellm_model: str) -> bool:
    """Does litellm's cost table price this model? Asked once per model (the table is read from the package
    and does not change; a failed lookup costs milliseconds)."""
    priced = _PRICED.get(litellm_model)
    if priced is None:
        try:
            litellm_module().cost_per_token(model=litellm_model, prompt_tokens=1000, completion_tokens=1000)
            priced = True
        except Exception:  # noqa: BLE001 - litellm raises for models missing from its cost table
            priced = False
        _PRICED[litellm_model] = priced
    return priced
