"""RunMemory: what a resumed GEPA run needs from the DSPy side (per-predictor feedback, a selector's choices, the
Predictions behind best_outputs_valset) comes back from the checkpoint directory; a directory without a journal
starts empty; a torn last line (a killed process) is dropped."""

from __future__ import annotations

import dspy

from rollouts_dspy.dspy_integration.run_memory import MEMORY_FILE, RunMemory
from rollouts_dspy.runtime import JOURNAL_FILE


def fill(memory: RunMemory) -> None:
    memory.add_feedback("k1", 3, "draft", "expected: card_arrival")
    memory.add_feedback("k1", 4, "draft", None)  # left out (e.g. a format failure)
    memory.add_selection(7, "k1", ["check"])
    memory.add_prediction("k1", 12, dspy.Prediction(intent="card_arrival", reasoning="the card"))
    memory.add_prediction("k1", 2, dspy.Prediction(intent="not kept"))  # not a compared sample


def test_what_a_run_remembered_comes_back_for_its_resume(tmp_path):
    (tmp_path / JOURNAL_FILE).write_text("{}\n")
    fill(RunMemory(str(tmp_path), predictions_for=range(10, 20)))
    with (tmp_path / MEMORY_FILE).open("a") as f:
        f.write('{"key": ["feedback", "k9"')  # torn by a killed process
    again = RunMemory(str(tmp_path), predictions_for=range(10, 20))
    assert again.feedback("k1", 3, "draft") == (True, "expected: card_arrival")
    assert again.feedback("k1", 4, "draft") == (True, None)
    assert again.feedback("k1", 5, "draft") == (False, None)
    assert again.selection(7, "k1") == ["check"] and again.selection(8, "k1") is None
    restored = again.prediction("k1", 12)
    assert isinstance(restored, dspy.Prediction) and dict(restored.items()) == {"intent": "card_arrival",
                                                                             "reasoning": "the card"}
    assert again.prediction("k1", 2) is None


def test_a_directory_without_a_journal_starts_a_new_memory(tmp_path):
    (tmp_path / JOURNAL_FILE).write_text("{}\n")
    fill(RunMemory(str(tmp_path), predictions_for=range(10, 20)))
    (tmp_path / JOURNAL_FILE).unlink()  # the run's checkpoint is gone: its memory is not the next run's
    fresh = RunMemory(str(tmp_path), predictions_for=range(10, 20))
    assert fresh.feedback("k1", 3, "draft") == (False, None) and fresh.prediction("k1", 12) is None
    assert not (tmp_path / MEMORY_FILE).exists()


def test_without_a_directory_it_remembers_in_memory_only(tmp_path):
    memory = RunMemory(None, predictions_for=[12])
    fill(memory)
    assert memory.feedback("k1", 3, "draft") == (True, "expected: card_arrival")
    assert memory.prediction("k1", 12).intent == "card_arrival"
    assert list(tmp_path.iterdir()) == []
