"""One small RolloutsGEPA and RolloutsMIPRO run on the scripted server, printed as JSON: every request the LMs
were sent (hashed, as a sorted multiset, since concurrent calls arrive in any order), the final programs and the
search records. test_determinism.py runs it in processes with different PYTHONHASHSEED and compares."""

from __future__ import annotations

import hashlib
import json
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402

from rollouts_dspy.dspy_integration import RolloutsGEPA, RolloutsMIPRO  # noqa: E402
from rollouts_dspy.testing import ScriptedServer, generate_intent_queries  # noqa: E402

CHANNELS = ("app", "email", "phone")


def examples() -> list[dspy.Example]:
    # Three input fields: DSPy keeps input names in a set, whose order changes with PYTHONHASHSEED.
    rows = generate_intent_queries(24, seed=6)
    return [dspy.Example(query=r["query"], channel=CHANNELS[i % 3], customer=f"c{i}", intent=r["intent"])
            .with_inputs("query", "channel", "customer") for i, r in enumerate(rows)]


def requests(lm: dspy.LM) -> list[str]:
    texts = [json.dumps(h.get("messages") or h.get("prompt"), sort_keys=True, default=str) for h in lm.history]
    return sorted(hashlib.sha256(t.encode()).hexdigest()[:16] for t in texts)


def state(program: dspy.Module) -> list:
    return [(n, p.signature.instructions, [dict(d) for d in p.demos]) for n, p in program.named_predictors()]


def main() -> None:
    dspy.disable_logging()
    data = examples()
    out = {}
    with ScriptedServer() as server:
        for name, make in (("gepa", lambda r: RolloutsGEPA(reflection_lm=r, max_metric_calls=90, num_threads=6)),
                           ("mipro", lambda r: RolloutsMIPRO(prompt_model=r, auto=None, num_candidates=3,
                                                             num_threads=6))):
            task = dspy.LM("openai/scripted-task", api_base=server.base_url, api_key="x", cache=False)
            reflect = dspy.LM("openai/scripted-reflect", api_base=server.base_url, api_key="x", cache=False)
            kwargs = {"num_trials": 5, "minibatch_size": 6} if name == "mipro" else {}
            with dspy.context(lm=task):
                program = make(reflect).compile(dspy.Predict("query, channel, customer -> intent"),
                                                trainset=data[:12], valset=data[12:], **kwargs)
            outcome = program.search_outcome
            out[name] = {"program": state(program), "rollouts": outcome.rollouts_used,
                         "records": [(r.id, sorted(r.train_scores.items()), sorted(r.val_scores.items()))
                                     for r in outcome.records],
                         "task_requests": requests(task), "reflect_requests": requests(reflect)}
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
