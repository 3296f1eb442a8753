"""Every error a user can act on, in one place: one sentence, what to do, and close matches where a name was
wrong.

The CLI (and the service) turn any `OptiplanError` into that sentence and its exit code (2 for bad input, 3 for a
workload nothing meets); anything else is an internal error (exit 70). Only `--debug` shows a traceback.
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


class DeployError(OptiplanError):
    """A config that cannot be rendered for this engine or hardware."""


class ImpossibleError(OptiplanError):
    """Nothing fits or meets the workload even with every allowed technique (exit code 3). `document` is the
    advice anyway (an `Advice` with feasible false) where a plan could be made, for JSON readers and reports."""

    exit_code = 3

    def __init__(self, message: str, document=None):
        super().__init__(message)
        self.document = document


class BenchError(OptiplanError):
    """A benchmark that cannot run as asked."""


class GateInputError(OptiplanError):
    """A result file the gate cannot compare (exit code 2)."""


class MeasureError(OptiplanError):
    """A model that cannot be measured here."""


class PlanError(OptiplanError):
    """A plan that does not fit the model, or names nothing optiplan can apply."""


class ArtifactError(OptiplanError):
    """A folder that cannot be written or loaded as a model."""


class NotSupportedHere(OptiplanError):
    """A technique that cannot run on this device or without a package, with the reason and what to do."""


class MetricsError(OptiplanError):
    """A workload or evaluation text that cannot be measured."""


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


class ServiceRefused(OptiplanError):
    """A request `optiplan serve` refuses before any work (a name outside its folders, an unknown job kind): answered
    with `status` (403, 404, 400, 409) and the message as the one JSON error."""

    def __init__(self, message: str, status: int = 403):
        super().__init__(message)
        self.status = status


# What measure, calibrate, apply, verify and bench import lazily: the `torch` extra, absent from the core install.
RUNTIME_PACKAGES = {"torch", "transformers", "torchao", "optimum", "hqq", "safetensors", "accelerate"}


INTERNAL_ERROR_EXIT = 70  # EX_SOFTWARE: a bug of optiplan's, not the user's input


def error_line(exc: BaseException) -> tuple[str, int]:
    """The one line and exit code the CLI and the service show for an exception: the message of a user error
    (exit 2, or 3 when nothing meets the workload), a pydantic validation error as its first problem (exit 2),
    and anything else as an internal error to report (exit 70)."""
    from pydantic import ValidationError

    if isinstance(exc, OptiplanError):
        return str(exc), exc.exit_code
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return (f"{where}: {first['msg']}" if where else first["msg"]), 2
    root = (getattr(exc, "name", None) or "").split(".")[0]
    if isinstance(exc, ModuleNotFoundError) and root in RUNTIME_PACKAGES:
        return (f"this command runs models and needs {root}: install torch==2.13.0 (the CPU or CUDA build you "
                f"want), then pip install 'optiplan[torch]'"), 2
    message = " ".join(str(exc).split()) or "no message"
    return (f"internal error ({type(exc).__name__}: {message[:300]}); rerun with --debug and report it",
            INTERNAL_ERROR_EXIT)
