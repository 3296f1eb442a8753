"""The figures every report shows: one definition for the terminal, Markdown and HTML."""

from __future__ import annotations

from optiplan.planner.report.figures import rate


def test_a_slow_rate_keeps_its_digits():
    # a 70B offloaded to the host of an L4 serves half a token a second: not "0 tokens/s"
    assert rate(0.48) == "0.48" and rate(0.0) == "0"
    assert rate(9.4) == "9.4" and rate(12.4) == "12" and rate(12345.6) == "12,346"
