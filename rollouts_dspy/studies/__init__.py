"""Shared studies: one search run by any number of worker processes, on any number of machines, through a
PostgreSQL database (docs/cluster.md, MIPRO across workers).

The database holds what the workers share: the study's fingerprint and config, its budget (admission is a
transaction), claims on work in progress, finished rollouts and proposer answers, work done once (the candidate
pool), the trials as they are told and the final result. `options.SharedStudy` names a study and loads no
database code; the rest imports SQLAlchemy and is loaded only when a worker joins or a study is read.
"""

from .options import DEFAULT_LEASE_SECONDS, SharedStudy

__all__ = ["DEFAULT_LEASE_SECONDS", "SharedStudy", "load_study_result"]


def __getattr__(name: str) -> object:
    if name == "load_study_result":
        from .reading import load_study_result

        return load_study_result
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
