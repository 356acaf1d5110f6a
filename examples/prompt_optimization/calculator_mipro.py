"""MIPRO on the tool-using calculator task (the spec's second example).

Each sample is an arithmetic word problem ("Start with 12. Add 7. Multiply by 3."), generated with a seed. The task
model runs as an agent with a fresh `CalculatorEnvironment` per sample (add, subtract, multiply, divide, clear,
complete_task); the score checks the number it reports with complete_task. MIPRO searches instructions and
few-shot demos (bootstrapped from successful agent runs, tool calls included) jointly.

    # offline, against the bundled scripted server (no API key):
    python examples/prompt_optimization/calculator_mipro.py
    # a real provider (OPENAI_API_KEY in the environment; or set ROLLOUTS_DSPY_REAL=1):
    python examples/prompt_optimization/calculator_mipro.py --real --model gpt-4o-mini
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from rollouts_dspy.dtypes import Endpoint, Metric, Sample, Score, Trajectory
from rollouts_dspy.environments.calculator import CalculatorEnvironment
from rollouts_dspy.io import save_result, save_template
from rollouts_dspy.prompt_optimization.evaluation import evaluate_template
from rollouts_dspy.prompt_optimization.mipro import MIPROConfig, run_mipro
from rollouts_dspy.prompt_optimization.types import PromptTemplate
from rollouts_dspy.scorers import answer_text
from rollouts_dspy.testing.worlds import generate_arithmetic_problems

TEMPLATE = PromptTemplate(
    system="Solve the arithmetic word problem and report the final number with complete_task.",
    user_template="{problem}",
)


def score_fn(trajectory: Trajectory, sample: Sample) -> Score:
    """1 when the reported number is within 1e-6 of the answer. The answer is complete_task's argument."""
    reported = answer_text(trajectory).strip()
    expected = sample.ground_truth
    try:
        correct = abs(float(reported) - float(expected)) <= 1e-6
    except (TypeError, ValueError):
        correct = reported.lower() == str(expected).lower()
    feedback = f"correct: {expected}" if correct else f"expected: {expected}, got: {reported or '(nothing)'}"
    return Score(metrics=(Metric("correct", 1.0 if correct else 0.0),), feedback=feedback)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", action="store_true", default=os.environ.get("ROLLOUTS_DSPY_REAL") == "1",
                   help="use a real provider instead of the scripted server (or ROLLOUTS_DSPY_REAL=1)")
    p.add_argument("--model", default=os.environ.get("ROLLOUTS_DSPY_MODEL", "gpt-4o-mini"),
                   help="the real model (provider openai; default gpt-4o-mini)")
    p.add_argument("--train", type=int, default=40, help="training problems")
    p.add_argument("--val", type=int, default=30, help="validation problems")
    p.add_argument("--test", type=int, default=50, help="held-out problems scored before and after")
    p.add_argument("--trials", type=int, default=10, help="Optuna trials")
    p.add_argument("--candidates", type=int, default=4, help="instruction candidates (the initial one included)")
    p.add_argument("--seed", type=int, default=0, help="seeds the problems and the search")
    p.add_argument("--out", type=Path, default=None, help="write best.json and result.json here")
    return p.parse_args(argv)


async def optimize(args: argparse.Namespace, endpoint: Endpoint, proposer: Endpoint) -> None:
    n = args.train + args.val + args.test
    dataset = generate_arithmetic_problems(n, seed=args.seed)
    train = tuple(range(args.train))
    val = tuple(range(args.train, args.train + args.val))
    test = list(range(args.train + args.val, n))
    config = MIPROConfig(
        num_candidates=args.candidates, num_trials=args.trials, max_bootstrapped_demos=2, max_labeled_demos=0,
        num_demo_sets=3, minibatch_size=min(10, args.train), train_seeds=train, val_seeds=val, seed=args.seed,
    )
    result = await run_mipro(TEMPLATE, config, dataset, endpoint, proposer, score_fn,
                             environment_factory=lambda row: CalculatorEnvironment())
    best = result.best_template
    print(f"\nbest validation score: {best.score:.3f} after {result.rollouts_used} rollouts")
    if test:
        env = lambda row: CalculatorEnvironment()  # noqa: E731 - a fresh environment per sample
        before = await evaluate_template(TEMPLATE, test, dataset, endpoint, score_fn, env)
        after = await evaluate_template(best, test, dataset, endpoint, score_fn, env)
        print(f"held-out test accuracy ({len(test)} problems): initial {before.score:.3f} -> "
              f"optimized {after.score:.3f}")
    print(f"\noptimized instruction:\n{best.system}\n({len(best.few_shot_examples)} few-shot demos, "
          f"{sum(len(d.messages) for d in best.few_shot_examples)} tool-call messages in them)")
    if args.out is not None:
        save_template(best, args.out / "best.json")
        save_result(result, args.out / "result.json")
        print(f"\nsaved {args.out / 'best.json'} and {args.out / 'result.json'}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.real:
        endpoint = Endpoint(provider="openai", model=args.model)  # key from OPENAI_API_KEY, never written anywhere
        asyncio.run(optimize(args, endpoint, endpoint))
        return
    from rollouts_dspy.testing import ScriptedServer

    with ScriptedServer() as server:
        task = Endpoint(provider="openai", model="scripted-task", api_base=server.base_url, api_key="scripted")
        proposer = Endpoint(provider="openai", model="scripted-proposer", api_base=server.base_url,
                            api_key="scripted")
        asyncio.run(optimize(args, task, proposer))


if __name__ == "__main__":
    main()
