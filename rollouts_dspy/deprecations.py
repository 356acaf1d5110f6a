"""Keywords that moved into an options or config object, still accepted until REMOVED_IN with a DeprecationWarning.

One place decides how an old keyword is folded into its new home, warned about, and refused beside the new
parameter (which of the two should win would be a guess), so every public function that slimmed its signature
behaves the same. `inspect.signature` of a wrapped function shows only its current parameters (functools.wraps),
so the documented surface is the new one.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from .errors import ConfigError

__all__ = ["REMOVED_IN", "moved_keywords"]

REMOVED_IN = "0.3"

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
Fold = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]
"""`fold(old, arguments)`: the new parameter's value built from the old keywords given (`old`) and the call's
other arguments (`arguments`, by parameter name)."""


def moved_keywords(into: str, old: tuple[str, ...], fold: Fold, hint: str) -> Callable[[F], F]:
    """Let the async function accept the keywords `old` as deprecated aliases folded into its parameter `into`.
    `hint` says what to write instead (shown in the warning)."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in old if name in kwargs}
            if given:
                arguments = signature.bind_partial(*args, **kwargs).arguments
                if arguments.get(into) is not None:
                    raise ConfigError(f"{fn.__name__}: pass {', '.join(given)} inside {into}=, not beside it")
                kwargs[into] = fold(given, arguments)
                names = ", ".join(f"{name}=..." for name in given)
                warnings.warn(f"{fn.__name__}({names}) is deprecated and will be removed in {REMOVED_IN}: "
                              f"pass {hint}", DeprecationWarning, stacklevel=2)
            return await fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
