"""How reports write a number whose size varies by orders of magnitude."""

from __future__ import annotations


def rate(tokens_per_s: float) -> str:
    """A rate in tokens/s: whole above ten, with two significant digits below (an offloaded 70B's 0.72 tokens/s is
    not 1)."""
    return f"{tokens_per_s:,.0f}" if tokens_per_s >= 10 else f"{tokens_per_s:.2g}"


def usd(amount: float) -> str:
    """Dollars: in cents from a dime up, with two significant digits below (a 3B model's LoRA costs $0.023 per
    million tokens trained, not $0.02)."""
    return f"${amount:,.2f}" if round(amount, 2) >= 0.1 else f"${amount:.2g}"
