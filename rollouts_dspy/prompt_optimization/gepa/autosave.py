"""Keeping the GEPA checkpoint current inside a generation.

The checkpoint is the last generation boundary plus every rollout and reflection answer finished since, rewritten
as rollouts finish, so even a killed process loses only the calls in flight. Each rollout is JSON-encoded once
(when it first appears) and every save only joins the stored fragments: a save costs a string join and a file
write, not a re-encoding of the whole state, so the per-rollout saves stay cheap late in a long run. A save that
still got slow (a very large state) is spaced out to keep its overhead small.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from .state import KIND, VERSION, GEPAState, save_checkpoint, write_text_checkpoint

__all__ = ["Autosave"]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class Autosave:
    FAST = 0.05  # seconds: saves cheaper than this happen after every rollout
    SPACING = 4.0  # slower saves wait this many times their own duration

    def __init__(self, directory: str | None, run_key: Mapping[str, Any], state: GEPAState) -> None:
        self.directory, self.run_key, self.state = directory, run_key, state
        self.head = ""  # everything of the file up to the rollout list, encoded at the last boundary
        self.fragments: list[str] = []
        self.seen: set[tuple[str, int]] = set()
        self._reflections = (-1, "")  # (answers encoded, their JSON)
        self.next_at = 0.0

    def at_boundary(self) -> None:
        if self.directory is None:
            return
        body = _dumps(self.state.to_dict(caches=False))
        self.head = (f'{{"kind":{_dumps(KIND)},"version":{VERSION},"fingerprint":{_dumps(dict(self.run_key))},'
                     f'"state":{body[:-1]},"rollouts":[')
        save_checkpoint(self.directory, self.run_key, self.state)

    def _text(self) -> str:
        rollouts = self.state.rollouts
        if len(self.seen) < len(rollouts):
            for (k, i), r in rollouts.items():
                if (k, i) not in self.seen:
                    self.seen.add((k, i))
                    self.fragments.append(_dumps([k, i, r.to_dict()]))
        answers = self.state.reflections
        if self._reflections[0] != len(answers):
            self._reflections = (len(answers), _dumps(dict(answers)))
        return f'{self.head}{",".join(self.fragments)}],"reflections":{self._reflections[1]}}}}}'

    def progress(self, *, force: bool = False) -> None:
        if self.directory is None or not self.head:
            return
        now = time.monotonic()
        if not force and now < self.next_at:
            return
        write_text_checkpoint(self.directory, self._text(), sync=force)
        spent = time.monotonic() - now
        self.next_at = now if spent < self.FAST else now + self.SPACING * spent
