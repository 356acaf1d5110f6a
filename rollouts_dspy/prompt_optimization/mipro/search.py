"""The Optuna side of MIPRO: one categorical parameter per (component, instruction | demos), a TPE sampler seeded
per ask, the initial combination as the first trial, and full-evaluation scores added as trials of their own (as
MIPROv2 does, so TPE learns from the most reliable scores too). Optuna is imported here only.

The study is rebuilt in every process by the engine's own replay (same asks, same tells, same order), so it lives
in memory; with an RDB `storage` URL the same study is also written there (recreated at the start of each
process) for tools such as optuna-dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import CheckpointError
from .schedule import batch_seed

__all__ = ["STUDY_NAME", "Choice", "Study", "combination_id", "param_name"]

STUDY_NAME = "rollouts-mipro"
Choice = Mapping[str, tuple[int, int]]
"""component -> (instruction index, demo-set index)"""


def param_name(component: str, kind: str) -> str:
    return f"{component}:{kind}"


def combination_id(choice: Choice, components: Sequence[str]) -> str:
    """A readable id: 'i3d1' for one component, 'i3d1-i0d2' for two (in component order)."""
    return "-".join(f"i{choice[c][0]}d{choice[c][1]}" for c in components)


def _optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _open_storage(optuna: Any, url: str, name: str) -> Any:
    try:
        storage = optuna.storages.RDBStorage(url)
        if name in [s.study_name for s in optuna.get_all_study_summaries(storage)]:
            optuna.delete_study(study_name=name, storage=storage)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy errors of a damaged or unreachable database
        raise CheckpointError(f"the Optuna storage {url} cannot be used ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200]})") from None
    return storage


class Study:
    """An Optuna study over combination indices. `sizes[component] = (num instructions, num demo sets)`."""

    def __init__(self, sizes: Mapping[str, tuple[int, int]], seed: int, storage: str | None = None,
                 name: str = STUDY_NAME) -> None:
        optuna = _optuna()
        self.components = tuple(sizes)
        self.seed = seed
        dist = optuna.distributions.CategoricalDistribution
        self.distributions = {}
        for c, (n_instr, n_demos) in sizes.items():
            self.distributions[param_name(c, "instruction")] = dist(list(range(n_instr)))
            self.distributions[param_name(c, "demos")] = dist(list(range(n_demos)))
        backend = None if storage is None else _open_storage(optuna, storage, name)
        self.study = optuna.create_study(storage=backend, study_name=name, direction="maximize",
                                         sampler=optuna.samplers.TPESampler(seed=seed))
        # The starting point is the first trial, so every run measures where it began.
        self.study.enqueue_trial(self.params({c: (0, 0) for c in self.components}))
        self._asked: dict[int, Any] = {}

    def params(self, choice: Choice) -> dict[str, int]:
        return {param_name(c, k): choice[c][i] for c in self.components for i, k in enumerate(("instruction",
                                                                                                 "demos"))}

    def choice(self, params: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
        return {c: (int(params[param_name(c, "instruction")]), int(params[param_name(c, "demos")]))
                for c in self.components}

    def ask(self, trial: int) -> dict[str, tuple[int, int]]:
        """The choice of our trial `trial`, sampled by a TPE sampler seeded from (seed, trial): it depends only on
        the trials told so far, never on when the other trials in flight finish."""
        optuna = _optuna()
        self.study.sampler = optuna.samplers.TPESampler(seed=batch_seed(self.seed, trial))
        asked = self.study.ask(self.distributions)
        self._asked[trial] = asked
        return self.choice(asked.params)

    def tell(self, trial: int, value: float | None) -> None:
        """Finish our trial `trial`: its mean minibatch score, or FAIL when nothing was measured."""
        optuna = _optuna()
        asked = self._asked.pop(trial)
        if value is None:
            self.study.tell(asked, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(asked, value)

    def add_full_evaluation(self, choice: Choice, value: float) -> None:
        """A full evaluation's mean, as a finished trial of its own (MIPROv2 does the same)."""
        optuna = _optuna()
        self.study.add_trial(optuna.trial.create_trial(params=self.params(choice), distributions=self.distributions,
                                                       value=value))
