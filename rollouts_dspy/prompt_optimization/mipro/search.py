"""The Optuna side of MIPRO: one categorical parameter per (component, instruction | demos), a seeded TPE
sampler, the initial combination enqueued as the first trial, ask/tell in batches, and SQLite (RDB) storage so a
study survives the process. Optuna is imported here only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .schedule import batch_seed

__all__ = ["STUDY_NAME", "Study", "combination_id", "param_name"]

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


class Study:
    """An Optuna study over combination indices. `sizes[component] = (num instructions, num demo sets)`."""

    def __init__(self, sizes: Mapping[str, tuple[int, int]], seed: int, storage: str | None = None) -> None:
        optuna = _optuna()
        self.components = tuple(sizes)
        self.seed = seed
        dist = optuna.distributions.CategoricalDistribution
        self.distributions = {}
        for c, (n_instr, n_demos) in sizes.items():
            self.distributions[param_name(c, "instruction")] = dist(list(range(n_instr)))
            self.distributions[param_name(c, "demos")] = dist(list(range(n_demos)))
        url = None
        if storage is not None:
            Path(storage).parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{Path(storage).resolve()}"
        try:
            self.study = optuna.create_study(
                storage=url, study_name=STUDY_NAME, direction="maximize", load_if_exists=url is not None,
                sampler=optuna.samplers.TPESampler(seed=seed),
            )
            trials = self.study.get_trials(deepcopy=False)
        except Exception as exc:  # noqa: BLE001 - sqlalchemy/sqlite errors of a damaged study file
            if url is None:
                raise
            from ...errors import CheckpointError

            raise CheckpointError(f"the Optuna study {storage} cannot be opened ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0][:200]}); delete it and its .state.json to start "
                                  "over") from None
        if not trials:
            # The starting point is the first trial, so every run measures where it began.
            self.study.enqueue_trial({param_name(c, k): 0 for c in self.components for k in ("instruction", "demos")})

    def choice(self, params: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
        return {c: (int(params[param_name(c, "instruction")]), int(params[param_name(c, "demos")]))
                for c in self.components}

    def running(self) -> list[tuple[int, dict[str, tuple[int, int]]]]:
        """Trials a crashed process left RUNNING: (number, choice)."""
        optuna = _optuna()
        running = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        return [(t.number, self.choice(t.params)) for t in running if len(t.params) == len(self.distributions)]

    def ask(self, n: int) -> list[tuple[int, dict[str, tuple[int, int]]]]:
        """`n` new trials (enqueued ones first), sampled by a TPE sampler seeded from (seed, first trial number)."""
        optuna = _optuna()
        first = len(self.study.get_trials(deepcopy=False))
        self.study.sampler = optuna.samplers.TPESampler(seed=batch_seed(self.seed, first))
        trials = [self.study.ask(self.distributions) for _ in range(n)]
        return [(t.number, self.choice(t.params)) for t in trials]

    def tell(self, number: int, value: float | None) -> None:
        """Finish a trial: its mean minibatch score, or FAIL when nothing was measured."""
        optuna = _optuna()
        if value is None:
            self.study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        else:
            self.study.tell(number, value, skip_if_finished=True)
