"""`weight-int4:kernel=triton` and `weight-int8:kernel=triton`: every linear layer but lm_head replaced by a
`PackedLinear` that keeps its weight in optiplan's packed int4/int8 format and multiplies with the Triton
weight-only GEMM (`optiplan.kernels.weight_only_gemm`, which documents the format).

An artifact stores the packed tensors in `packed.safetensors` with `packed_map.json` (layer -> bits, group,
shape), beside the config; `optiplan.load` rebuilds the architecture and puts the packed layers back. There is no
`model.safetensors`, so a plain `from_pretrained` finds no weights rather than loading garbage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .workspace import NotSupportedHere, Workspace

PACKED_WEIGHTS_FILE = "packed.safetensors"
PACKED_MAP_FILE = "packed_map.json"
PACKED_LIBRARY = "optiplan-triton"
KERNEL = "optiplan.kernels.weight_only_gemm"


def _module_class():
    import torch

    class PackedLinear(torch.nn.Module):
        """A linear layer whose weight is int4 (grouped, asymmetric) or int8 (per channel) in the packed format."""

        def __init__(self, in_features: int, out_features: int, bits: int, group_size: int | None, bias: bool,
                     dtype, device=None):
            super().__init__()
            self.in_features, self.out_features, self.bits, self.group_size = in_features, out_features, bits, group_size
            if bits == 4:
                k_pad = -(-in_features // group_size) * group_size
                self.register_buffer("qweight", torch.zeros(k_pad, out_features // 2, dtype=torch.uint8, device=device))
                self.register_buffer("scales", torch.zeros(k_pad // group_size, out_features, dtype=dtype, device=device))
                self.register_buffer("zeros", torch.zeros(k_pad // group_size, out_features, dtype=dtype, device=device))
            else:
                self.register_buffer("qweight", torch.zeros(in_features, out_features, dtype=torch.int8, device=device))
                self.register_buffer("scales", torch.zeros(out_features, dtype=dtype, device=device))
                self.zeros = None
            self.bias = torch.nn.Parameter(torch.zeros(out_features, dtype=dtype, device=device)) if bias else None

        @classmethod
        def from_linear(cls, linear, bits: int, group_size: int | None):
            from ..kernels.weight_only_gemm import pack_int4, pack_int8

            w = linear.weight.detach()
            layer = cls(linear.in_features, linear.out_features, bits, group_size, linear.bias is not None, w.dtype,
                        w.device)
            if bits == 4:
                layer.qweight, layer.scales, layer.zeros = pack_int4(w, group_size)
            else:
                layer.qweight, layer.scales = pack_int8(w)
            if linear.bias is not None:
                layer.bias.data.copy_(linear.bias.detach())
            return layer

        def forward(self, x):
            from ..kernels.weight_only_gemm import weight_only_matmul

            return weight_only_matmul(x.to(self.scales.dtype), self.qweight, self.scales, self.zeros, self.bias,
                                      bits=self.bits, group_size=self.group_size, out_features=self.out_features)

        def extra_repr(self) -> str:
            group = f", group_size={self.group_size}" if self.bits == 4 else ""
            return f"in_features={self.in_features}, out_features={self.out_features}, int{self.bits}{group}"

    return PackedLinear


_CLASS: list = []


def packed_linear_class():
    """The PackedLinear module class (built on first use, so importing this file does not import torch)."""
    if not _CLASS:
        _CLASS.append(_module_class())
    return _CLASS[0]


def _linears(model):
    import torch

    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head")]


def _replace(model, name: str, module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def quantize_packed(ws: Workspace, bits: int, group_size: int | None) -> str:
    """Replace every linear layer except lm_head with a packed layer running the Triton weight-only GEMM."""
    from ..kernels.common import unavailable_reason

    ws.refuse_fused_experts(f"optiplan's Triton int{bits} kernel")
    reason = unavailable_reason(ws.device)
    if reason:
        raise NotSupportedHere(f"kernel=triton: {reason}")
    from ..kernels.weight_only_gemm import GROUPS

    if bits == 4 and group_size not in GROUPS:
        raise NotSupportedHere(f"kernel=triton takes int4 groups of {', '.join(map(str, GROUPS))}, not {group_size}")
    cls = packed_linear_class()
    layers = _linears(ws.model)
    odd = [name for name, m in layers if bits == 4 and m.out_features % 2]
    if odd:
        raise NotSupportedHere(f"kernel=triton packs int4 in pairs of output features; {odd[0]} has an odd count")
    for name, linear in layers:
        _replace(ws.model, name, cls.from_linear(linear, bits, group_size))
    ws.runtime.weights = {"library": PACKED_LIBRARY, "kernel": KERNEL, "weights": f"int{bits}",
                          "group_size": group_size, "file": PACKED_WEIGHTS_FILE, "map": PACKED_MAP_FILE}
    scheme = f"int4, group {group_size}, asymmetric" if bits == 4 else "int8, per-channel scales"
    return f"{len(layers)} linear layers packed ({scheme}), run by the Triton kernel {KERNEL} (lm_head kept)"


def save_packed(model, folder: Path) -> None:
    """The model's state (packed layers included) and the map of which layers are packed and how."""
    from safetensors.torch import save_file

    cls = packed_linear_class()
    qmap = {name: {"bits": m.bits, "group_size": m.group_size, "in_features": m.in_features,
                   "out_features": m.out_features, "bias": m.bias is not None}
            for name, m in model.named_modules() if isinstance(m, cls)}
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    seen, unique = set(), {}
    for k, v in state.items():  # tied weights share storage; safetensors refuses aliases and the loader re-ties them
        key = (v.data_ptr(), tuple(v.shape), v.dtype)
        if key not in seen:
            seen.add(key)
            unique[k] = v
    save_file(unique, str(folder / PACKED_WEIGHTS_FILE), metadata={"format": "pt", "kernel": KERNEL})
    (folder / PACKED_MAP_FILE).write_text(json.dumps(qmap, indent=1))


def load_packed(folder: Path, config, device: str, dtype) -> Any:
    """Rebuild a model saved by `save_packed`: the architecture on `device`, its packed layers, then the weights."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from ..kernels.common import unavailable_reason

    reason = unavailable_reason(device)
    if reason:
        raise NotSupportedHere(f"{folder}: its weights are packed for optiplan's Triton kernel, and {reason}")
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    cls = packed_linear_class()
    qmap = json.loads((Path(folder) / PACKED_MAP_FILE).read_text())
    for name, spec in qmap.items():
        _replace(model, name, cls(spec["in_features"], spec["out_features"], spec["bits"], spec["group_size"],
                                  spec["bias"], dtype, device))
    missing, unexpected = model.load_state_dict(load_file(str(Path(folder) / PACKED_WEIGHTS_FILE), device=device),
                                                strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise ValueError(f"{folder / PACKED_WEIGHTS_FILE} does not match the architecture: "
                         f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.tie_weights()
    return model.eval()
