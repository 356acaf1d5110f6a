"""Side-by-side benchmarks of rollouts_dspy's optimizers against dspy.GEPA, dspy.MIPROv2 and gepa.optimize.

Run `python -m benchmarks.run --preset full` (see BENCHMARKS.md). Every contender talks to the same scripted
OpenAI-compatible server, started here in its own process so that only the optimizer's CPU is measured.
"""
