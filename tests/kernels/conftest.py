"""Kernel tests run in triton's interpreter on CPU (TRITON_INTERPRET=1), at small shapes: it is slow.

Triton reads TRITON_INTERPRET when it decorates a function: its own helpers (`tl.sum`, `tl.sigmoid`) at
`import triton`, ours at the import of their module. So the variable is set here, before anything imports triton
(this folder is collected before the ones whose conftest imports transformers, which imports triton), then
restored; each test here sets it again for its own duration (triton imports some of its modules lazily, at the
first launch, and they check it too), so no other test and no other test's subprocess inherits it. Where triton
was already imported compiled, or is not installed, these tests skip and say why.
"""

from __future__ import annotations

import os
import sys

import pytest

pytest.importorskip("torch")


def _import_interpreted() -> str | None:
    """Import triton and optiplan's kernels in interpreter mode; the reason they cannot run here, or None."""
    already = "triton" in sys.modules
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        from optiplan.kernels import (  # noqa: F401
            common,
            flash_attention,
            flash_decoding,
            paged_attention,
            weight_only_gemm,
        )
    finally:
        if previous is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = previous
    if not common.triton_installed():
        return "triton is not installed: pip install 'optiplan[kernels]'"
    if not common.interpreted():
        return ("triton was imported (compiled) before TRITON_INTERPRET=1 could be set"
                + (" by an earlier test module" if already else "") + "; run tests/kernels in their own process")
    return None


SKIP_REASON = _import_interpreted()


@pytest.fixture(autouse=True)
def _interpreter(monkeypatch):
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
