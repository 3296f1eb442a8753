"""The text optiplan measures with when the user gives none: short prompts for timing, and a held-out English
corpus for perplexity and calibration (it ships with Python, so nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

from ..planner.errors import MetricsError

DEFAULT_PROMPTS = (
    "The for statement is used to iterate over",
    "An object is hashable if it has a hash value which",
    "The import system finds a module by",
    "A class definition defines a class object and",
)


def default_eval_text() -> str:
    """Held-out English text that ships with Python: every tenth `pydoc_data.topics` entry, in sorted key order
    (the split the test models were trained without)."""
    from pydoc_data.topics import topics

    keys = sorted(topics)
    return "\n\n".join(topics[k] for i, k in enumerate(keys) if not i % 10)


def read_eval_text(path: str | Path | None) -> str:
    """A user's evaluation text, or the built-in held-out corpus when `path` is None."""
    if path is None:
        return default_eval_text()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MetricsError(f"cannot read evaluation text {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    if len(text.split()) < 50:
        raise MetricsError(f"evaluation text {path} is too short ({len(text.split())} words; need at least 50)")
    return text
