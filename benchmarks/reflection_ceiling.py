"""How far can reflection take a prompt on a world, whatever the search? The measured cause behind a quality goal.

For one world and seed: score the weak start on all training rows, then chain reflections with nothing to choose
or prune -- each one shown the next `--shown` training failures of the start (different ones every round, so
after enough rounds the reflection model has seen every failure) and rewriting the previous round's instruction.
Every round's instruction is scored on the training rows and on the held-out rows. When held-out accuracy does not
rise above the start even as training accuracy does, no search over these reflections (ours or a peer's) can
raise it: the instructions the reflection model writes do not transfer to unseen queries.

    python -m benchmarks.reflection_ceiling --world banking77-77 --seed 0 --shown 32 --rounds 6
"""

from __future__ import annotations

import argparse
import asyncio
import random

from rollouts_dspy.dtypes import Endpoint, Metric, Score
from rollouts_dspy.llm import LLMSession
from rollouts_dspy.prompt_optimization.evaluation import evaluate_detailed, evaluate_template
from rollouts_dspy.prompt_optimization.gepa.reflection import parse_instruction, reflection_messages
from rollouts_dspy.prompt_optimization.types import PromptTemplate
from rollouts_dspy.scorers import answer_text

from .server import ServerProcess
from .worlds import make_world

__all__ = ["main", "measure"]


async def measure(world_name: str, seed: int, shown: int, rounds: int, base_url: str) -> list[dict[str, float]]:
    world = make_world(world_name, seed)

    def score_fn(trajectory, sample) -> Score:
        score, feedback = world.judge(answer_text(trajectory), sample.ground_truth)
        return Score((Metric("correct", score),), feedback)

    common = dict(provider="openai", api_base=base_url, api_key="scripted", timeout=60.0)
    task, reflect = Endpoint(model="scripted-task", **common), Endpoint(model="scripted-reflect", **common)
    train, held = list(world.train), list(world.val)
    template = PromptTemplate(system=world.instruction, user_template=world.user_template)
    start = await evaluate_detailed(template, range(len(train)), train, task, score_fn, max_concurrent=32)
    failures = [r for r in start.rollouts if r.score == 0.0]
    random.Random(f"ceiling:{seed}").shuffle(failures)
    session = LLMSession(max_concurrent=4)
    rows, current = [], template.system
    for n in range(rounds + 1):
        candidate = PromptTemplate(system=current, user_template=template.user_template)
        on_train = await evaluate_template(candidate, range(len(train)), train, task, score_fn, max_concurrent=32)
        on_held = await evaluate_template(candidate, range(len(held)), held, task, score_fn, max_concurrent=32)
        rows.append({"round": n, "shown": n * shown, "train": on_train.score, "held_out": on_held.score})
        batch = failures[n * shown:(n + 1) * shown]
        if n == rounds or not batch:
            break
        answer = await session.complete(reflect, reflection_messages(current, batch), role="reflection")
        current = parse_instruction(answer.message.content, current)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="banking77-77")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shown", type=int, default=32, help="failures shown per reflection")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    world = make_world(args.world, args.seed)
    with ServerProcess(latency=0.0, labels_file=world.labels_file) as server:
        rows = asyncio.run(measure(args.world, args.seed, args.shown, args.rounds, server.base_url))
    print(f"{args.world}, seed {args.seed}: reflections chained over the start's training failures, "
          f"{args.shown} shown each")
    print("| round | failures shown so far | train accuracy | held-out accuracy |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['round']} | {r['shown']} | {r['train']:.3f} | {r['held_out']:.3f} |")


if __name__ == "__main__":
    main()
