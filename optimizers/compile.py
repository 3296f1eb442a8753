"""torch.compile of the forward pass with a static KV cache, through transformers' own compiled decoding
(`cache_implementation="static"` plus a `CompileConfig`): fixed shapes, so the decode step compiles once.
"""

from __future__ import annotations

import shutil
from typing import Any

from .workspace import NotSupportedHere, Workspace, device_kind


def compile_forward(ws: Workspace, params: dict[str, Any]) -> str:
    """Compile the decode forward pass (inductor) over a static cache; CUDA graphs on a GPU."""
    if device_kind(ws.device) == "cpu" and not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        raise NotSupportedHere("torch.compile on CPU needs a C compiler (inductor generates C++): install gcc")
    ws.claim_cache("torch-compile")  # it needs the static cache
    if ws.runtime.speculative:
        raise NotSupportedHere("transformers does not compile assisted (speculative) generation")
    mode = params.get("mode") or ("reduce-overhead" if device_kind(ws.device) == "cuda" else "default")
    ws.runtime.compile = {"mode": mode, "fullgraph": True, "dynamic": False}
    ws.runtime.cache = {"kind": "static"}
    return f"torch.compile ({mode}) of the decode step over a static KV cache"
