"""What every optimizer works on: the model being optimized (a `Workspace`), the error for a technique this
device cannot run (and for one whose effect is already in place), and the byte count of (possibly quantized) tensors.

An optimizer is a plain function `(workspace, params) -> str` (what it did, in one line), named by its technique's
declaration in `optiplan.planner.plan.techniques` (`apply=Applied("module:function")`). It either changes the model
in place (quantization, attention kernel) or records a runtime setting (`workspace.runtime`) that `optiplan.load`
re-applies (caches, speculative decoding, compile, continuous batching).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..planner.errors import NotSupportedHere
from ..planner.schema.optimize import Runtime


@dataclass
class Workspace:
    """A real transformers model (and tokenizer) on its device, plus the runtime settings applied so far."""

    model: Any
    tokenizer: Any
    device: str
    source: Path
    runtime: Runtime = field(default_factory=Runtime)
    draft: Any = None  # the draft model when speculative decoding uses one
    quantization_config: Any = None  # the transformers quantization config the weights were loaded with

    def refuse_fused_experts(self, what: str) -> None:
        """Refuse a weight format that quantizes linear layers on a model whose experts are fused 3-D tensors
        (transformers 5's mixture-of-experts layout: Mixtral's `experts.gate_up_proj`), which it would leave in full
        precision while saying it quantized the model: most of a mixture of experts' weights. (A state-space layer's
        small 3-D convolution is not refused.)"""
        fused = [(name, p.numel()) for name, p in self.model.named_parameters() if p.dim() == 3]
        total = sum(p.numel() for p in self.model.parameters())
        share = sum(n for _, n in fused) / total if total else 0.0
        if share > 0.1:
            raise NotSupportedHere(f"{what} quantizes linear layers, and this model keeps its experts as fused 3-D "
                                   f"tensors ({fused[0][0]} and {len(fused) - 1} more, {share:.0%} of its weights), "
                                   "which it would leave in full precision")

    def claim_cache(self, technique: str) -> None:
        """A generation has one cache: refuse a second cache technique rather than silently replace the first."""
        if self.runtime.cache:
            raise NotSupportedHere(f"{technique} needs its own KV cache, and the plan already uses a "
                                   f"{self.runtime.cache['kind']} cache; apply one cache technique")


class AlreadyInPlace(Exception):
    """A step whose effect the model already has here (the attention kernel it asks for is the one loaded): recorded
    as skipped with this reason, never as applied, so no measured change is credited to it."""


def device_kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def tensor_bytes(t) -> int:
    """Bytes a tensor occupies; a quantized tensor subclass counts the plain tensors it is made of."""
    flatten = getattr(type(t), "__tensor_flatten__", None)
    if flatten is not None and type(t).__name__ not in ("Parameter", "Tensor"):
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    data = getattr(t, "data", t)
    if data is not t and type(data).__name__ not in ("Tensor",):
        return tensor_bytes(data)
    return t.numel() * t.element_size()
