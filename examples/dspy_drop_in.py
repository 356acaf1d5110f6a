"""Swap `dspy.GEPA` for `RolloutsGEPA` in an existing DSPy program (and `dspy.MIPROv2` for `RolloutsMIPRO`).

Runs offline by default: it starts the scripted OpenAI-compatible server from `rollouts_dspy.testing` and points
`dspy.LM` at it. To use a real provider instead:

    python examples/dspy_drop_in.py --model openai/gpt-4o-mini --reflection-model openai/gpt-4o

The data is loaded the DSPy way, `DataLoader().from_csv(...)` (that needs the `datasets` package; without it
the same CSV is read with the csv module). With network access, `DataLoader().from_huggingface(...)` works the
same way, e.g. `from_huggingface("PolyAI/banking77", split="train", input_keys=("text",))`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import tempfile
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402

from rollouts_dspy.dspy_integration import RolloutsGEPA, RolloutsMIPRO  # noqa: E402
from rollouts_dspy.testing import ScriptedServer, generate_intent_queries  # noqa: E402


# ---------------------------------------------------------------------------------------------------------------
# An existing DSPy program, metric and data: nothing here knows about rollouts-dspy.
class Classify(dspy.Signature):
    """Classify the customer query into one banking intent label."""

    query: str = dspy.InputField()
    intent: str = dspy.OutputField()


def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
    """GEPA-style feedback metric; with two arguments it works for Evaluate and MIPRO too."""
    correct = str(pred.intent).strip().lower() == gold.intent.lower()
    feedback = "Correct." if correct else f"Wrong: the expected intent: {gold.intent}"
    return dspy.Prediction(score=float(correct), feedback=feedback)


def load_examples(path: Path) -> list[dspy.Example]:
    try:
        from dspy.datasets import DataLoader

        return DataLoader().from_csv(str(path), input_keys=("query",))
    except ImportError:  # the `datasets` package is not installed: same rows, same Examples
        with path.open(newline="") as f:
            return [dspy.Example(**row).with_inputs("query") for row in csv.DictReader(f)]


def write_demo_csv(path: Path) -> None:
    rows = generate_intent_queries(60, seed=7)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["query", "intent"])
        writer.writeheader()
        writer.writerows(rows)


def accuracy(program: dspy.Module, devset: list[dspy.Example]) -> float:
    evaluate = dspy.Evaluate(devset=devset, metric=lambda g, p, t=None: metric(g, p).score, num_threads=8,
                             display_progress=False)
    return evaluate(program).score


# ---------------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="task model, e.g. openai/gpt-4o-mini (default: the scripted server)")
    parser.add_argument("--reflection-model", help="reflection/proposer model (default: the scripted server)")
    parser.add_argument("--optimizer", choices=("gepa", "mipro"), default="gepa")
    parser.add_argument("--save", default="optimized_program.json")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        if args.model:
            lm = dspy.LM(args.model)
            reflection_lm = dspy.LM(args.reflection_model or args.model, temperature=1.0, max_tokens=8000)
        else:
            server = stack.enter_context(ScriptedServer())
            lm = dspy.LM("openai/scripted-task", api_base=server.base_url, api_key="scripted")
            reflection_lm = dspy.LM("openai/scripted-reflect", api_base=server.base_url, api_key="scripted")
        dspy.configure(lm=lm)

        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        write_demo_csv(data_dir / "intents.csv")
        examples = load_examples(data_dir / "intents.csv")
        trainset, valset, testset = examples[:20], examples[20:40], examples[40:]

        program = dspy.ChainOfThought(Classify)
        print(f"unoptimized test accuracy: {accuracy(program, testset):.1f}%")

        if args.optimizer == "gepa":
            # Before: optimizer = dspy.GEPA(metric=metric, auto="light", reflection_lm=reflection_lm)
            optimizer = RolloutsGEPA(metric=metric, auto="light", reflection_lm=reflection_lm)
        else:
            # Before: optimizer = dspy.MIPROv2(metric=metric, auto="light", prompt_model=reflection_lm)
            optimizer = RolloutsMIPRO(metric=metric, auto="light", prompt_model=reflection_lm)
        optimized = optimizer.compile(program, trainset=trainset, valset=valset)

        print(f"optimized test accuracy:   {accuracy(optimized, testset):.1f}%")
        print(f"optimized instructions:\n{optimized.predict.signature.instructions}")
        if args.optimizer == "gepa":
            print(f"candidates on the valset: {optimized.detailed_results.val_aggregate_scores}")
        else:
            print(f"MIPRO score: {optimized.score:.1f}, trials: {len(optimized.trial_logs)}")
        optimized.save(args.save)
        print(f"saved to {args.save}; reload with dspy.ChainOfThought(Classify).load({args.save!r})")


if __name__ == "__main__":
    main()
