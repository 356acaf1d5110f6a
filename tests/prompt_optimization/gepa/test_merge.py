"""Crossover: a section-wise, deterministic, seeded merge of two parents' instructions."""

from __future__ import annotations

import random

from gepa_helpers import FakeReflection

from rollouts_dspy.prompt_optimization.gepa import crossover_templates
from rollouts_dspy.prompt_optimization.gepa.merge import crossover_candidates, merge_instructions, merge_with_llm
from rollouts_dspy.prompt_optimization.types import Candidate, PromptTemplate

A = "Classify the query.\nRules:\n- If the query mentions \"refund\", answer: request_refund\n- shared rule"
B = "Classify the query.\nRules:\n- shared rule\n- If the query mentions \"stolen\", answer: lost_or_stolen_card"


def test_list_items_of_both_parents_survive_once_each():
    merged = merge_instructions(A, B, random.Random(0))
    assert merged.splitlines() == [
        "Classify the query.", "Rules:", A.splitlines()[2], "- shared rule", B.splitlines()[3],
    ]


def test_sections_are_matched_by_heading_and_prose_comes_from_one_parent():
    a = "Be terse.\n## Format\nAnswer with the label only.\n## Tips\n- tip a"
    b = "Be careful.\n## Tips\n- tip b\n## Edge cases\n- empty input: say unknown"
    seen = set()
    for seed in range(20):
        merged = merge_instructions(a, b, random.Random(seed))
        lines = merged.splitlines()
        assert ("Be terse." in lines) != ("Be careful." in lines)
        assert {"- tip a", "- tip b", "## Format", "## Edge cases", "- empty input: say unknown"} <= set(lines)
        assert lines.index("## Edge cases") > lines.index("## Tips")
        seen.add(lines[0])
    assert seen == {"Be terse.", "Be careful."}


def test_merge_is_deterministic_for_a_seed():
    a, b = "Intro a.\n## X\nprose a", "Intro b.\n## X\nprose b"
    runs = {merge_instructions(a, b, random.Random(7)) for _ in range(5)}
    assert len(runs) == 1


def test_crossover_templates_is_pure_and_seeded():
    pa = PromptTemplate(A, "{query}", score=0.5, id="a")
    pb = PromptTemplate(B, "{query}", score=0.4, id="b")
    first = crossover_templates(pa, pb, 3, seed=1)
    assert first == crossover_templates(pa, pb, 3, seed=1)
    assert first.generation == 3 and first.user_template == "{query}" and first.score is None
    assert "stolen" in first.system and "refund" in first.system
    assert pa.system == A and pb.system == B


def test_multi_component_crossover_merges_each_component():
    a = Candidate({"p1": "one.\n- x", "p2": "same"})
    b = Candidate({"p1": "one.\n- y", "p2": "same"})
    child = crossover_candidates(a, b, random.Random(0))
    assert child.instructions == {"p1": "one.\n- x\n- y", "p2": "same"}


async def test_llm_merge_falls_back_to_the_section_merge_on_a_useless_answer():
    model = FakeReflection(answers=["```\n" + A + "\n```"])  # just parent A again: unchanged
    text, outcome = await merge_with_llm(model, A, B, random.Random(0), attempts=2)
    assert text == merge_instructions(A, B, random.Random(0))
    assert len(outcome.rejected) == 2 and len(model.calls) == 2
    good = FakeReflection(answers=["```\nMerged: classify with every rule of both versions, refund and stolen.\n```"])
    text, _ = await merge_with_llm(good, A, B, random.Random(0), attempts=2)
    assert text.startswith("Merged:")
