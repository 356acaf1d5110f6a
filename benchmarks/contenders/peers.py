"""The peers: dspy.GEPA, dspy.MIPROv2 and gepa.optimize, each with its own defaults except budget, threads, seed.

Every peer gets only the world's training rows (no valset), which is what its own default then does with them:
dspy.GEPA and gepa.optimize use the trainset as their validation set; dspy.MIPROv2 keeps the first 20% to
bootstrap demos and validates on the last 80%. Budgets: dspy.GEPA and gepa.optimize take `max_metric_calls` = the
budget (they count every metric call, validation included, as we count rollouts; both may overshoot by the
evaluation in progress). dspy.MIPROv2 has no rollout budget; `mipro_settings` picks the trial count whose
expected task calls come closest to the budget, and the table reports what it really used.
"""

from __future__ import annotations

from typing import Any

from ..breakdown import dspy_gepa_breakdown
from ..metering import METER
from ..worlds import World
from . import Contender, ContenderResult, RunContext

__all__ = ["CONTENDERS", "mipro_settings"]

_DSPY_NO_TOOLS = (
    "the scripted server plays the calculator only through OpenAI tool calls (the request's `tools` field); "
    "dspy.ReAct and DSPy adapters send tools as text fields, so this world cannot be expressed for DSPy programs"
)


def _no_tools_for_dspy(world: World) -> str | None:
    return _DSPY_NO_TOOLS if world.uses_tools else None


def _importable(module: str) -> Any:
    def check() -> str | None:
        try:
            __import__(module)
        except ImportError as exc:  # the peers are benchmark-only dependencies (pip install -e .[bench])
            return f"{module} is not installed ({exc})"
        return None

    return check


def _dspy_setup(ctx: RunContext):
    import dspy

    from ..dspy_side import IntentProgram, RecordPrograms, examples, make_lm, make_metrics

    task_lm = make_lm(ctx.base_url, "scripted-task", concurrency=ctx.concurrency)
    reflect_lm = make_lm(ctx.base_url, "scripted-reflect", concurrency=ctx.concurrency)
    dspy.configure(lm=task_lm, callbacks=[RecordPrograms()])
    world = ctx.world
    return task_lm, reflect_lm, make_metrics(world), IntentProgram(world.instruction), examples(world, world.train)


def run_dspy_gepa(ctx: RunContext) -> ContenderResult:
    import dspy

    from ..dspy_side import program_spec

    _task_lm, reflect_lm, (_, feedback_metric), student, trainset = _dspy_setup(ctx)
    optimizer = dspy.GEPA(metric=feedback_metric, max_metric_calls=ctx.budget, reflection_lm=reflect_lm,
                          num_threads=ctx.concurrency, seed=ctx.seed, track_stats=True,
                          warn_on_score_mismatch=False)
    compiled = optimizer.compile(student, trainset=trainset)
    details = getattr(compiled, "detailed_results", None)
    extra: dict[str, Any] = {}
    if details is not None:
        calls = int(details.total_metric_calls or 0)
        extra = {"candidates": len(details.candidates), "total_metric_calls": calls,
                 "breakdown": dspy_gepa_breakdown(details, len(trainset), calls)}
    return ContenderResult(program_spec(compiled), extra)


BOOTSTRAP_ROWS_PER_SET = 40
"""Expected task calls of one bootstrapped demo set: BootstrapFewShot runs the student over the shuffled rows until
it has its demos (up to 4 successes); with a weak start that succeeds ~10% of the time, about 40 rows."""


def mipro_settings(budget: int, n_train: int) -> dict[str, int]:
    """MIPROv2 knobs (num_candidates as its `auto="light"`, 6) whose expected task calls come closest to `budget`.

    With valset=None MIPROv2 bootstraps on the first 20% of the rows and validates on the last 80%. Expected
    calls: num_candidates + 1 bootstrapped demo sets, the full evaluations (the start, one every
    `minibatch_full_eval_steps` trials, one at the end) and a minibatch per trial."""
    num_candidates, full_every = 6, 5
    n_val = min(1000, max(1, int(n_train * 0.8)))
    n_boot = n_train - n_val
    minibatch = min(35, n_val)
    bootstrap = (num_candidates + 1) * min(n_boot, BOOTSTRAP_ROWS_PER_SET)
    best_trials, best_gap = 1, None
    for trials in range(1, 400):
        full_evals = trials // full_every + 1 + (1 if trials % full_every else 0)
        expected = bootstrap + trials * minibatch + full_evals * n_val
        gap = abs(expected - budget)
        if best_gap is None or gap < best_gap:
            best_trials, best_gap = trials, gap
    return {"num_candidates": num_candidates, "num_trials": best_trials, "minibatch_size": minibatch,
            "minibatch_full_eval_steps": full_every}


def run_dspy_mipro(ctx: RunContext) -> ContenderResult:
    import dspy

    from ..dspy_side import program_spec

    task_lm, reflect_lm, (score_metric, _), student, trainset = _dspy_setup(ctx)
    knobs = mipro_settings(ctx.budget, len(trainset))
    optimizer = dspy.MIPROv2(metric=score_metric, prompt_model=reflect_lm, task_model=task_lm, auto=None,
                             num_candidates=knobs["num_candidates"], num_threads=ctx.concurrency, seed=ctx.seed,
                             verbose=False)
    compiled = optimizer.compile(student, trainset=trainset, num_trials=knobs["num_trials"],
                                 minibatch_size=knobs["minibatch_size"],
                                 minibatch_full_eval_steps=knobs["minibatch_full_eval_steps"],
                                 requires_permission_to_run=False)
    return ContenderResult(program_spec(compiled), {"settings": knobs})


def run_gepa_package(ctx: RunContext) -> ContenderResult:
    import gepa
    from gepa.adapters.default_adapter.default_adapter import DefaultAdapter, EvaluationResult

    from ..evaluator import messages_spec

    world = ctx.world

    class RecordingAdapter(DefaultAdapter):
        def evaluate(self, batch, candidate, capture_traces=False):  # noqa: ANN001 - gepa's signature
            METER.see(messages_spec([{"role": "system", "content": candidate["system_prompt"]}]))
            return super().evaluate(batch, candidate, capture_traces)

    def evaluator(data: dict[str, Any], response: str) -> EvaluationResult:
        METER.count()
        score, feedback = world.judge(response, data["answer"])
        return EvaluationResult(score=score, feedback=feedback, objective_scores=None)

    server = {"api_base": ctx.base_url, "api_key": "scripted"}
    adapter = RecordingAdapter(model="openai/scripted-task", evaluator=evaluator, max_litellm_workers=ctx.concurrency,
                               litellm_batch_completion_kwargs=dict(server))

    def rows(split: Any) -> list[dict[str, Any]]:
        return [{"input": world.user_message(r), "answer": r[world.label_field], "additional_context": {}}
                for r in split]

    result = gepa.optimize(seed_candidate={"system_prompt": world.instruction}, trainset=rows(world.train),
                           adapter=adapter, reflection_lm="openai/scripted-reflect",
                           reflection_lm_kwargs=dict(server), max_metric_calls=ctx.budget, seed=ctx.seed)
    final = result.best_candidate["system_prompt"]
    calls = int(result.total_metric_calls or 0)
    return ContenderResult(messages_spec([{"role": "system", "content": final}]),
                           {"candidates": len(result.candidates), "total_metric_calls": calls,
                            "breakdown": dspy_gepa_breakdown(result, len(world.train), calls)})


CONTENDERS = [
    Contender("dspy.GEPA", "gepa", False, "dspy", run_dspy_gepa, _no_tools_for_dspy, _importable("dspy"),
              validation="valset=None: dspy.GEPA uses the trainset as its validation set"),
    Contender("gepa.optimize", "gepa", False, "messages", run_gepa_package,
              lambda w: ("gepa's DefaultAdapter is single-turn text (no tool loop); a custom adapter would be a "
                         "different contender" if w.uses_tools else None),
              _importable("gepa"), validation="valset=None: gepa uses the trainset as its validation set"),
    Contender("dspy.MIPROv2", "mipro", False, "dspy", run_dspy_mipro, _no_tools_for_dspy, _importable("dspy"),
              validation="valset=None: MIPROv2 bootstraps on the first 20% of the rows, validates on the last 80%"),
]
