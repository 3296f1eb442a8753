"""Errors a user can act on: one sentence, what to do, and close matches where a name was wrong.

The CLI turns any `OptiplanError` into that sentence and exit code 2 (a usage error); only
`--debug` shows a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class OptiplanError(Exception):
    """Base class: the message is shown to the user as is."""

    exit_code = 2


class UnknownNameError(OptiplanError):
    """A model or hardware name that is not in the catalog."""

    def __init__(self, what: str, name: str, known: Iterable[str], hint: str = ""):
        known = sorted(set(known))
        close = suggest(name, known)
        msg = f"unknown {what} '{name}'"
        if close:
            msg += f"; did you mean: {', '.join(close)}?"
        else:
            shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            msg += f"; known: {shown}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)
        self.name, self.suggestions = name, close


class ModelConfigError(OptiplanError):
    """A config.json that cannot describe a model: names the file and what is wrong."""


class HardwareError(OptiplanError):
    """A hardware profile that is malformed, or a request the device cannot serve."""


class RequestError(OptiplanError):
    """A request whose numbers cannot be right (zero batch, context beyond the model, ...)."""


def suggest(name: str, known: Iterable[str], n: int = 4) -> list[str]:
    """Close matches for a mistyped name: shown to the user, never used in its place."""
    known = list(known)
    lower = {k.lower(): k for k in known}
    key = name.lower()
    hits = difflib.get_close_matches(key, list(lower), n=n, cutoff=0.6)
    # Substring hits help with partial names such as "llama-70b" or "h100".
    for k_lower, k in lower.items():
        if len(hits) >= n:
            break
        if (key in k_lower or k_lower in key) and k_lower not in hits and len(key) >= 3:
            hits.append(k_lower)
    return [lower[h] for h in hits[:n]]
