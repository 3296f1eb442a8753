"""torch.compile of the forward pass with a static KV cache, through transformers' own compiled decoding
(`cache_implementation="static"` plus a `CompileConfig`): fixed shapes, so the decode step compiles once.
"""

from __future__ import annotations

import shutil
from typing import Any

from .kv_cache import layer_types
from .workspace import NotSupportedHere, Workspace, device_kind

# transformers 5.24 cache_utils.StaticSlidingWindowLayer — "we also need to use a python int to keep track of the
# cumulative length: self.cumulative_length_int = 0", read in update ("is_full = current_length >=
# self.max_cache_len") and get_mask_sizes; dynamo guards on the int's value, so the decode step recompiles at every
# token (TORCH_LOGS=recompiles: "kwargs['cache'].layers[0].cumulative_length_int == 9", == 10, ...). Measured here
# (torch 2.13, CPU): one `optiplan apply -t torch-compile` compiled 61 graphs for a tiny Gemma 2 and EXAONE 4 and 3
# for a tiny OLMo 2 or Jamba; fullgraph stops at the recompile limit. Also reported against transformers by
# tenstorrent/tt-xla#3688 (huggingface/transformers#44609).
WINDOW_RECOMPILES = ("transformers' static cache keeps a window layer's length as a Python int "
                     "(StaticSlidingWindowLayer.cumulative_length_int), which torch.compile specialises on: the "
                     "compiled decode step would recompile at every token")


def window_layer_types() -> frozenset[str]:
    """The layer types transformers' StaticCache holds in a StaticSlidingWindowLayer: sliding_attention,
    chunked_attention and hybrid_sliding in 5.24, and any a modeling file registers (STATIC_LAYER_TYPE_MAPPING)."""
    from transformers.cache_utils import STATIC_LAYER_TYPE_MAPPING, StaticSlidingWindowLayer

    return frozenset(kind for kind, layer in STATIC_LAYER_TYPE_MAPPING.items()
                     if issubclass(layer, StaticSlidingWindowLayer))


def compile_forward(ws: Workspace, params: dict[str, Any]) -> str:
    """Compile the decode forward pass (inductor) over a static cache; CUDA graphs on a GPU."""
    if windows := window_layer_types().intersection(layer_types(ws.model.config)):
        raise NotSupportedHere(f"{WINDOW_RECOMPILES}; {type(ws.model).__name__} has {', '.join(sorted(windows))} "
                               f"layers")
    if device_kind(ws.device) == "cpu" and not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        raise NotSupportedHere("torch.compile on CPU needs a C compiler (inductor generates C++): install gcc")
    ws.claim_cache("torch-compile")  # it needs the static cache
    if ws.runtime.speculative:
        raise NotSupportedHere("transformers does not compile assisted (speculative) generation")
    mode = params.get("mode") or ("reduce-overhead" if device_kind(ws.device) == "cuda" else "default")
    ws.runtime.compile = {"mode": mode, "fullgraph": True, "dynamic": False}
    ws.runtime.cache = {"kind": "static"}
    return f"torch.compile ({mode}) of the decode step over a static KV cache"
