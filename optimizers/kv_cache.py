"""KV-cache techniques: a quantized cache (transformers' quanto, hqq and fp8 backends), and attention sinks
with a sliding window (StreamingLLM, arXiv 2309.17453), which transformers no longer ships, written here
as a proper `Cache` subclass.

The sink cache keeps the first `num_sinks` tokens and the most recent `window` tokens. As in StreamingLLM,
positions are those *within the cache*: when tokens are evicted, the kept recent keys are re-rotated to
their new positions, and queries get the position just after the cache (a forward pre-hook sets
`position_ids`), so relative distances never exceed what the model saw in training. `num_sinks=0` gives a
plain sliding window, the baseline StreamingLLM improves on.
"""

from __future__ import annotations

from typing import Any

from .batching import kv_width
from .workspace import NotSupportedHere, Workspace, tensor_bytes

# kv technique id -> transformers QuantizedCache settings. quanto packs 2 or 4 bits, hqq 1-8, fp8 is per-tensor.
KV_BACKENDS = {
    "kv-int4": {"backend": "quanto", "nbits": 4},
    "kv-int8": {"backend": "hqq", "nbits": 8},
    "kv-fp8": {"backend": "fp8"},
}
RESIDUAL_TOKENS = 64  # recent tokens kept unquantized before they are packed (transformers' residual_length)


def layer_types(config) -> list[str]:
    """Each layer's cache type as transformers' caches read it (from `layer_types`, else from the sliding-window and
    chunk fields: cache_utils.get_layer_types_and_kwargs)."""
    from transformers.cache_utils import get_layer_types_and_kwargs

    return get_layer_types_and_kwargs(config.get_text_config(decoder=True))[0]


def _token_widths(config) -> list[int]:
    """Values a layer caches of one token, tensor by tensor: its keys and values, KV heads x head dim; latent
    attention caches its compressed latent and the keys' rotary part (DeepSeek's cache.update(kv_nope, k_rot))."""
    config = config.get_text_config(decoder=True)
    if getattr(config, "kv_lora_rank", None):
        return [config.kv_lora_rank, config.qk_rope_head_dim]
    return [kv_width(config)]


def _kv_quantized(ws: Workspace, technique: str, params: dict[str, Any]) -> str:
    ws.claim_cache(technique)
    settings = dict(KV_BACKENDS[technique])
    if params.get("backend"):
        settings["backend"] = params["backend"]
    if why := _backend_refusal(technique, settings["backend"]):
        raise NotSupportedHere(why)
    if others := set(layer_types(ws.model.config)) - {"full_attention"}:
        raise NotSupportedHere(f"transformers' QuantizedCache takes full-attention layers only (\"`QuantizedCache` is "
                               f"only supported for models with only full attention layers\"); "
                               f"{type(ws.model).__name__} has {', '.join(sorted(others))} layers")
    package = {"quanto": "optimum.quanto", "hqq": "hqq"}.get(settings["backend"])
    if package:
        import importlib.util

        if importlib.util.find_spec(package) is None:
            raise NotSupportedHere(f"{technique} with the {settings['backend']} backend needs {package}: "
                                   f"pip install 'optiplan[torch]'")
    if settings["backend"] != "fp8":
        settings["residual_length"] = int(params.get("residual_length", RESIDUAL_TOKENS))
        if params.get("group_size"):  # the planner's step gives the quantization group along the head dim
            settings["q_group_size"] = int(params["group_size"])
        # the backends quantize a layer's keys of each new token together, in groups that must divide them
        group = settings.get("q_group_size", 64)
        if widths := [w for w in _token_widths(ws.model.config) if w % group]:
            raise NotSupportedHere(f"{technique}: a token's cached values in a layer ({widths[0]}) do not divide into "
                                   f"groups of {group}, as transformers' {settings['backend']} cache packs them")
    ws.runtime.cache = {"kind": "quantized", **settings}
    bits = settings.get("nbits", 8)
    return f"quantized KV cache: {settings['backend']} {bits}-bit" + (
        f", last {settings['residual_length']} tokens kept in full precision" if "residual_length" in settings else "")


# what each of transformers' cache backends stores: quanto packs integers of 2 or 4 bits, hqq of 1 to 8, fp8 is e4m3
# with a scale per tensor (no integer widths)
BACKEND_FORMATS = {"quanto": ("int4",), "hqq": ("int4", "int8"), "fp8": ("fp8",)}


def _backend_refusal(technique: str, backend: str) -> str | None:
    """Why `backend` cannot store the cache `technique` names (an int8 cache in quanto's 2- and 4-bit packing, an fp8
    cache in an integer backend), or None."""
    fmt = technique.removeprefix("kv-")
    if fmt in BACKEND_FORMATS.get(backend, ()):
        return None
    stores = " or ".join(BACKEND_FORMATS.get(backend, ()))
    fits = [b for b, formats in BACKEND_FORMATS.items() if fmt in formats]
    return (f"{technique}: transformers' {backend} cache backend stores {stores}, not {fmt}; "
            f"use backend={' or '.join(fits)}")


def kv_int4(ws: Workspace, params: dict[str, Any]) -> str:
    """int4 KV cache (quanto backend; hqq with backend=hqq)."""
    return _kv_quantized(ws, "kv-int4", params)


def kv_int8(ws: Workspace, params: dict[str, Any]) -> str:
    """int8 KV cache (hqq backend: quanto packs 2 or 4 bits only)."""
    return _kv_quantized(ws, "kv-int8", params)


def kv_fp8(ws: Workspace, params: dict[str, Any]) -> str:
    """fp8 (e4m3) KV cache with a per-tensor scale (transformers' fp8 backend)."""
    return _kv_quantized(ws, "kv-fp8", params)


def sinks(ws: Workspace, params: dict[str, Any]) -> str:
    """Sliding window with attention sinks (StreamingLLM): memory stays flat however long the stream."""
    ws.claim_cache("sliding-window-sinks")
    rotary = getattr(getattr(ws.model, "model", None), "rotary_emb", None)
    if rotary is None or getattr(ws.model.config, "partial_rotary_factor", 1.0) not in (None, 1.0):
        raise NotSupportedHere(f"attention sinks need full rotary position embeddings to re-rotate kept keys; "
                               f"{type(ws.model).__name__} has none")
    if getattr(ws.model.config, "kv_lora_rank", None):
        raise NotSupportedHere(f"attention sinks re-rotate whole kept keys; {type(ws.model).__name__}'s latent "
                               "attention rotates only a part of each (qk_rope_head_dim)")
    kinds = set(getattr(ws.model.config, "layer_types", None) or ["full_attention"])
    if kinds != {"full_attention"}:
        raise NotSupportedHere(f"attention sinks keep one window for every layer; {type(ws.model).__name__}'s layers "
                               f"are {', '.join(sorted(kinds))} (a sliding window or state layers of its own)")
    num_sinks = int(params.get("num_sinks", 4))
    default_window = min(getattr(ws.model.config, "max_position_embeddings", 1024) or 1024, 1024) // 2
    window = int(params.get("window", default_window))
    if window < 1 or num_sinks < 0:
        raise NotSupportedHere(f"attention sinks: window must be >= 1 and num_sinks >= 0 (got {window}, {num_sinks})")
    ws.runtime.cache = {"kind": "sinks", "num_sinks": num_sinks, "window": window}
    return f"attention sinks: keep the first {num_sinks} tokens and the last {window}"


def make_sink_cache(model, num_sinks: int, window: int):
    """A `SinkCache` for `model`, re-rotating kept keys with the model's own rotary embedding."""
    import torch
    from transformers.cache_utils import Cache, DynamicLayer

    rotary = model.model.rotary_emb

    def rotate(keys: torch.Tensor, delta: int) -> torch.Tensor:
        """Move RoPE'd keys (b, h, n, d) by `delta` positions: rotation composes, so rotate by delta once."""
        pos = torch.tensor([[delta]], device=keys.device)
        # the rotary module's cos and sin carry its attention scaling (YaRN's, longrope's): a key already carries it,
        # and a pure rotation keeps its norm, so it is divided out (else a kept key grows by it at every eviction)
        scaling = float(getattr(rotary, "attention_scaling", 1.0) or 1.0)
        cos, sin = rotary(keys.float(), position_ids=pos)  # (1, 1, d), in fp32
        cos, sin = cos[:, None] / scaling, sin[:, None] / scaling
        half = keys.shape[-1] // 2
        k = keys.float()
        rotated_half = torch.cat((-k[..., half:], k[..., :half]), dim=-1)
        return (k * cos + rotated_half * sin).to(keys.dtype)

    class SinkLayer(DynamicLayer):
        """Keeps `num_sinks` first and `window` last tokens; returns every token for the current step."""

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            keys = torch.cat([self.keys, key_states], dim=-2)
            values = torch.cat([self.values, value_states], dim=-2)
            excess = keys.shape[-2] - (num_sinks + window)
            if excess > 0:
                recent_k, recent_v = keys[:, :, -window:], values[:, :, -window:]
                self.keys = torch.cat([keys[:, :, :num_sinks], rotate(recent_k, -excess)], dim=-2)
                self.values = torch.cat([values[:, :, :num_sinks], recent_v], dim=-2)
            else:
                self.keys, self.values = keys, values
            return keys, values  # the attention of this step sees everything it was given

        def get_max_length(self) -> int:
            return num_sinks + window

    class SinkCache(Cache):
        """Attention sinks + sliding window: bounded memory, positions within the cache (StreamingLLM)."""

        def __init__(self):
            super().__init__(layers=[SinkLayer() for _ in range(model.config.num_hidden_layers)])
            self.num_sinks, self.window = num_sinks, window

    return SinkCache()


def install_position_hook(model) -> None:
    """Queries under a sink cache take the position right after the cached tokens, not their absolute one."""
    import torch

    if getattr(model, "_optiplan_sink_hook", False):
        return

    def hook(module, args, kwargs):
        cache = kwargs.get("past_key_values", kwargs.get("cache"))
        if cache is None or not hasattr(cache, "num_sinks"):
            return None
        ids = kwargs.get("input_ids", args[0] if args else None)
        length = ids.shape[1] if ids is not None else kwargs["inputs_embeds"].shape[1]
        start = cache.get_seq_length()
        device = ids.device if ids is not None else kwargs["inputs_embeds"].device
        kwargs["position_ids"] = (torch.arange(length, device=device) + start).unsqueeze(0)
        return args, kwargs

    model.register_forward_pre_hook(hook, with_kwargs=True)
    model._optiplan_sink_hook = True


def _held_bytes(value) -> int:
    """Bytes of the tensors in `value`, through tuples, lists and dicts: a quantized layer keeps its data beside the
    scales and zero points it dequantizes with (HQQ's (tensor, {"scale", "zero", ...}))."""
    if hasattr(value, "element_size") and hasattr(value, "numel"):
        return tensor_bytes(value)
    if isinstance(value, dict):
        return sum(_held_bytes(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return sum(_held_bytes(v) for v in value)
    return 0


def cache_bytes(cache) -> int:
    """Bytes a cache holds right now, whatever its layers store (quantized data with its scales and zero points)."""
    return sum(_held_bytes(value) for layer in getattr(cache, "layers", [])
               for name, value in vars(layer).items() if name != "_sliding_window_tensor")
