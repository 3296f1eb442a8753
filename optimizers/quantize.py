"""Weight quantization with the libraries that do it well: torchao (int8 weight-only, int8 dynamic
activations, int4 where its kernel exists), optimum-quanto (int8, int4, fp8 weights on any device),
GPTQ through gptqmodel and NF4 through bitsandbytes where they run (CUDA).

torchao weights go through transformers' `TorchAoConfig`, so the saved folder carries its
`quantization_config` and plain `AutoModelForCausalLM.from_pretrained` reloads it. quanto models do not
round-trip through `save_pretrained`; their weights are saved with quanto's own quantization map and
`optiplan.load` re-quantizes them (`quanto.safetensors`, so a plain loader finds no weights rather than
loading garbage).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from .workspace import NotSupportedHere, Workspace, device_kind

QUANTO_WEIGHTS_FILE = "quanto.safetensors"
QUANTO_MAP_FILE = "quanto_qmap.json"
# quanto's int4 group along the input dim (optimum/quanto/nn/qmodule.py: "group_size = 128", lowered by 32 until it
# divides in_features)
QUANTO_INT4_GROUP = 128


def _reload_with(ws: Workspace, quantization_config, dtype) -> None:
    """Reload the source weights through transformers with a quantization config (torchao, bitsandbytes, GPTQ)."""
    from transformers import AutoModelForCausalLM

    from ..planner.measure.runtime import torch_dtype

    ws.refuse_fused_experts(type(quantization_config).__name__.removesuffix("Config"))

    model = AutoModelForCausalLM.from_pretrained(
        ws.source, dtype=torch_dtype(dtype), quantization_config=quantization_config,
        attn_implementation=ws.runtime.attn_implementation, trust_remote_code=False,
        device_map=ws.device if device_kind(ws.device) == "cuda" else None)
    ws.model = model.to(ws.device).eval() if device_kind(ws.device) == "cpu" else model.eval()
    ws.quantization_config = quantization_config
    ws.runtime.dtype = dtype


def _torchao(ws: Workspace, config, label: str, params: dict[str, Any]) -> str:
    from transformers import TorchAoConfig

    # lm_head is a linear layer like the others; transformers keeps it unquantized unless told otherwise.
    # On the test model, int8 lm_head moves perplexity by under 0.01% and saves a tenth of the weights.
    keep_head = bool(params.get("keep_lm_head", False))
    _reload_with(ws, TorchAoConfig(config, modules_to_not_convert=None if keep_head else []), ws.runtime.dtype)
    return f"torchao {label} on every linear layer{' except lm_head' if keep_head else ''} (embeddings kept)"


def int8_weight_only(ws: Workspace, params: dict[str, Any]) -> str:
    """int8 weight-only (W8A16), per-channel scales, torchao (or quanto with backend=quanto, or optiplan's Triton
    kernel with kernel=triton)."""
    if params.get("kernel") == "triton":
        from .packed_weights import quantize_packed

        return quantize_packed(ws, 8, None)
    if params.get("backend") == "quanto":
        return _quanto(ws, "int8", params)
    from torchao.quantization import Int8WeightOnlyConfig

    return _torchao(ws, Int8WeightOnlyConfig(), "int8 weight-only", params)


def int8_dynamic(ws: Workspace, params: dict[str, Any]) -> str:
    """int8 weights and dynamically quantized int8 activations (W8A8), torchao."""
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig

    return _torchao(ws, Int8DynamicActivationInt8WeightConfig(), "int8 dynamic-activation W8A8", params)


def int4_weight_only(ws: Workspace, params: dict[str, Any]) -> str:
    """int4 weight-only, group 128: torchao's kernel on CUDA; quanto's qint4 elsewhere; optiplan's Triton kernel
    with kernel=triton."""
    group = int(params.get("group_size") or 128)
    if params.get("kernel") == "triton":
        from .packed_weights import quantize_packed

        return quantize_packed(ws, 4, group)
    # torchao's int4 tensor needs its CUDA kernel library (mslk or fbgemm-gpu); quanto packs int4 on any device
    kernels = device_kind(ws.device) == "cuda" and (importlib.util.find_spec("mslk") is not None
                                                     or importlib.util.find_spec("fbgemm_gpu") is not None)
    if kernels and params.get("backend") != "quanto":
        from torchao.quantization import Int4WeightOnlyConfig

        ws.runtime.dtype = "bf16"
        return _torchao(ws, Int4WeightOnlyConfig(group_size=group), f"int4 weight-only (group {group})", params)
    if params.get("backend") == "torchao":
        raise NotSupportedHere("torchao's int4 weight-only tensor needs its CUDA kernels (mslk or fbgemm-gpu), "
                               f"which {ws.device} does not have: use backend=quanto or kernel=triton")
    if params.get("group_size") not in (None, QUANTO_INT4_GROUP):
        raise NotSupportedHere(f"optimum-quanto packs int4 in groups of its own choosing ({QUANTO_INT4_GROUP}, or the "
                               "largest multiple of 32 under it that divides a layer's inputs), with no option for "
                               "another: group_size applies to torchao's kernel on CUDA or kernel=triton")
    return _quanto(ws, "int4", params)


def fp8_weights(ws: Workspace, params: dict[str, Any]) -> str:
    """fp8 (e4m3) weights: quanto qfloat8 weight-only (activations stay in the compute dtype)."""
    return _quanto(ws, "fp8", params)


def _quanto(ws: Workspace, kind: str, params: dict[str, Any] | None = None) -> str:
    """quanto weights on every linear layer, lm_head kept unless `keep_lm_head=false` asks for it too (refused where
    it shares the embedding's weights: the loader re-ties them after requantizing)."""
    if importlib.util.find_spec("optimum.quanto") is None:
        raise NotSupportedHere(f"{kind} weights with quanto need optimum-quanto: pip install 'optiplan[torch]'")
    from optimum.quanto import freeze, qfloat8, qint4, qint8, quantize

    head = (params or {}).get("keep_lm_head") is False
    if head and getattr(ws.model.config, "tie_word_embeddings", False):
        raise NotSupportedHere("keep_lm_head=false: this model's lm_head shares the embedding's weights, which "
                               "quanto would quantize apart from the embedding; keep lm_head")
    ws.refuse_fused_experts(f"optimum-quanto {kind}")
    weights = {"int8": qint8, "int4": qint4, "fp8": qfloat8}[kind]
    quantize(ws.model, weights=weights, exclude=None if head else ["lm_head"])
    freeze(ws.model)
    ws.runtime.weights = {"library": "quanto", "weights": kind, "file": QUANTO_WEIGHTS_FILE, "map": QUANTO_MAP_FILE}
    return f"optimum-quanto {kind} weights on every linear layer" + ("" if head else " except lm_head")


def gptq(ws: Workspace, params: dict[str, Any]) -> str:
    """GPTQ int4 (group 128) calibrated on the built-in corpus, through transformers' GPTQConfig and gptqmodel."""
    from transformers import GPTQConfig

    from .corpus import default_eval_text

    text = default_eval_text()
    chunks = [text[i:i + 2000] for i in range(0, min(len(text), 256_000), 2000)]
    config = GPTQConfig(bits=4, group_size=int(params.get("group_size") or 128), dataset=chunks,
                        tokenizer=ws.tokenizer)
    _reload_with(ws, config, "fp16")
    return f"GPTQ int4, group {config.group_size}, calibrated on {len(chunks)} held-out passages"


def nf4(ws: Workspace, params: dict[str, Any]) -> str:
    """NF4 weights with bf16 compute, bitsandbytes (CUDA: its CPU 4-bit reload is not reliable)."""
    import torch
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
    _reload_with(ws, config, "bf16")
    return "bitsandbytes NF4 weights, bf16 compute"


def save_quanto(model, folder) -> None:
    """quanto's own serialization: the flattened quantized state dict and the map of what was quantized."""
    import json

    from optimum.quanto import quantization_map
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    # tied weights share storage; safetensors refuses aliases, and the loader re-ties them
    seen, unique = set(), {}
    for k, v in state.items():
        key = (v.data_ptr(), tuple(v.shape), v.dtype)
        if key not in seen:
            seen.add(key)
            unique[k] = v
    save_file(unique, str(folder / QUANTO_WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / QUANTO_MAP_FILE).write_text(json.dumps(quantization_map(model), indent=1))


def load_quanto(folder, config, device: str, dtype):
    """Rebuild a quanto-quantized model: the architecture, then quanto's `requantize` of the saved weights.

    The architecture is built on the real device, not `meta`: non-persistent buffers (rotary frequencies) are
    not in the state dict and would stay on `meta`."""
    import json

    import torch
    from optimum.quanto import requantize
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    state = load_file(str(folder / QUANTO_WEIGHTS_FILE))
    qmap = json.loads((folder / QUANTO_MAP_FILE).read_text())
    requantize(model, state, qmap, device=torch.device(device))
    model.tie_weights()
    return model.eval()
