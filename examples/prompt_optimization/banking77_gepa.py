"""GEPA on Banking77 intent classification (the spec's first example).

The repository ships no Banking77: pass the folder holding its `train.csv` / `test.csv` (columns `text,category`)
and optionally `categories.json`. The CSVs are read with DSPy's data-loading conventions
(`dspy.datasets.DataLoader().from_csv`, which needs the `datasets` package; without it the same `dspy.Example`s are
built with the csv module).

    # offline, against the bundled scripted server (no API key):
    python examples/prompt_optimization/banking77_gepa.py --data path/to/banking77
    # a real provider (OPENAI_API_KEY in the environment; or set ROLLOUTS_DSPY_REAL=1):
    python examples/prompt_optimization/banking77_gepa.py --data path/to/banking77 --real --model gpt-4o-mini
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
from pathlib import Path

import dspy

from rollouts_dspy.dspy_integration.data import examples_to_rows
from rollouts_dspy.dtypes import Endpoint, Metric, Sample, Score, Trajectory
from rollouts_dspy.io import save_result, save_template
from rollouts_dspy.prompt_optimization.evaluation import evaluate_template
from rollouts_dspy.prompt_optimization.gepa import GEPAConfig, run_gepa
from rollouts_dspy.prompt_optimization.types import PromptTemplate

SYSTEM = "Classify the customer query into one of the banking intents."


def make_template(labels: list[str]) -> PromptTemplate:
    """The spec's template. The label list is literal text of the user message (the same for every sample), so
    the reflection model sees each sample's query, not 77 label names, as that sample's input."""
    listed = ", ".join(labels).replace("{", "{{").replace("}", "}}")
    return PromptTemplate(system=SYSTEM, user_template=f"Query: {{query}}\nIntents: {listed}\n\nClassify this query.")


def load_split(path: Path) -> list[dspy.Example]:
    """One Banking77 CSV as dspy.Examples with `text` as the input (DSPy's DataLoader when available)."""
    try:
        from dspy.datasets import DataLoader

        return DataLoader().from_csv(str(path), fields=["text", "category"], input_keys=("text",))
    except ImportError:  # DataLoader.from_csv needs the `datasets` package
        with path.open(newline="", encoding="utf-8") as fh:
            return [dspy.Example(text=r["text"], category=r["category"]).with_inputs("text")
                    for r in csv.DictReader(fh)]


def to_rows(examples: list[dspy.Example]) -> list[dict[str, str]]:
    """Rows in the spec's shape: the query (the template's input) and the expected intent (the label)."""
    return [{"query": r["text"], "intent": r["category"]} for r in examples_to_rows(examples)]


def extract_intent(trajectory: Trajectory, labels: list[str]) -> str:
    """The first known label in the answer (models sometimes add words around it)."""
    text = trajectory.final_text.strip().strip("`'\"*. ").lower()
    if text in labels:
        return text
    return next((label for label in sorted(labels, key=len, reverse=True) if label in text), text)


def make_score_fn(labels: list[str]):
    def score_fn(trajectory: Trajectory, sample: Sample) -> Score:
        predicted = extract_intent(trajectory, labels)
        correct = predicted == str(sample.ground_truth).lower()
        feedback = f"correct: {sample.ground_truth}" if correct else \
            f"expected: {sample.ground_truth}, got: {predicted or '(empty)'}"
        return Score(metrics=(Metric("correct", 1.0 if correct else 0.0),), feedback=feedback)

    return score_fn


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="folder with Banking77's train.csv and test.csv")
    p.add_argument("--real", action="store_true", default=os.environ.get("ROLLOUTS_DSPY_REAL") == "1",
                   help="use a real provider instead of the scripted server (or ROLLOUTS_DSPY_REAL=1)")
    p.add_argument("--model", default=os.environ.get("ROLLOUTS_DSPY_MODEL", "gpt-4o-mini"),
                   help="the real model (provider openai; default gpt-4o-mini)")
    p.add_argument("--train", type=int, default=100, help="training rows sampled from train.csv")
    p.add_argument("--val", type=int, default=50, help="validation rows sampled from train.csv")
    p.add_argument("--test", type=int, default=100, help="held-out rows from test.csv scored before and after")
    p.add_argument("--generations", type=int, default=6)
    p.add_argument("--population", type=int, default=6)
    p.add_argument("--max-rollouts", type=int, default=None, help="hard budget of task-model rollouts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write best.json and result.json here")
    return p.parse_args(argv)


async def optimize(args: argparse.Namespace, endpoint: Endpoint, mutation: Endpoint, labels: list[str]) -> None:
    rng = random.Random(args.seed)
    train_pool = load_split(args.data / "train.csv")
    picked = rng.sample(range(len(train_pool)), args.train + args.val)
    dataset = to_rows([train_pool[i] for i in picked])
    test_pool = load_split(args.data / "test.csv")
    test = to_rows(rng.sample(test_pool, min(args.test, len(test_pool))))
    config = GEPAConfig(
        population_size=args.population, generations=args.generations, elite_size=max(1, args.population // 3),
        train_seeds=tuple(range(args.train)), val_seeds=tuple(range(args.train, args.train + args.val)),
        minibatch_size=min(12, args.train), reflection_minibatch_size=6, val_candidates=2,
        max_rollouts=args.max_rollouts, seed=args.seed,
    )
    score_fn = make_score_fn(labels)
    template = make_template(labels)
    result = await run_gepa(template, config, dataset, endpoint, mutation, score_fn)
    best = result.best_template
    print(f"\nbest validation score: {best.score:.3f} after {result.rollouts_used} rollouts")
    if test:
        seeds = list(range(len(test)))
        before = await evaluate_template(template, seeds, test, endpoint, score_fn)
        after = await evaluate_template(best, seeds, test, endpoint, score_fn)
        print(f"held-out test accuracy ({len(test)} rows): initial {before.score:.3f} -> optimized {after.score:.3f}")
    print(f"\noptimized prompt:\n{best.system}")
    if args.out is not None:
        save_template(best, args.out / "best.json")
        save_result(result, args.out / "result.json")
        print(f"\nsaved {args.out / 'best.json'} and {args.out / 'result.json'}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    categories = args.data / "categories.json"
    labels = json.loads(categories.read_text()) if categories.exists() else sorted(
        {ex.category for ex in load_split(args.data / "train.csv")})
    if args.real:
        endpoint = Endpoint(provider="openai", model=args.model)  # key from OPENAI_API_KEY, never written anywhere
        asyncio.run(optimize(args, endpoint, endpoint, labels))
        return
    from rollouts_dspy.testing import IntentWorld, ScriptedServer

    # The scripted task model answers with Banking77's labels and follows keyword rules the reflection model writes.
    with ScriptedServer(intent_world=IntentWorld(labels=tuple(labels))) as server:
        task = Endpoint(provider="openai", model="scripted-task", api_base=server.base_url, api_key="scripted")
        reflect = Endpoint(provider="openai", model="scripted-reflect", api_base=server.base_url, api_key="scripted")
        asyncio.run(optimize(args, task, reflect, labels))


if __name__ == "__main__":
    main()
