"""Bad input, one table: every case is a clear error (our exception type, a message naming the field or value)
raised before any LLM call (the provider sees zero requests)."""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import replace

import pytest
from reliability_helpers import DATA, WEAK, config_for, run

from rollouts_dspy.dtypes import Endpoint
from rollouts_dspy.errors import ConfigError, DatasetError, ScoreFnError, TemplateError
from rollouts_dspy.prompt_optimization.events import RunWarning

METHODS = ["gepa", "mipro"]


def returns_a_float(trajectory, sample):
    return 1.0


def annotated_float(trajectory, sample) -> float:
    return 1.0


async def async_returns_a_bool(trajectory, sample):
    return True


def config_file(tmp_path, method: str, table: str) -> object:
    from rollouts_dspy.config_file import load_config

    (tmp_path / "rows.jsonl").write_text('{"query": "hi", "intent": "x"}\n' * 10)
    path = tmp_path / "run.toml"
    path.write_text(textwrap.dedent("""
        [template]
        system = "Classify."
        user_template = "Query: {query}"
        [dataset]
        path = "rows.jsonl"
        inputs = ["query"]
        label = "intent"
        train = 0.5
        val = 0.5
        [endpoint]
        provider = "openai"
        model = "scripted-task"
        api_base = "scripted"
    """) + table)
    config = load_config(path)
    return config.method_config(method, (0, 1, 2), (3, 4), None)


# (id, action(method, server, tmp_path), exception type, fragments the message must contain)
CASES = [
    ("unknown_placeholder", lambda m, s, t: run(m, s, template=replace(WEAK, user_template="Query: {qurey}")),
     TemplateError, ["qurey"]),
    ("unbalanced_braces", lambda m, s, t: run(m, s, template=replace(WEAK, user_template="Query: {query")),
     TemplateError, ["unbalanced"]),
    ("positional_placeholder", lambda m, s, t: run(m, s, template=replace(WEAK, user_template="Query: {}")),
     TemplateError, ["{}"]),
    ("dataset_empty", lambda m, s, t: run(m, s, data=[]), DatasetError, ["empty"]),
    ("dataset_not_a_list", lambda m, s, t: run(m, s, data="query,intent\nhi,x"), DatasetError, ["str"]),
    ("dataset_rows_not_mappings", lambda m, s, t: run(m, s, data=[["hi", "x"]] * 40), DatasetError,
     ["row 0", "mapping"]),
    ("dataset_missing_field", lambda m, s, t: run(m, s, data=[{"q": r["query"], "intent": r["intent"]}
                                                             for r in DATA]),
     TemplateError, ["query"]),
    ("seed_out_of_range", lambda m, s, t: run(m, s, config_for(m, None, train_seeds=(0, 1, 99))), DatasetError,
     ["99"]),
    ("val_seed_out_of_range", lambda m, s, t: run(m, s, config_for(m, None, val_seeds=(40,))), DatasetError,
     ["val_seeds", "40"]),
    ("seed_duplicated", lambda m, s, t: config_for(m, None, train_seeds=(0, 1, 1)), ConfigError,
     ["train_seeds", "1"]),
    ("seed_negative", lambda m, s, t: config_for(m, None, train_seeds=(0, -3)), ConfigError, ["-3"]),
    ("seed_not_an_int", lambda m, s, t: config_for(m, None, train_seeds=(0, "1")), ConfigError, ["'1'"]),
    ("train_seeds_empty", lambda m, s, t: config_for(m, None, train_seeds=()), ConfigError, ["train_seeds"]),
    ("max_concurrent_zero", lambda m, s, t: config_for(m, None, max_concurrent=0), ConfigError,
     ["max_concurrent", "0"]),
    ("max_rollouts_zero", lambda m, s, t: config_for(m, None, max_rollouts=0), ConfigError, ["max_rollouts"]),
    ("max_cost_negative", lambda m, s, t: config_for(m, None, max_cost_usd=-1.0), ConfigError,
     ["max_cost_usd", "-1"]),
    ("minibatch_zero", lambda m, s, t: config_for(m, None, minibatch_size=0), ConfigError, ["minibatch_size"]),
    ("score_fn_not_callable", lambda m, s, t: run(m, s, score_fn="exact_match"), ScoreFnError, ["score_fn", "str"]),
    ("score_fn_returns_float", lambda m, s, t: run(m, s, score_fn=returns_a_float), ScoreFnError,
     ["Score", "float"]),
    ("score_fn_annotated_float", lambda m, s, t: run(m, s, score_fn=annotated_float), ScoreFnError, ["float"]),
    ("async_score_fn_returns_bool", lambda m, s, t: run(m, s, score_fn=async_returns_a_bool), ScoreFnError,
     ["Score", "bool"]),
    ("environment_factory_not_callable", lambda m, s, t: run(m, s, environment_factory="calculator"), TypeError,
     ["environment_factory", "str"]),
    ("max_cost_usd_on_an_unpriced_model", lambda m, s, t: run(m, s, config_for(m, None, max_cost_usd=1.0)),
     ConfigError, ["max_cost_usd", "scripted-task", "pricing"]),
    ("endpoint_unknown_provider", lambda m, s, t: Endpoint(provider="openia", model="gpt-4o-mini"), ValueError,
     ["openia"]),
    ("endpoint_negative_timeout", lambda m, s, t: Endpoint(provider="openai", model="x", timeout=-1), ValueError,
     ["timeout"]),
    ("config_file_wrong_type", lambda m, s, t: config_file(t, m, f"[{m}]\nseed = \"one\"\n"), ConfigError,
     ["run.toml", "seed", "one"]),
    ("config_file_unknown_key", lambda m, s, t: config_file(t, m, f"[{m}]\npopulaton_size = 4\n"), ConfigError,
     ["run.toml", "populaton_size", "unknown"]),
    ("config_file_unknown_table", lambda m, s, t: config_file(t, m, "[gepaa]\nseed = 1\n"), ConfigError,
     ["gepaa"]),
    ("config_file_api_key", lambda m, s, t: _config_with_key(t), ConfigError, ["api_key"]),
]

GEPA_ONLY = [
    ("population_size_zero", lambda s: config_for("gepa", None, population_size=0), ConfigError,
     ["population_size", "0"]),
    ("generations_zero", lambda s: config_for("gepa", None, generations=0), ConfigError, ["generations"]),
    ("mutation_rate_above_one", lambda s: config_for("gepa", None, mutation_rate=1.5), ConfigError,
     ["mutation_rate", "1.5"]),
    ("crossover_rate_negative", lambda s: config_for("gepa", None, crossover_rate=-0.1), ConfigError,
     ["crossover_rate", "-0.1"]),
    ("elite_size_not_below_population", lambda s: config_for("gepa", None, population_size=4, elite_size=4),
     ConfigError, ["elite_size", "population_size"]),
    ("reflection_minibatch_zero", lambda s: config_for("gepa", None, reflection_minibatch_size=0), ConfigError,
     ["reflection_minibatch_size"]),
]

MIPRO_ONLY = [
    ("num_candidates_zero", lambda s: config_for("mipro", None, num_candidates=0), ConfigError, ["num_candidates"]),
    ("num_trials_zero", lambda s: config_for("mipro", None, num_trials=0), ConfigError, ["num_trials"]),
    ("num_demo_sets_zero", lambda s: config_for("mipro", None, num_demo_sets=0), ConfigError, ["num_demo_sets"]),
    ("max_labeled_demos_negative", lambda s: config_for("mipro", None, max_labeled_demos=-1), ConfigError,
     ["max_labeled_demos"]),
]


def _config_with_key(tmp_path) -> object:
    from rollouts_dspy.config_file import load_config

    (tmp_path / "rows.jsonl").write_text('{"query": "hi", "intent": "x"}\n' * 4)
    path = tmp_path / "key.toml"
    path.write_text('[template]\nsystem = "s"\nuser_template = "{query}"\n[dataset]\npath = "rows.jsonl"\n'
                    'inputs = ["query"]\nlabel = "intent"\ntrain = 1.0\n[endpoint]\nprovider = "openai"\nmodel = "m"\n'
                    'api_key = "sk-in-the-file"\n')
    return load_config(path)


def table():
    for case_id, action, exc, fragments in CASES:
        for method in METHODS:
            yield pytest.param(method, action, exc, fragments, id=f"{method}-{case_id}")
    for case_id, action, exc, fragments in GEPA_ONLY:
        yield pytest.param("gepa", lambda m, s, t, a=action: a(s), exc, fragments, id=f"gepa-{case_id}")
    for case_id, action, exc, fragments in MIPRO_ONLY:
        yield pytest.param("mipro", lambda m, s, t, a=action: a(s), exc, fragments, id=f"mipro-{case_id}")


@pytest.mark.parametrize(("method", "action", "exc", "fragments"), list(table()))
async def test_bad_input_is_a_clear_error_before_any_llm_call(method, action, exc, fragments, server, tmp_path):
    with pytest.raises(exc) as caught:
        out = action(method, server, tmp_path)
        if inspect.isawaitable(out):
            await out
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "Traceback" not in message and len(message) < 600
    assert server.stats().requests_total == 0


@pytest.mark.parametrize("method", METHODS)
async def test_overlapping_train_and_validation_seeds_warn_but_run(method, server):
    events = []
    cfg = config_for(method, None, train_seeds=tuple(range(16)), val_seeds=tuple(range(12, 20)),
                     **({"generations": 1} if method == "gepa" else {"num_trials": 1}))
    with pytest.warns(UserWarning, match="12"):
        result = await run(method, server, cfg, reporter=events.append)
    warnings = [e.message for e in events if isinstance(e, RunWarning)]
    assert any("val_seeds" in w or "validation" in w for w in warnings), warnings
    assert result.best_template.score is not None


@pytest.mark.parametrize("teleprompter", ["gepa", "mipro"])
def test_a_dollar_budget_on_an_lm_dspy_cannot_price_is_refused(teleprompter, server):
    dspy = pytest.importorskip("dspy")
    from rollouts_dspy.dspy_integration.data import rows_to_examples
    from rollouts_dspy.dspy_integration.gepa import RolloutsGEPA
    from rollouts_dspy.dspy_integration.mipro import RolloutsMIPRO

    examples = rows_to_examples(DATA, ["query"])
    lm = dspy.LM("openai/scripted-task", api_base=server.base_url, api_key="scripted", cache=False)
    make = (lambda: RolloutsGEPA(reflection_lm=lm, max_cost_usd=1.0)) if teleprompter == "gepa" \
        else (lambda: RolloutsMIPRO(prompt_model=lm, task_model=lm, max_cost_usd=1.0))
    with dspy.context(lm=lm), pytest.raises(ConfigError, match="max_cost_usd"):
        make().compile(dspy.Predict("query -> intent"), trainset=examples[:12], valset=examples[12:20])
    assert server.stats().requests_total == 0
