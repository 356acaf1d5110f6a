"""The measuring instrument's own parts: dependent rounds, the results store and resume, subset planning, the seed
separation, world draws, the budget breakdown and the goal verdicts. Fast: no optimizer runs here."""

from __future__ import annotations

import concurrent.futures
import json
from types import SimpleNamespace

import pytest

from benchmarks import goals
from benchmarks.breakdown import records_breakdown
from benchmarks.critical_path import rounds
from benchmarks.presets import PRESETS, REPORT_SEEDS, TUNING_SEEDS
from benchmarks.run import _todo, main, plan
from benchmarks.store import append, load, merge, run_key


# -- dependent rounds --------------------------------------------------------------------------------------------
def test_rounds_of_a_chain_a_batch_and_a_slot_limited_batch():
    chain = [(i, i + 0.9) for i in range(5)]  # each request starts after the previous one finished
    batch = [(0.0, 1.0)] * 8  # all at once
    limited = [(0.0, 1.0)] * 4 + [(1.1, 2.0)] * 4  # 8 requests through 4 slots
    assert rounds(chain)["rounds"] == 5
    assert rounds(batch)["rounds"] == 1
    assert rounds(limited)["rounds"] == 2
    assert rounds([]) == {"rounds": 0, "requests": 0}


def test_rounds_follow_the_longest_dependency_not_the_request_count():
    # a long request overlapping a chain of three short ones: depth is the chain's, then one more after both
    spans = [(0, 3.5), (0, 1), (1.1, 2), (2.1, 3), (3.6, 4)]
    assert rounds(spans)["rounds"] == 4


def test_metered_server_counts_sequential_and_concurrent_requests():
    import threading
    import urllib.request

    from benchmarks.metered_server import MeteredServer

    def ask(server, barrier=None):
        body = json.dumps({"model": "scripted-task", "messages": [{"role": "user", "content": "Query: hi"}]})
        request = urllib.request.Request(f"{server.base_url}/chat/completions", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        if barrier is not None:
            barrier.wait()  # all four are sent together, well inside one latency
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    with MeteredServer(latency=0.3) as server:
        ask(server)
        ask(server)
        assert server.stats().to_dict()["critical_path"]["rounds"] == 2
        server.reset_stats()
        barrier = threading.Barrier(4)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: ask(server, barrier), range(4)))
        path = server.stats().to_dict()["critical_path"]
        assert path["requests"] == 4 and path["rounds"] == 1


# -- the store: append, last wins, resume by code hash, merge -----------------------------------------------------
def _record(**kw):
    base = {"suite": "quality", "world": "banking77-20", "budget": 1500, "contender": "run_gepa", "seed": 0,
            "concurrency": 16, "latency": 0.05, "code_hash": "abc", "final_val": 0.3}
    return {**base, **kw}


def test_store_keeps_the_last_line_of_a_key_and_skips_a_torn_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    append(path, _record(final_val=0.1))
    append(path, _record(final_val=0.2))
    append(path, _record(seed=1))
    with open(path, "a") as f:
        f.write('{"suite": "quality", "wor')  # a run killed mid-write
    stored = load(path)
    assert len(stored) == 2 and stored[run_key(_record())]["final_val"] == 0.2


def test_resume_reruns_errors_and_runs_of_other_code(tmp_path, monkeypatch):
    import benchmarks.run as run_module

    monkeypatch.setattr(run_module, "code_hash", lambda root: "abc")
    specs = [_record(seed=s) for s in range(4)]
    stored = {run_key(r): r for r in (_record(seed=0), _record(seed=1, code_hash="old"),
                                      _record(seed=2, error="boom"))}
    assert [s["seed"] for s in _todo(specs, stored, fresh=False)] == [1, 2, 3]
    assert [s["seed"] for s in _todo(specs, stored, fresh=False, any_code=True)] == [2, 3]
    assert [s["seed"] for s in _todo(specs, stored, fresh=True)] == [0, 1, 2, 3]


def test_merge_adds_missing_and_failed_runs_only(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    append(a, _record(seed=0, final_val=0.5))
    append(a, _record(seed=1, error="boom"))
    append(b, _record(seed=0, final_val=0.9))
    append(b, _record(seed=1, final_val=0.4))
    append(b, _record(seed=2, final_val=0.3))
    assert merge(a, [b]) == 2
    stored = load(a)
    assert stored[run_key(_record(seed=0))]["final_val"] == 0.5 and "error" not in stored[run_key(_record(seed=1))]


# -- planning and the seed separation ------------------------------------------------------------------------------
def test_plan_runs_the_requested_subset_with_every_contender_on_the_same_cell(banking77_dir):
    specs, skipped = plan(PRESETS["quality"], {"worlds": {"banking77-20"}, "budgets": {1500}, "seeds": {0, 1},
                                              "contenders": {"run_gepa", "dspy.GEPA"}, "suites": None})
    assert {(s["contender"], s["seed"]) for s in specs} == {("run_gepa", 0), ("run_gepa", 1), ("dspy.GEPA", 0),
                                                           ("dspy.GEPA", 1)}
    assert {(s["world"], s["budget"], s["concurrency"], s["latency"]) for s in specs} == {("banking77-20", 1500, 16,
                                                                                          0.05)}
    assert not skipped


def test_reporting_presets_use_report_seeds_and_refuse_tuning_seeds(capsys):
    for name in ("quality", "wallclock", "full"):
        assert all(set(s.seeds) <= set(REPORT_SEEDS) for s in PRESETS[name].suites)
    assert all(set(s.seeds) == set(TUNING_SEEDS) for s in PRESETS["tuning"].suites)
    assert main(["--preset", "quality", "--seeds", "tuning", "--plan"]) == 2
    assert "tuning seeds" in capsys.readouterr().err


def test_the_quality_preset_is_the_issues_grid():
    quality = next(s for s in PRESETS["quality"].suites if s.name == "quality")
    assert quality.worlds == ("banking77-20", "banking77-77") and quality.budgets == (1500, 3000)
    assert quality.seeds == REPORT_SEEDS and quality.concurrency == 16 and quality.contenders is None


# -- worlds ----------------------------------------------------------------------------------------------------------
def test_worlds_are_drawn_by_the_seed_with_disjoint_splits(banking77_dir):
    from benchmarks.worlds import make_world

    a, again, other = make_world("banking77-20", 0), make_world("banking77-20", 0), make_world("banking77-20", 1)
    assert a.train == again.train and a.val == again.val and a.train != other.train
    assert len(a.train) == 300 and len(a.val) == 200
    assert len({r["intent"] for r in a.train + a.val}) == 20
    assert not {r["query"] for r in a.train} & {r["query"] for r in a.val}
    full = make_world("banking77-77", 0)
    assert len({r["intent"] for r in full.train}) > 60


# -- budget breakdown ----------------------------------------------------------------------------------------------
def test_breakdown_splits_rollouts_into_initial_minibatch_full_and_validation():
    train, val = tuple(range(10)), (10, 11)

    def rec(origin, train_idx, val_idx=()):
        return SimpleNamespace(origin=origin, train_scores={i: 0.0 for i in train_idx},
                               val_scores={i: 0.0 for i in val_idx})

    records = [rec("initial", train, val), rec("mutation", range(4)), rec("mutation", train, val)]
    out = records_breakdown(records, train, val, minibatch_size=4, rollouts_used=30)
    assert (out["initial"], out["minibatch"], out["full"], out["validation"]) == (10, 8, 6, 4)
    assert (out["children"], out["full_children"], out["other"]) == (2, 1, 2)


def test_breakdown_with_a_pareto_set_counts_samples_outside_it_as_minibatch_rollouts():
    train, pareto = tuple(range(10)), (0, 1, 2, 3)

    def rec(origin, train_idx, val_idx=()):
        return SimpleNamespace(origin=origin, train_scores={i: 0.0 for i in train_idx},
                               val_scores={i: 0.0 for i in val_idx})

    # the start on the Pareto set and, as a parent, on a gating minibatch; an accepted and a rejected child
    records = [rec("initial", (0, 1, 2, 3, 7, 8), (20, 21)), rec("mutation", (0, 1, 2, 3, 7, 8), (20, 21)),
               rec("mutation", (7, 8))]
    out = records_breakdown(records, train, (), minibatch_size=2, rollouts_used=20, compared_on=pareto)
    assert (out["initial"], out["minibatch"], out["full"], out["validation"]) == (4, 6, 4, 4)
    assert (out["children"], out["full_children"], out["other"]) == (2, 1, 2)


# -- goal verdicts -------------------------------------------------------------------------------------------------
def _row(contender, gain, seeds=6, over=0, final=0.3, rollouts=1500, runs=()):
    return {"suite": "quality", "world": "banking77-20", "budget": 3000, "contender": contender, "final_mean": final,
            "gain_mean": gain, "seeds": list(range(seeds)), "over_budget": over, "task_calls": rollouts,
            "rollouts": rollouts, "runs": list(runs), "concurrency": 16, "latency": 0.05}


@pytest.mark.parametrize("rows, verdict", [
    ([_row("RolloutsGEPA", 9.0), _row("run_gepa", 8.5)], "met"),
    ([_row("RolloutsGEPA", 9.0), _row("run_gepa", 7.9)], "**NOT met**"),
    ([_row("RolloutsGEPA", 9.0, over=1), _row("run_gepa", 9.0)], "**NOT met**"),  # over budget on a seed
    ([_row("RolloutsGEPA", 9.0, seeds=5), _row("run_gepa", 9.0)], "n/a"),  # the goal is a mean of six seeds
    ([_row("RolloutsGEPA", 9.0)], "n/a"),
])
def test_gain_goal_verdicts(rows, verdict):
    line = goals._gain_goal(goals.Rows(rows), "g", "banking77-20", 3000, goals.GEPA_OURS, 8.0)
    assert line[-1] == verdict


def test_reach_goal_compares_seed_by_seed_with_dspy_gepa():
    peer = _row("dspy.GEPA", 2.0, runs=[{"seed": s, "final_val": 0.25, "rollouts": 3000} for s in range(6)])
    fast = [{"seed": s, "discoveries": [[100, 0.1], [1200, 0.26]]} for s in range(6)]
    slow = [{"seed": s, "discoveries": [[100, 0.1], [1600, 0.26]]} for s in range(6)]
    met = goals._reach_goal(goals.Rows([peer, _row("RolloutsGEPA", 5, runs=fast), _row("run_gepa", 5, runs=fast)]),
                            "banking77-20", 3000)
    missed = goals._reach_goal(goals.Rows([peer, _row("RolloutsGEPA", 5, runs=fast), _row("run_gepa", 5, runs=slow)]),
                               "banking77-20", 3000)
    assert met[-1] == "met" and missed[-1] == "**NOT met**"
    assert goals.reach([[50, 0.1], [10, 0.3]], 0.3) == 10 and goals.reach([[5, 0.1]], 0.3) is None


def test_latency_projection_keeps_the_measured_point_and_adds_rounds_times_latency():
    row = {"latency": 0.05, "wall_s": 10.0, "rounds": 100}
    assert goals._project(row, 0.05) == 10.0
    assert goals._project(row, 2.0) == pytest.approx(5.0 + 200.0)


def test_placeholder_rows_say_not_available_instead_of_a_number():
    suite = {"name": "quality", "worlds": ["banking77-20"], "budgets": [1500, 3000], "concurrency": 16,
             "latency": 0.05}
    data = {"rows": [], "suites": {"quality": suite}, "scale": []}
    quality = goals._quality_goals(data)
    multi = next(r for r in quality if r[0].startswith("multi-objective"))
    assert "not in this preset" in multi[2 + goals.ALL.index("run_gepa")] and multi[-1] == "n/a"
    text = json.dumps(goals._wallclock_goals(data))
    assert "not available yet" in text


def test_overhead_rows_use_the_llm_layer_record_when_there_is_one():
    suite = {"name": "quality", "worlds": ["banking77-20"], "budgets": [1500], "concurrency": 16, "latency": 0.05}
    cpu_row = {**_row("run_gepa", 9.0), "budget": 1500, "cpu_ms_per_task_call": 2.5}
    data = {"rows": [cpu_row], "suites": {"quality": suite},
            "scale": [{"engine": "gepa", "samples": 10_000, "population": 20, "peak_rss_mb": 140.0}],
            "overhead": {"session": {"cpu_ms_per_call": 1.2, "peak_rss_mb": 120.0, "rss_after_import_mb": 100.0},
                         "cli": [{"command": "rollouts-dspy --help", "wall_s": 0.4},
                                 {"command": "rollouts-dspy show", "wall_s": 1.3}]}}
    cpu, memory, cli = goals._overhead_goals(data)
    assert cpu[-1] == "met" and "1.20 ms" in " ".join(cpu)
    assert memory[-1] == "met" and "140 MB" in " ".join(memory)
    assert cli[-1] == "**NOT met**" and "show: 1.30 s" in cli[2]


def test_a_score_fn_probe_before_the_first_task_request_is_not_a_rollout():
    from benchmarks.metering import Meter

    meter, requests = Meter(), []
    meter.started = lambda: bool(requests)
    meter.count()  # the front door's preflight probe: no task request yet
    requests.append("task")
    meter.count()
    meter.count()
    assert (meter.metric_calls, meter.probes) == (2, 1)
