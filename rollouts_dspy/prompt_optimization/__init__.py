"""Prompt optimization: templates, evaluation, GEPA and MIPRO (see the package root for the public API)."""
