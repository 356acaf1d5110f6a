"""The user documentation stays true to the code: every public name, event and exception has an entry in
docs/api.md, links between the pages resolve, the README's test command is what CI runs, and the README's
Python examples run offline as written."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import rollouts_dspy
from rollouts_dspy.prompt_optimization import events

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api.md"
README = ROOT / "README.md"


def _api_entries() -> set[str]:
    """Names that have a reference entry: a `### \\`name\\`` heading in docs/api.md."""
    return set(re.findall(r"^### `([A-Za-z_][A-Za-z0-9_]*)`\s*$", API.read_text(), flags=re.M))


def _package_exceptions() -> set[str]:
    """Every exception class the package defines under a public name, found by importing every module."""
    names = set()
    for info in pkgutil.walk_packages(rollouts_dspy.__path__, "rollouts_dspy."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name
                    and not name.startswith("_")):
                names.add(name)
    return names


def test_every_public_name_has_an_entry_in_the_api_reference():
    missing = sorted(set(rollouts_dspy.__all__) - _api_entries())
    assert missing == [], f"add a '### `name`' entry to docs/api.md for: {missing}"


def test_every_event_has_an_entry_in_the_api_reference():
    event_types = {cls.__name__ for cls in typing.get_args(events.Event)}
    assert "StepFinished" in event_types  # the union is how the events are enumerated; it must list them
    missing = sorted((event_types | {"Event", "Reporter", "LinePrinter"}) - _api_entries())
    assert missing == [], f"add a '### `name`' entry to docs/api.md for: {missing}"


def test_every_exception_has_an_entry_in_the_api_reference():
    exceptions = _package_exceptions()
    assert {"ConfigError", "ProviderUnavailableError", "LLMCallError"} <= exceptions  # the scan finds them
    missing = sorted(exceptions - _api_entries())
    assert missing == [], f"add a '### `name`' entry to docs/api.md (section Exceptions) for: {missing}"


def _doc_pages() -> list[Path]:
    return [README, ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_relative_links_between_the_pages_resolve():
    broken = []
    for page in _doc_pages():
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor on the same page
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_docs_refer_to_files_by_repository_relative_paths():
    absolute = [f"{page.relative_to(ROOT)}: {m}" for page in _doc_pages()
                for m in re.findall(r"(?<![\w.])/(?:work|home|tmp|Users)/[\w./-]+", page.read_text())]
    assert absolute == []


def test_the_readme_test_command_is_what_ci_runs():
    commands = re.findall(r"^(pip install .*&& python -m pytest.*)$", README.read_text(), flags=re.M)
    assert commands == ['pip install -e ".[dev]" && python -m pytest -q']
    assert commands[0] in (ROOT / ".ci" / "run").read_text().splitlines()


def _readme_python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.M | re.S)


def test_the_readme_is_short():
    assert len(README.read_text().splitlines()) <= 250
    assert len(_readme_python_blocks()) >= 2  # run_gepa and RolloutsGEPA quickstarts


@pytest.mark.parametrize("index", range(len(_readme_python_blocks())))
def test_readme_python_example_runs_offline_as_written(index, tmp_path):
    code = _readme_python_blocks()[index]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "DSPY_CACHEDIR": str(tmp_path / "dspy-cache")}
    for key in [k for k in env if k.endswith("_API_KEY")]:
        del env[key]  # the examples must not need a key
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # Every quickstart ends by printing the optimized instructions, which the scripted reflection model writes as
    # keyword rules; the initial prompts have none.
    assert "- If the query mentions" in done.stdout, done.stdout[-2000:]
