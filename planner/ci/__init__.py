"""Continuous integration: bench (samples of real runs) and gate (statistics and verdicts)."""
