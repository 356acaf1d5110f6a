"""Dataset files and splits."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollouts_dspy.datasets import load_rows, project_rows, split_indices
from rollouts_dspy.errors import DatasetError

ROWS = [{"text": "a", "category": "x", "extra": 1}, {"text": "b", "category": "y", "extra": 2}]


def test_load_csv_jsonl_json(tmp_path):
    (tmp_path / "d.csv").write_text("text,category,extra\na,x,1\nb,y,2\n")
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS) + "\n")
    (tmp_path / "d.json").write_text(json.dumps(ROWS))
    (tmp_path / "wrapped.json").write_text(json.dumps({"rows": ROWS, "name": "x"}))
    assert load_rows(tmp_path / "d.csv") == [{"text": "a", "category": "x", "extra": "1"},
                                              {"text": "b", "category": "y", "extra": "2"}]
    assert load_rows(tmp_path / "d.jsonl") == ROWS
    assert load_rows(tmp_path / "d.json") == ROWS
    assert load_rows(tmp_path / "wrapped.json") == ROWS
    (tmp_path / "d.txt").write_text(json.dumps(ROWS))
    assert load_rows(tmp_path / "d.txt", "json") == ROWS


@pytest.mark.parametrize(("name", "content", "message"), [
    ("bad.jsonl", '{"a": 1}\n{oops\n', "line 2 is not valid JSON"),
    ("bad.json", '{"a": 1}', "exactly one list"),
    ("rows.json", "[1, 2]", "row 0 must be an object"),
    ("empty.jsonl", "\n", "has no rows"),
    ("data.txt", "x", "cannot tell the format"),
])
def test_bad_files(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_rows(tmp_path / name)


def test_missing_file_and_bad_format(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_rows(tmp_path / "nope.csv")
    with pytest.raises(DatasetError, match="format must be one of"):
        load_rows(tmp_path / "nope.csv", "xml")


def test_project_rows_keeps_inputs_and_label():
    assert project_rows(ROWS, ["text"], "category") == [{"text": "a", "category": "x"},
                                                         {"text": "b", "category": "y"}]
    with pytest.raises(DatasetError, match="row 0 has no field 'label'"):
        project_rows(ROWS, ["text"], "label")


def test_split_by_fractions_is_seeded_and_disjoint():
    a = split_indices(100, {"train": 0.5, "val": 0.3, "test": 0.2}, seed=1)
    b = split_indices(100, {"train": 0.5, "val": 0.3, "test": 0.2}, seed=1)
    c = split_indices(100, {"train": 0.5, "val": 0.3, "test": 0.2}, seed=2)
    assert a == b and a != c
    assert (len(a.train), len(a.val), len(a.test)) == (50, 30, 20)
    assert set(a.train).isdisjoint(a.val) and set(a.val).isdisjoint(a.test)


def test_split_by_indices_and_ranges():
    s = split_indices(10, {"train": "0:6", "val": [6, 7], "test": "8:"})
    assert s.train == tuple(range(6)) and s.val == (6, 7) and s.test == (8, 9)
    assert s.part("val") == (6, 7)


@pytest.mark.parametrize(("parts", "message"), [
    ({"train": 0.5, "val": [1]}, "not a mix"),
    ({"train": 0.8, "val": 0.3}, "add up to 1.1"),
    ({"val": 0.3}, "needs a train part"),
    ({"train": "0:5", "val": "4:6"}, "share rows"),
    ({"train": [0, 99]}, "integers in 0..9"),
    ({"train": "a:b"}, "range must look like"),
    ({"train": "0:20"}, "0 <= start <= stop <= 10"),
    ({"train": 0.01}, "gives no training rows"),
    ({"train": 0.5, "dev": 0.1}, "unknown split part 'dev'"),
    ({"train": [1, 1]}, "duplicates"),
])
def test_bad_splits(parts, message):
    with pytest.raises(DatasetError, match=message):
        split_indices(10, parts)


@given(n=st.integers(1, 300), train=st.floats(0.1, 0.6), val=st.floats(0, 0.4), seed=st.integers(0, 5))
def test_fraction_splits_never_overlap_and_stay_in_range(n, train, val, seed):
    try:
        s = split_indices(n, {"train": train, "val": val}, seed=seed)
    except DatasetError:
        return
    assert set(s.train).isdisjoint(s.val)
    assert all(0 <= i < n for i in (*s.train, *s.val))
