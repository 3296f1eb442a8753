"""How reports write a number whose size varies by orders of magnitude."""

from __future__ import annotations


def rate(tokens_per_s: float) -> str:
    """A rate in tokens/s: whole above ten, with two significant digits below (an offloaded 70B's 0.72 tokens/s is
    not 1)."""
    return f"{tokens_per_s:,.0f}" if tokens_per_s >= 10 else f"{tokens_per_s:.2g}"
