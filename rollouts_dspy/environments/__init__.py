"""Environments for tool-using rollouts."""

from .calculator import CalculatorEnvironment

__all__ = ["CalculatorEnvironment"]
