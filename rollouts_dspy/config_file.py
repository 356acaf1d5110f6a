"""The TOML run config of the `rollouts-dspy` CLI: parsing and validation.

Every error is a ConfigError that names the file, the key and what was expected, e.g.
`run.toml: [dataset] train: expected a fraction (0.6), a list of row indices or a range "0:100", got true`.
Relative paths in the file are relative to the file's folder. The tables (docs/cli.md, "The run config"):

    [template]            system, user_template, few_shot = [{input, output}] | file = "best.json"
    [dataset]             path, format, inputs, label, train, val, test, seed, limit
    [scorer]              type = "exact_match" | "contains" | "numeric" | "regex" | "module:function", options
    [endpoint]            provider, model, api_base ("scripted" = the bundled offline server), ...
    [optimizer_endpoint]  the reflection/proposer model (same keys; defaults to [endpoint])
    [environment]         factory = "calculator" | "module:function"   (tool-using agent rollouts)
    [gepa] / [mipro]      passed to GEPAConfig / MIPROConfig (the split and checkpoint paths come from the CLI)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dtypes import Endpoint, ScoreFn
from .errors import ConfigError, DatasetError, ResultFileError, TemplateError
from .prompt_optimization.formatting import placeholders
from .prompt_optimization.types import FewShotExample, PromptTemplate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["SCRIPTED", "DatasetSpec", "EndpointSpec", "RunConfig", "load_config"]

SCRIPTED = "scripted"
"""`api_base = "scripted"`: start the bundled scripted OpenAI-compatible server and point the endpoint at it."""

_TABLES = ("template", "dataset", "scorer", "endpoint", "optimizer_endpoint", "environment", "gepa", "mipro")
_ENDPOINT_KEYS = ("provider", "model", "api_base", "api_key_env", "temperature", "max_tokens", "timeout",
                  "max_retries", "retry_backoff", "pricing", "extra_params")
_SET_BY_CLI = {
    "train_seeds": "the [dataset] split (train = ...)", "val_seeds": "the [dataset] split (val = ...)",
    "checkpoint_dir": "--out DIR (the checkpoint goes to DIR/checkpoint; resume with --resume)",
    "storage": "--out DIR (the Optuna study goes to DIR/checkpoint; resume with --resume)",
    "study": "`rollouts-dspy worker --storage URL --study NAME` (a shared study)",
}


class _Table:
    """One TOML table with typed getters whose errors name the file, the table and the key."""

    def __init__(self, file: Path, name: str, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{file}: [{name}] must be a table, got {data!r}")
        self.file, self.name, self.data = file, name, dict(data)

    def error(self, key: str, expected: str, got: Any = None, *, show_got: bool = True) -> ConfigError:
        suffix = f", got {got!r}" if show_got else ""
        return ConfigError(f"{self.file}: [{self.name}] {key}: expected {expected}{suffix}")

    def check_keys(self, allowed: tuple[str, ...] | set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                raise ConfigError(f"{self.file}: [{self.name}] {key}: unknown key; expected one of "
                                  f"{', '.join(sorted(allowed))}")

    def get(self, key: str, kind: type | tuple[type, ...], expected: str, default: Any = None,
            required: bool = False) -> Any:
        if key not in self.data:
            if required:
                raise self.error(key, expected + " (this key is required)", show_got=False)
            return default
        value = self.data[key]
        bad_bool = isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
        if bad_bool or not isinstance(value, kind):
            raise self.error(key, expected, value)
        return value

    def path(self, key: str, expected: str, required: bool = False) -> Path | None:
        raw = self.get(key, str, expected, required=required)
        if raw is None:
            return None
        path = Path(os.path.expanduser(raw))
        return path if path.is_absolute() else self.file.parent / path


@dataclass(frozen=True)
class EndpointSpec:
    """An endpoint as written in the config; `scripted` endpoints get their api_base when the CLI has started
    the scripted server. The API key is read from the environment (`api_key_env`), never from the file; without
    `api_key_env` litellm reads the provider's usual variable (and a local server needs none)."""

    params: Mapping[str, Any]
    scripted: bool = False
    api_key_env: str | None = None
    source: str = ""  # "run.toml: [endpoint]", for errors

    def build(self, scripted_base_url: str | None = None) -> Endpoint:
        params = dict(self.params)
        if self.scripted:
            if scripted_base_url is None:
                raise RuntimeError("scripted endpoint needs the scripted server's base URL")
            params["api_base"] = scripted_base_url
            params["api_key"] = SCRIPTED
        elif self.api_key_env:
            params["api_key"] = os.environ.get(self.api_key_env, "")
            if not params["api_key"]:
                # Named on purpose: falling back to the provider's own variable would use another key silently.
                raise ConfigError(f"{self.source} api_key_env = {self.api_key_env!r}: the environment variable "
                                  f"{self.api_key_env} is not set (export it, or remove api_key_env)")
        return Endpoint(**params)

    def preview(self) -> Endpoint:
        """The endpoint as it will be built, before the scripted server has started (its URL a placeholder)."""
        return self.build("http://127.0.0.1:1/v1")


@dataclass(frozen=True)
class DatasetSpec:
    path: Path
    format: str | None
    inputs: tuple[str, ...]
    label: str | None
    split: Mapping[str, Any]
    seed: int = 0
    limit: int | None = None


@dataclass(frozen=True)
class RunConfig:
    """A parsed, validated run config. Loading data, building the scorer and endpoints happen on demand."""

    file: Path
    template: PromptTemplate
    dataset: DatasetSpec
    scorer_type: str
    scorer_options: Mapping[str, Any]
    endpoint: EndpointSpec
    optimizer_endpoint: EndpointSpec
    environment: str | None = None
    methods: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def uses_scripted_server(self) -> bool:
        return self.endpoint.scripted or self.optimizer_endpoint.scripted

    def rows(self) -> list[dict[str, Any]]:
        """The dataset's rows, reduced to the input fields and the label; errors name the config file."""
        from .datasets import load_rows, project_rows

        try:
            rows = load_rows(self.dataset.path, self.dataset.format)
            if self.dataset.limit is not None:
                rows = rows[: self.dataset.limit]
            return project_rows(rows, self.dataset.inputs, self.dataset.label, source=str(self.dataset.path))
        except DatasetError as exc:
            raise ConfigError(f"{self.file}: [dataset] {exc}") from None

    def split(self, n_rows: int):  # -> datasets.Split
        from .datasets import split_indices

        try:
            return split_indices(n_rows, self.dataset.split, seed=self.dataset.seed)
        except DatasetError as exc:
            raise ConfigError(f"{self.file}: [dataset] {exc}") from None

    def score_fn(self) -> ScoreFn:
        from .scorers import load_callable, make_scorer

        try:
            if ":" in self.scorer_type:
                fn = load_callable(self.scorer_type, search_dir=self.file.parent)
                if not callable(fn):
                    raise ConfigError(f"{self.scorer_type!r} is not callable")
                return fn
            return make_scorer(self.scorer_type, **self.scorer_options)
        except ConfigError as exc:
            raise ConfigError(f"{self.file}: [scorer] type: {exc}") from None

    def executor(self, name: str) -> str:
        """The executor named on the command line; on Ray the config's own code travels to the workers by value."""
        if name == "ray":
            from .executors.ray_executor import ship_by_value

            ship_by_value([s.partition(":")[0] for s in (self.scorer_type, self.environment or "") if ":" in s])
        return name

    def environment_factory(self) -> Callable[[dict], Any] | None:
        if self.environment is None:
            return None
        if self.environment == "calculator":
            from .environments.calculator import CalculatorEnvironment

            return lambda row: CalculatorEnvironment()
        from .scorers import load_callable

        try:
            factory = load_callable(self.environment, search_dir=self.file.parent)
        except ConfigError as exc:
            raise ConfigError(f"{self.file}: [environment] factory: {exc}") from None
        if not callable(factory):
            raise ConfigError(f"{self.file}: [environment] factory: {self.environment!r} is not callable")
        return factory

    def method_config(self, method: str, train: tuple[int, ...], val: tuple[int, ...],
                      state_path: Path | None, overrides: Mapping[str, Any] | None = None) -> Any:
        """GEPAConfig/MIPROConfig from the [gepa]/[mipro] table plus the split and the checkpoint location (and
        `overrides`: fields the command sets, e.g. the worker's shared study). Unknown keys are reported here with
        file and key; bad values by the config class, prefixed likewise."""
        from dataclasses import fields

        cls, state_key = _method_class(method)
        table = _Table(self.file, method, self.methods.get(method, {}))
        allowed = {f.name for f in fields(cls) if f.init}
        for key in table.data:
            if key in _SET_BY_CLI:
                raise ConfigError(f"{self.file}: [{method}] {key}: set by {_SET_BY_CLI[key]}; remove it here")
            if key not in allowed:
                choices = ", ".join(sorted(allowed - set(_SET_BY_CLI)))
                raise ConfigError(f"{self.file}: [{method}] {key}: unknown key; {cls.__name__} takes {choices}")
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in table.data.items()}
        params.update(train_seeds=train, val_seeds=val)
        if state_path is not None and state_key in allowed:
            params[state_key] = str(state_path)
        params.update(overrides or {})
        try:
            return cls(**params)
        except (ConfigError, TypeError, ValueError) as exc:
            raise ConfigError(f"{self.file}: [{method}] {exc}") from None


def _method_class(method: str) -> tuple[type, str]:
    if method == "gepa":
        from .prompt_optimization.gepa import GEPAConfig

        return GEPAConfig, "checkpoint_dir"
    if method == "mipro":
        from .prompt_optimization.mipro import MIPROConfig

        return MIPROConfig, "checkpoint_dir"
    raise ConfigError(f"method must be 'gepa' or 'mipro', but got {method!r}")


def load_config(path: str | Path) -> RunConfig:
    """Parse and validate a run config file. ConfigError names the file, the key and what was expected."""
    file = Path(path)
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read: {exc}") from None
    for key in data:
        if key not in _TABLES:
            raise ConfigError(f"{file}: [{key}]: unknown table; expected some of {', '.join(_TABLES)}")
    for required in ("template", "dataset", "endpoint"):
        if required not in data:
            raise ConfigError(f"{file}: [{required}]: missing table (required)")
    template = _template(_Table(file, "template", data["template"]))
    dataset = _dataset(_Table(file, "dataset", data["dataset"]), template)
    scorer = _Table(file, "scorer", data.get("scorer", {"type": "exact_match"}))
    scorer_type = scorer.get("type", str, 'a built-in scorer name (exact_match, contains, numeric, regex) or '
                             '"module:function"', default="exact_match")
    options = {k: v for k, v in scorer.data.items() if k != "type"}
    if ":" in scorer_type and options:
        raise scorer.error(next(iter(options)), f"no options for a custom scorer {scorer_type!r} "
                           "(configure it in your code)", show_got=False)
    endpoint = _endpoint(_Table(file, "endpoint", data["endpoint"]))
    optimizer = (_endpoint(_Table(file, "optimizer_endpoint", data["optimizer_endpoint"]))
                 if "optimizer_endpoint" in data else endpoint)
    environment = None
    if "environment" in data:
        env = _Table(file, "environment", data["environment"])
        env.check_keys(("factory",))
        environment = env.get("factory", str, '"calculator" or "module:function"', required=True)
    methods = {m: dict(_Table(file, m, data[m]).data) for m in ("gepa", "mipro") if m in data}
    config = RunConfig(file, template, dataset, scorer_type, options, endpoint, optimizer, environment, methods)
    if ":" not in scorer_type:
        config.score_fn()  # unknown built-in names and bad options fail now, not after the server starts
    return config


def _template(table: _Table) -> PromptTemplate:
    table.check_keys(("system", "user_template", "few_shot", "file"))
    file = table.path("file", "a path to a saved template JSON")
    if file is not None:
        if len(table.data) > 1:
            raise table.error("file", "either file or system/user_template/few_shot, not both", show_got=False)
        from .io import load_template

        try:
            return load_template(file)
        except ResultFileError as exc:
            raise ConfigError(f"{table.file}: [template] file: {exc}") from None
    system = table.get("system", str, "a string (the system prompt)", required=True)
    user = table.get("user_template", str, 'a string with {field} placeholders, e.g. "Query: {query}"', required=True)
    try:
        names = placeholders(user)
    except TemplateError as exc:
        raise table.error("user_template", f"a valid template ({exc})", show_got=False) from None
    if not names:
        raise table.error("user_template", "at least one {field} placeholder naming a dataset input", user)
    shots = table.get("few_shot", list, "a list of {input = ..., output = ...} tables", default=[])
    examples = []
    for i, shot in enumerate(shots):
        if not isinstance(shot, Mapping) or not isinstance(shot.get("input"), str) \
                or not isinstance(shot.get("output"), str) or set(shot) - {"input", "output"}:
            raise table.error(f"few_shot[{i}]", "a table {input = \"...\", output = \"...\"}", shot)
        examples.append(FewShotExample(shot["input"], shot["output"]))
    return PromptTemplate(system=system, user_template=user, few_shot_examples=tuple(examples), id="initial")


def _dataset(table: _Table, template: PromptTemplate) -> DatasetSpec:
    table.check_keys(("path", "format", "inputs", "label", "train", "val", "test", "seed", "limit"))
    path = table.path("path", "a path to a .csv, .jsonl or .json file", required=True)
    assert path is not None
    fmt = table.get("format", str, '"csv", "jsonl" or "json"')
    if fmt is not None and fmt not in ("csv", "jsonl", "json"):
        raise table.error("format", '"csv", "jsonl" or "json"', fmt)
    used = placeholders(template.user_template)
    inputs = table.get("inputs", list, "a list of field names", default=list(used))
    if not inputs or not all(isinstance(x, str) and x for x in inputs):
        raise table.error("inputs", "a non-empty list of field names", inputs)
    missing = [name for name in used if name not in inputs]
    if missing:
        raise table.error("inputs", f"to include {missing[0]!r}, which [template] user_template uses", inputs)
    label = table.get("label", str, "the name of the field holding the expected answer")
    if label in inputs:
        raise table.error("label", "a field that is not also an input", label)
    split: dict[str, Any] = {}
    for part in ("train", "val", "test"):
        if part in table.data:
            split[part] = _split_part(table, part)
    if "train" not in split:
        raise table.error("train", 'a fraction (0.6), a list of row indices or a range "0:100" (required)',
                          show_got=False)
    seed = table.get("seed", int, "an integer (shuffle seed for fractional splits)", default=0)
    limit = table.get("limit", int, "a positive integer (use only the first N rows)")
    if limit is not None and limit < 1:
        raise table.error("limit", "a positive integer", limit)
    return DatasetSpec(path, fmt, tuple(inputs), label, split, seed, limit)


def _split_part(table: _Table, part: str) -> Any:
    value = table.data[part]
    expected = 'a fraction (0.6), a list of row indices or a range "0:100"'
    if isinstance(value, bool):
        raise table.error(part, expected, value)
    if isinstance(value, float):
        if not 0.0 <= value <= 1.0:
            raise table.error(part, "a fraction between 0 and 1", value)
        return value
    if isinstance(value, str) and ":" in value:
        return value
    if isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value):
        return value
    raise table.error(part, expected, value)


def _endpoint(table: _Table) -> EndpointSpec:
    if "api_key" in table.data:
        raise table.error("api_key", "no API key in a config file; set the provider's environment variable "
                          "(e.g. OPENAI_API_KEY) or name it with api_key_env", show_got=False)
    table.check_keys(_ENDPOINT_KEYS)
    params: dict[str, Any] = {
        "provider": table.get("provider", str, 'a provider name such as "openai"', required=True),
        "model": table.get("model", str, 'a model name such as "gpt-4o-mini"', required=True),
    }
    api_base = table.get("api_base", str, f'a URL, or "{SCRIPTED}" for the bundled offline server')
    scripted = api_base == SCRIPTED
    if api_base and not scripted:
        params["api_base"] = api_base
    for key, kind, expected in (
        ("temperature", (int, float), "a number in [0, 2]"),
        ("max_tokens", int, "a positive integer"),
        ("timeout", (int, float), "seconds > 0"),
        ("max_retries", int, "an integer >= 0"),
        ("retry_backoff", (int, float), "seconds >= 0"),
        ("extra_params", Mapping, "a table of extra litellm parameters"),
    ):
        if key in table.data:
            params[key] = table.get(key, kind, expected)
    if "pricing" in table.data:
        pricing = table.get("pricing", list, "[input, output] USD per million tokens")
        if len(pricing) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in pricing):
            raise table.error("pricing", "[input, output] USD per million tokens", pricing)
        params["pricing"] = (float(pricing[0]), float(pricing[1]))
    api_key_env = table.get("api_key_env", str, "the name of an environment variable holding the API key")
    try:  # validates every value now, with the file and table in the error (the key is read when the run starts)
        EndpointSpec(params, scripted).preview()
    except ValueError as exc:
        raise ConfigError(f"{table.file}: [{table.name}] {exc}") from None
    return EndpointSpec(params, scripted, api_key_env, f"{table.file}: [{table.name}]")
