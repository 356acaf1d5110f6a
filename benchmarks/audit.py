"""Is the scripted world fair to every optimizer? `python -m benchmarks.audit [--trials N]`.

The scripted reflection model writes keyword rules from the evidence a request shows (labels next to a cue such as
"expected:" or "Intent:"). If it read our request format better than the peers', our search would look better
than it is. This audit shows the SAME evidence through each optimizer's own request-building code and scores the
instruction each gets back on the held-out rows:

- failures (GEPA family): the weak start's answers and the judge's feedback on k training rows, through our
  `reflection_messages` (parsed by our `parse_instruction`), gepa's `InstructionProposalSignature` (the prompt
  `gepa.optimize` sends, its own output extractor) and dspy.GEPA's `InstructionProposer` (a JSONAdapter Predict,
  called through a dspy.LM on the scripted server, with the records dspy's adapter builds);
- labeled examples (MIPRO family): the same k rows as demos, through our `proposal_messages` (with our dataset
  summary request) and MIPROv2's `GroundedProposer` (dataset summary, program description, tip off).

Each instruction is scored on the world's held-out rows in both prompt formats (a rollouts system prompt and a
DSPy Predict's instructions), so a bias of the task model towards one format would show too. The request each
model saw is scanned for evidence pairs (`find_evidence`) and the answer for rule lines (`parse_rules`). Results go
to `benchmarks/results/audit.json`; BENCHMARKS.md shows them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__all__ = ["audit", "main"]

RESULT = Path(__file__).resolve().parent / "results" / "audit.json"
FAILURES_K = (3, 8)  # dspy.GEPA's / gepa's default reflection minibatch, and ours
DEMOS_K = (3,)  # MIPROv2's num_demos_in_context (ours shows up to 10; here both see the same 3)


class Lab:
    """The world, an in-process metered scripted server (its captured requests), the labels and the evaluator."""

    def __init__(self, world_name: str, seed: int, capture: Path) -> None:
        from rollouts_dspy.testing import IntentWorld, PolicyConfig

        from .evaluator import HeldOutEvaluator
        from .metered_server import MeteredServer
        from .worlds import make_world

        self.world = make_world(world_name, seed)
        labels = tuple(json.loads(Path(self.world.labels_file).read_text()))
        self.labels = labels
        self.config = PolicyConfig(intent_world=IntentWorld(labels=labels))
        self.capture = capture
        self.server = MeteredServer(intent_world=IntentWorld(labels=labels), capture=str(capture)).start()
        self.evaluator = HeldOutEvaluator(self.world, self.server.base_url)

    def reflect(self, messages: list[dict[str, Any]]) -> str:
        from rollouts_dspy.testing import respond

        return respond({"model": "scripted-reflect", "messages": messages}, self.config).content

    def captured(self) -> int:
        return len(self.capture.read_text().splitlines()) if self.capture.exists() else 0

    def last_request(self, before: int) -> list[dict[str, Any]]:
        """The last reflection request the server captured after `before` lines (the server writes the line
        just after it answered, so wait for it)."""
        import time

        deadline = time.monotonic() + 5
        while self.captured() <= before and time.monotonic() < deadline:
            time.sleep(0.01)
        lines = self.capture.read_text().splitlines()
        return json.loads(lines[-1])["messages"] if len(lines) > before else []

    def weak_rollouts(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """What the weak start answered on `rows` and the judge's feedback (the same in every prompt format: the
        weak guess looks at the query alone)."""
        from rollouts_dspy.testing import respond

        out = []
        for row in rows:
            request = {"model": "scripted-task", "messages": [
                {"role": "system", "content": self.world.instruction},
                {"role": "user", "content": self.world.user_message(row)}]}
            answer = respond(request, self.config).content
            score, feedback = self.world.judge(answer, row["intent"])
            out.append({"query": row["query"], "answer": answer, "score": score, "feedback": feedback})
        return out

    def score(self, instruction: str | None) -> tuple[float | None, float | None]:
        if not instruction:
            return None, None
        as_system = {"kind": "messages", "prefix": [{"role": "system", "content": instruction}]}
        as_dspy = {"kind": "dspy", "predictors": {"classify": {"instructions": instruction, "demos": []}}}
        return self.evaluator.score(as_system), self.evaluator.score(as_dspy)

    def dspy_lm(self):
        import dspy

        return dspy.LM("openai/scripted-reflect", api_base=self.server.base_url, api_key="scripted", cache=False,
                       temperature=0.0, max_tokens=2000)


# -- the GEPA family: failures with feedback -------------------------------------------------------------------
def ours_gepa(lab: Lab, shown: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    from rollouts_dspy.prompt_optimization.gepa.reflection import (
        MutationRejected,
        parse_instruction,
        reflection_messages,
    )
    from rollouts_dspy.prompt_optimization.protocols import Rollout

    rollouts = [Rollout(sample_index=i, score=r["score"], feedback=r["feedback"], inputs={"query": r["query"]},
                        output=r["answer"]) for i, r in enumerate(shown)]
    messages = [m.to_openai() for m in reflection_messages(lab.world.instruction, rollouts)]
    try:
        return parse_instruction(lab.reflect(messages), lab.world.instruction), messages
    except MutationRejected:
        return None, messages


def gepa_package(lab: Lab, shown: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    from gepa.strategies.instruction_proposal import InstructionProposalSignature

    records = [{"Inputs": lab.world.user_message(r), "Generated Outputs": r["answer"], "Feedback": r["feedback"]}
               for r in shown]  # DefaultAdapter.make_reflective_dataset's record
    sent: list[list[dict[str, Any]]] = []

    def lm(prompt: Any) -> str:  # gepa sends a string prompt as one user message
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        sent.append(messages)
        return lab.reflect(messages)

    out = InstructionProposalSignature.run(lm, {"current_instruction_doc": lab.world.instruction,
                                                "dataset_with_feedback": records})
    return out.get("new_instruction"), sent[-1] if sent else []


def dspy_gepa(lab: Lab, shown: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    import dspy
    from dspy.teleprompt.gepa.instruction_proposal import InstructionProposer

    records = [{"Inputs": {"query": r["query"]}, "Generated Outputs": {"intent": r["answer"]},
                "Feedback": r["feedback"]} for r in shown]  # DspyAdapter.make_reflective_dataset's record
    before = lab.captured()
    with dspy.context(lm=lab.dspy_lm()):
        try:
            out = InstructionProposer()({"classify": lab.world.instruction}, {"classify": records}, ["classify"])
        except Exception:  # noqa: BLE001 - a proposal dspy could not parse counts as no instruction
            out = {}
    return out.get("classify"), lab.last_request(before)


# -- the MIPRO family: labeled examples --------------------------------------------------------------------------
def ours_mipro(lab: Lab, demos: list[dict[str, Any]], summary_rows: list[dict[str, Any]]
               ) -> tuple[str | None, list[dict[str, Any]]]:
    from rollouts_dspy.prompt_optimization.mipro.proposals import parse_instruction, proposal_messages, summary_messages

    labeled = [{"input": lab.world.user_message(r), "output": r["intent"]} for r in demos]
    summary = lab.reflect([m.to_openai() for m in summary_messages(
        [{"input": lab.world.user_message(r), "output": r["intent"]} for r in summary_rows])])
    messages = [m.to_openai() for m in proposal_messages(lab.world.instruction, summary, labeled, "")]
    return parse_instruction(lab.reflect(messages)), messages


def dspy_mipro(lab: Lab, demos: list[dict[str, Any]], summary_rows: list[dict[str, Any]]
               ) -> tuple[str | None, list[dict[str, Any]]]:
    import dspy
    from dspy.propose.grounded_proposer import GroundedProposer

    from .dspy_side import IntentProgram

    program = IntentProgram(lab.world.instruction)
    examples = [dspy.Example(query=r["query"], intent=r["intent"]).with_inputs("query") for r in summary_rows]
    # MIPROv2 shows only bootstrapped demos ("augmented": runs of its own program that the metric passed); the
    # same rows are given to both proposers, marked as such.
    demo_set = [dspy.Example(query=r["query"], intent=r["intent"], augmented=True) for r in demos]
    lm = lab.dspy_lm()
    before = lab.captured()
    with dspy.context(lm=lm):
        proposer = GroundedProposer(prompt_model=lm, program=program, trainset=examples, use_tip=False,
                                    set_tip_randomly=False, set_history_randomly=False, use_instruct_history=False,
                                    num_demos_in_context=len(demos), rng=random.Random(0), verbose=False)
        try:
            # demo set 0 is MIPROv2's zero-shot set (it shows no demos for it): ours is set 1
            text = proposer.propose_instruction_for_predictor(program, program.classify, 0, {0: [[], demo_set]}, 1,
                                                              {})
        except Exception:  # noqa: BLE001 - an unparseable proposal counts as no instruction
            text = None
    return text, lab.last_request(before)


def _demo_formats(lab: Lab, demos: list[dict[str, Any]]) -> dict[str, Any]:
    """The same weak instruction and demo rows as a rollouts prompt (demo turns) and as a DSPy program (predictor
    demos): the task model must imitate them equally."""
    prefix = [{"role": "system", "content": lab.world.instruction}]
    for r in demos:
        prefix += [{"role": "user", "content": lab.world.user_message(r)},
                   {"role": "assistant", "content": r["intent"]}]
    as_system = lab.evaluator.score({"kind": "messages", "prefix": prefix})
    shots = [{"query": r["query"], "intent": r["intent"]} for r in demos]
    as_dspy = lab.evaluator.score({"kind": "dspy", "predictors": {"classify": {
        "instructions": lab.world.instruction, "demos": shots}}})
    return {"evidence": None, "rules": None, "heldout_system": as_system, "heldout_dspy": as_dspy, "produced": True}


def _measure(lab: Lab, propose: Callable[..., tuple[str | None, list[dict[str, Any]]]], *args: Any) -> dict[str, Any]:
    from rollouts_dspy.testing.evidence import find_evidence
    from rollouts_dspy.testing.rules import parse_rules

    instruction, request = propose(lab, *args)
    as_system, as_dspy = lab.score(instruction)
    return {"evidence": len(find_evidence(request, lab.labels)),
            "rules": len(parse_rules(instruction or "", lab.labels)), "heldout_system": as_system,
            "heldout_dspy": as_dspy, "produced": instruction is not None}


GEPA_REQUESTS = (("ours (RolloutsGEPA / run_gepa)", ours_gepa), ("gepa.optimize", gepa_package),
                 ("dspy.GEPA", dspy_gepa))
MIPRO_REQUESTS = (("ours (RolloutsMIPRO / run_mipro)", ours_mipro), ("dspy.MIPROv2", dspy_mipro))


def _trial(lab: Lab, t: int, rows: dict[tuple[str, int], list[dict[str, Any]]]) -> None:
    rng = random.Random(f"audit:{t}")
    for k in FAILURES_K:
        shown = [r for r in lab.weak_rollouts(rng.sample(list(lab.world.train), 40)) if r["score"] < 1][:k]
        for name, propose in GEPA_REQUESTS:
            rows.setdefault((f"failures -> {name}", k), []).append(_measure(lab, propose, shown))
    few_shot = rng.sample(list(lab.world.train), 8)
    rows.setdefault(("the same 8 demos in the task prompt (no proposer)", 8), []).append(_demo_formats(lab, few_shot))
    for k in DEMOS_K:
        demos, summary_rows = rng.sample(list(lab.world.train), k), rng.sample(list(lab.world.train), 12)
        for name, propose in MIPRO_REQUESTS:
            rows.setdefault((f"labeled demos -> {name}", k), []).append(_measure(lab, propose, demos, summary_rows))


def audit(world: str = "banking77-20", seed: int = 0, trials: int = 20) -> dict[str, Any]:
    import dspy

    dspy.configure(callbacks=[])
    rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab(world, seed, Path(tmp) / "capture.jsonl")
        try:
            for t in range(trials):
                _trial(lab, t, rows)
        finally:
            lab.server.stop()
    start = lab.score(lab.world.instruction)
    return {"world": world, "seed": seed, "trials": trials, "start": {"system": start[0], "dspy": start[1]},
            "rows": [_summary(name, k, measured) for (name, k), measured in rows.items()]}


def _summary(name: str, k: int, measured: list[dict[str, Any]]) -> dict[str, Any]:
    def avg(key: str) -> float | None:
        values = [m[key] for m in measured if m[key] is not None]
        return statistics.fmean(values) if values else None

    scores = [m["heldout_system"] for m in measured if m["heldout_system"] is not None]
    se = statistics.stdev(scores) / len(scores) ** 0.5 if len(scores) > 1 else None
    return {"request": name, "shown": k, "trials": len(measured), "produced": sum(m["produced"] for m in measured),
            "evidence": avg("evidence"), "rules": avg("rules"), "heldout_system": avg("heldout_system"),
            "heldout_system_se": se, "heldout_dspy": avg("heldout_dspy")}


def audit_table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["evidence shown through", "rows shown", "instructions / trials", "evidence pairs the model found",
            "rule lines written", "held-out as system prompt (± s.e.)", "held-out as DSPy instructions"]
    body = []
    for r in data["rows"]:
        def f(x: float | None, spec: str = ".3f") -> str:
            return "n/a" if x is None else format(x, spec)

        body.append([r["request"], str(r["shown"]), f"{r['produced']} / {r['trials']}", f(r["evidence"], ".1f"),
                     f(r["rules"], ".1f"), f"{f(r['heldout_system'])} ± {f(r.get('heldout_system_se'))}",
                     f(r["heldout_dspy"])])
    return head, body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Audit the scripted world's fairness across request formats.")
    parser.add_argument("--world", default="banking77-20")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("dspy").setLevel(logging.ERROR)
    data = audit(args.world, args.seed, args.trials)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(data, indent=1) + "\n")
    head, body = audit_table(data)
    print(f"start: {data['start']}")
    print(" | ".join(head))
    for row in body:
        print(" | ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
