"""Swap `dspy.GEPA` for `RolloutsGEPA` (and `dspy.MIPROv2` for `RolloutsMIPRO`) in existing DSPy code.

The optimizer calls below are DSPy tutorials' argument lists, unchanged but for the class name: the GEPA one is
DSPy's AIME tutorial's (`docs/tutorials/gepa_aime`), the MIPROv2 one the MIPROv2 docs' quick start. Only the
reflection model's name is a variable, so the example runs offline: by default it starts the scripted
OpenAI-compatible server from `rollouts_dspy.testing` and points `dspy.LM` at it (OPENAI_BASE_URL). To use a real
provider instead (the tutorial's models):

    python examples/dspy_drop_in.py --model openai/gpt-4.1-mini --reflection-model gpt-5

The data is loaded the DSPy way, `DataLoader().from_csv(...)` (that needs the `datasets` package; without it
the same CSV is read with the csv module).
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


def metric_with_feedback(example, prediction, trace=None, pred_name=None, pred_trace=None):
    """GEPA's feedback metric form; Evaluate and MIPROv2 call it with two or three arguments."""
    correct = str(prediction.intent).strip().lower() == example.intent.lower()
    if correct:
        feedback = f"Your answer is correct. The correct intent is '{example.intent}'."
    else:
        feedback = f"Your answer is incorrect. The correct intent is '{example.intent}'."
    return dspy.Prediction(score=float(correct), feedback=feedback)


def load_examples(path: Path) -> list[dspy.Example]:
    try:
        from dspy.datasets import DataLoader

        return DataLoader().from_csv(str(path), input_keys=("query",))
    except ImportError:  # the `datasets` package is not installed: same rows, same Examples
        with path.open(newline="") as f:
            return [dspy.Example(**row).with_inputs("query") for row in csv.DictReader(f)]


def write_demo_csv(path: Path) -> None:
    rows = generate_intent_queries(160, seed=7)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["query", "intent"])
        writer.writeheader()
        writer.writerows(rows)


def accuracy(program: dspy.Module, devset: list[dspy.Example]) -> float:
    evaluate = dspy.Evaluate(devset=devset, metric=metric_with_feedback, num_threads=8, display_progress=False)
    return evaluate(program).score


# ---------------------------------------------------------------------------------------------------------------
def optimize_with_gepa(program, train_set, val_set, reflection_model, api_key):
    # Before: optimizer = GEPA(   (from dspy import GEPA)
    optimizer = RolloutsGEPA(
        metric=metric_with_feedback,
        auto="light",
        num_threads=32,
        track_stats=True,
        reflection_minibatch_size=3,
        reflection_lm=dspy.LM(model=reflection_model, temperature=1.0, max_tokens=32000, api_key=api_key)
    )
    optimized_program = optimizer.compile(
        program,
        trainset=train_set,
        valset=val_set,
    )
    results = optimized_program.detailed_results  # a dspy DspyGEPAResult, as with dspy.GEPA(track_stats=True)
    print(f"candidates: {len(results.candidates)}, validation scores: {results.val_aggregate_scores}")
    print(f"best candidate: #{results.best_idx}, metric calls: {results.total_metric_calls}")
    return optimized_program


def optimize_with_mipro(program, trainset, reflection_model, api_key):
    prompt_model = dspy.LM(model=reflection_model, temperature=1.0, max_tokens=32000, api_key=api_key)
    # Before: optimizer = dspy.MIPROv2(
    optimizer = RolloutsMIPRO(metric=metric_with_feedback, auto="light", num_threads=24, prompt_model=prompt_model)
    optimized = optimizer.compile(program, trainset=trainset, max_bootstrapped_demos=2, max_labeled_demos=2)
    print(f"MIPRO score: {optimized.score:.1f}, trials logged: {len(optimized.trial_logs)}, "
          f"proposer calls: {optimized.prompt_model_total_calls}")
    return optimized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="task model, e.g. openai/gpt-4.1-mini (default: the scripted server)")
    parser.add_argument("--reflection-model", help="reflection/proposer model, e.g. gpt-5 (default: scripted)")
    parser.add_argument("--optimizer", choices=("gepa", "mipro"), default="gepa")
    parser.add_argument("--save", default="optimized_program.json")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        api_key = os.environ.get("OPENAI_API_KEY", "")
        if args.model:
            lm = dspy.LM(args.model)
            reflection_model = args.reflection_model or "gpt-5"
        else:
            server = stack.enter_context(ScriptedServer())
            os.environ["OPENAI_BASE_URL"] = server.base_url  # every dspy.LM below talks to the scripted server
            api_key = "scripted"
            lm = dspy.LM("openai/scripted-task", api_key=api_key)
            reflection_model = "openai/scripted-reflect"
        dspy.configure(lm=lm)

        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        write_demo_csv(data_dir / "intents.csv")
        examples = load_examples(data_dir / "intents.csv")
        train_set, val_set, test_set = examples[:60], examples[60:100], examples[100:]

        program = dspy.ChainOfThought(Classify)
        print(f"unoptimized test accuracy: {accuracy(program, test_set):.1f}%")
        if args.optimizer == "gepa":
            optimized = optimize_with_gepa(program, train_set, val_set, reflection_model, api_key)
        else:
            optimized = optimize_with_mipro(program, train_set + val_set, reflection_model, api_key)
        print(f"optimized test accuracy:   {accuracy(optimized, test_set):.1f}%")
        print(f"optimized instructions:\n{optimized.predict.signature.instructions}")
        optimized.save(args.save)
        print(f"saved to {args.save}; reload with dspy.ChainOfThought(Classify).load({args.save!r})")


if __name__ == "__main__":
    main()
