"""Dataset files (CSV, JSONL, JSON) -> rows, and rows -> a train/validation/test split of row indices.

A split is given per part either as a fraction of the rows (`train = 0.6`), as explicit indices (`[0, 1, 2]`) or
as a half-open range string (`"0:100"`). Fractions are taken from one shuffle of all row indices with `seed`, so
the same file and seed always give the same split.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DatasetError

__all__ = ["FORMATS", "Split", "load_rows", "project_rows", "split_indices"]

FORMATS = ("csv", "jsonl", "json")
SPLIT_PARTS = ("train", "val", "test")


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise DatasetError(f"dataset format must be one of {FORMATS}, but got {fmt!r}")
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    if suffix == "ndjson":
        return "jsonl"
    if suffix not in FORMATS:
        raise DatasetError(f"cannot tell the format of {path} from its extension; name it .csv, .jsonl or .json, "
                           "or set format")
    return suffix


def load_rows(path: str | Path, fmt: str | None = None) -> list[dict[str, Any]]:
    """Every row of a CSV (header line = field names), JSONL (one object a line) or JSON (a list of objects, or
    an object with one list of objects) file. DatasetError names the file and line of what is wrong."""
    path = Path(path)
    kind = _format_of(path, fmt)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"dataset file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"dataset file {path} cannot be read: {exc}") from None
    if kind == "csv":
        rows: list[Any] = list(csv.DictReader(text.splitlines()))
    elif kind == "jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path} line {number} is not valid JSON: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path} is not valid JSON: {exc}") from None
        if isinstance(data, Mapping):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise DatasetError(f"{path} must hold a list of objects (or an object with exactly one list)")
            data = lists[0]
        if not isinstance(data, list):
            raise DatasetError(f"{path} must hold a list of objects, but holds a {type(data).__name__}")
        rows = data
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise DatasetError(f"{path} row {i} must be an object of field names to values, "
                               f"but is {type(row).__name__}")
    if not rows:
        raise DatasetError(f"dataset file {path} has no rows")
    return [dict(row) for row in rows]


def project_rows(rows: Sequence[Mapping[str, Any]], inputs: Sequence[str], label: str | None,
                 *, source: str = "dataset") -> list[dict[str, Any]]:
    """Keep only the input fields and the label of each row (so the label is the rows' one ground-truth field).
    DatasetError names the first row missing a field."""
    wanted = list(dict.fromkeys([*inputs, *([label] if label else [])]))
    out = []
    for i, row in enumerate(rows):
        missing = [name for name in wanted if name not in row]
        if missing:
            raise DatasetError(f"{source} row {i} has no field {missing[0]!r} (its fields: {sorted(map(str, row))})")
        out.append({name: row[name] for name in wanted})
    return out


@dataclass(frozen=True)
class Split:
    """Row indices per part. Parts do not overlap; `test` may be empty."""

    train: tuple[int, ...]
    val: tuple[int, ...] = ()
    test: tuple[int, ...] = ()

    def part(self, name: str) -> tuple[int, ...]:
        if name not in SPLIT_PARTS:
            raise DatasetError(f"split must be one of {SPLIT_PARTS}, but got {name!r}")
        return getattr(self, name)


def _explicit(spec: Any, n: int, name: str) -> tuple[int, ...]:
    if isinstance(spec, str):
        start, sep, stop = spec.partition(":")
        try:
            lo, hi = int(start or 0), int(stop or n)
        except ValueError:
            raise DatasetError(f"{name} range must look like \"0:100\", but got {spec!r}") from None
        if not sep or not 0 <= lo <= hi <= n:
            raise DatasetError(f"{name} range {spec!r} must be \"start:stop\" with 0 <= start <= stop <= {n}")
        return tuple(range(lo, hi))
    indices = tuple(spec)
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
            raise DatasetError(f"{name} indices must be integers in 0..{n - 1}, but include {i!r}")
    if len(set(indices)) != len(indices):
        raise DatasetError(f"{name} indices contain duplicates")
    return indices


def split_indices(n: int, parts: Mapping[str, Any], *, seed: int = 0) -> Split:
    """The split of `n` rows given `parts` {"train": spec, "val": spec, "test": spec} (see the module doc).
    Fractions and explicit indices may not be mixed; fractions must add up to at most 1."""
    unknown = sorted(set(parts) - set(SPLIT_PARTS))
    if unknown:
        raise DatasetError(f"unknown split part {unknown[0]!r}; expected some of {SPLIT_PARTS}")
    if "train" not in parts:
        raise DatasetError("the split needs a train part")
    given = {k: v for k, v in parts.items() if v is not None}
    fractions = {k: v for k, v in given.items() if isinstance(v, float)}
    if fractions and len(fractions) != len(given):
        raise DatasetError("give every split part as a fraction (0.6) or every one as indices/ranges; not a mix")
    if fractions:
        return _by_fraction(n, fractions, seed)
    split = Split(**{k: _explicit(v, n, k) for k, v in given.items()})
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        overlap = set(split.part(a)) & set(split.part(b))
        if overlap:
            raise DatasetError(f"{a} and {b} share rows (e.g. {min(overlap)}); splits must not overlap")
    if not split.train:
        raise DatasetError("the train part of the split is empty")
    return split


def _by_fraction(n: int, fractions: Mapping[str, float], seed: int) -> Split:
    for name, f in fractions.items():
        if not 0.0 <= f <= 1.0:
            raise DatasetError(f"{name} fraction must be in [0, 1], but got {f!r}")
    if sum(fractions.values()) > 1.0 + 1e-9:
        raise DatasetError(f"split fractions add up to {sum(fractions.values()):g}, more than 1")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    out: dict[str, tuple[int, ...]] = {}
    start = 0
    for name in SPLIT_PARTS:
        if name not in fractions:
            continue
        count = round(fractions[name] * n)
        out[name] = tuple(sorted(order[start:start + count]))
        start += count
    if not out.get("train"):
        raise DatasetError(f"train fraction {fractions['train']!r} of {n} rows gives no training rows")
    return Split(**out)
