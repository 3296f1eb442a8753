"""KV-cache size, layer by layer: window caps, latent (MLA) caches, engine layouts, sharding.

An MLA model (DeepSeek-V2/V3) caches its compressed latent and rope key, (kv_lora_rank +
qk_rope_head_dim) elements per token and layer shared by all heads, in every engine (transformers
5 included). The layouts differ in windows:
- `serving` (vLLM, SGLang, TensorRT-LLM): a sliding-window layer holds `window` tokens.
- `transformers`: a sliding-window layer keeps `window - 1` tokens between steps (the newest is
  added when attention runs).
- `static` (gpt-fast's compiled decode): every layer holds a buffer of the whole sequence length, windows or not,
  and attention reads all of it each step (masked), filled or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import ceil

from ..catalog.dtypes import BITS, canonical
from ..schema import ModelSpec

# Integer KV caches keep an fp16 scale and an fp16 zero point per group of 64 values (the quanto and
# hqq cache backends' default q_group_size).
KV_GROUP_SIZE = 64
KV_SCALE_BITS = 16
KV_ZERO_BITS = 16
# Paged caches waste under 4% of what they hold in partly filled blocks (vLLM, arXiv 2309.06180).
PAGED_KV_WASTE = 0.04


@dataclass(frozen=True)
class KVGroup:
    """Layers that cache the same elements per token under the same window."""

    window: int | None
    layers: int
    elements_per_token: int  # per layer: keys + values (or latent) elements for one token


def layout_for_runtime(runtime: str) -> str:
    """The KV layout a runtime keeps: transformers' DynamicCache, a compiled decode step's static buffers, or a
    serving engine's paged blocks."""
    return {"transformers": "transformers", "compiled": "static"}.get(runtime, "serving")


def cache_tokens_held(input_tokens: int, output_tokens: int, on_demand: bool) -> int:
    """Cache tokens one running request occupies: room for its whole length (prompt and output), or, where the
    engine grows its paged cache as the sequence does (`catalog.engines.holds_used_cache`), what it holds on average
    over its life (the prompt plus half the output) and up to 4% more in partly filled blocks (vLLM's measured bound,
    taken whole). The request model and the planner both count a sequence's cache so."""
    if not on_demand:
        return input_tokens + output_tokens
    return ceil((input_tokens + output_tokens // 2) * (1 + PAGED_KV_WASTE))


def elements_per_token(spec: ModelSpec, layout: str) -> int:
    """Cached elements per token in one layer (the same in every layout)."""
    if spec.mla is not None:
        return spec.mla.kv_lora_rank + spec.mla.qk_rope_head_dim
    return spec.num_kv_heads * (spec.head_dim + spec.v_head_dim)


@lru_cache(maxsize=1024)
def kv_groups(spec: ModelSpec, layout: str, first_layer: int = 0, last_layer: int | None = None) -> tuple[KVGroup, ...]:
    """Group layers [first_layer, last_layer) by window."""
    per_layer = elements_per_token(spec, layout)
    counts: dict[int | None, int] = {}
    for i, w in enumerate(spec.layer_windows[:last_layer]):
        if i >= first_layer and "attention" in spec.mixer(i):  # a state-space layer caches no keys
            counts[w] = counts.get(w, 0) + 1
    return tuple(KVGroup(w, n, per_layer) for w, n in counts.items())


def tokens_held(window: int | None, context: int, layout: str) -> int:
    if window is None or layout == "static":
        return context
    return min(context, window - 1 if layout == "transformers" else window)


def kv_bits(kv_dtype: str) -> float:
    """Stored bits per cached element, quantization scales included: fp8 with one scale per tensor
    (vLLM), int8 and int4 with a scale and zero point per group (64 values, as the quanto and hqq
    cache backends of transformers store them)."""
    d = canonical(kv_dtype)
    if d in ("int8", "int4", "nf4", "fp4"):
        return BITS[d] + (KV_SCALE_BITS + KV_ZERO_BITS) / KV_GROUP_SIZE
    return float(BITS[d])


def kv_cache_elements(groups: tuple[KVGroup, ...], context: int, layout: str) -> int:
    return sum(g.layers * g.elements_per_token * tokens_held(g.window, context, layout) for g in groups)


def attention_kv_bytes(spec: ModelSpec, context: int, kv_dtype: str = "bf16", layout: str = "serving") -> float:
    """Attention keys and values of one sequence holding `context` tokens, all layers, one device."""
    return kv_cache_elements(kv_groups(spec, layout), context, layout) * kv_bits(kv_dtype) / 8


def state_parts(spec: ModelSpec, layout: str, first_layer: int = 0, last_layer: int | None = None) -> tuple[int, int]:
    """Fixed-size state of one sequence in layers [first_layer, last_layer), in elements: (each state layer's
    recurrent state: SSM, linear attention, RG-LRU; the last inputs of its causal convolution). transformers keeps
    the kernel's width of inputs; a serving engine (vLLM's mamba cache, mamba_ssm's `conv_state`) keeps one fewer,
    the newest token arriving with the step."""
    st = spec.state
    if st is None:
        return 0, 0
    layers = sum(1 for i in range(spec.num_layers)[first_layer:last_layer] if "state" in spec.mixer(i))
    # RecurrentGemma's own cache keeps width - 1 inputs, as the serving engines do
    full = layout == "transformers" and st.kind != "rglru"
    conv_tokens = st.conv_kernel if full else max(st.conv_kernel - 1, 0)
    return layers * st.recurrent_state_elements, layers * st.conv_channels * conv_tokens


def state_elements(spec: ModelSpec, layout: str, first_layer: int = 0, last_layer: int | None = None) -> int:
    """Fixed-size state of one sequence in layers [first_layer, last_layer), in elements (`state_parts`, summed)."""
    return sum(state_parts(spec, layout, first_layer, last_layer))


def state_dtype(kv_dtype: str) -> str:
    """Recurrent and convolution states stay in the activation format: KV quantization (fp8, int8, int4)
    applies to keys and values only, so a quantized KV dtype leaves the state at bf16."""
    d = canonical(kv_dtype)
    return d if d in ("fp32", "fp16", "bf16") else "bf16"


def kv_cache_bytes(spec: ModelSpec, context: int, kv_dtype: str = "bf16", layout: str = "serving") -> float:
    """Everything one sequence caches at `context` tokens, all layers, one device: attention keys and values
    plus the fixed-size state of state-space, linear-attention and convolution layers."""
    state = state_elements(spec, layout) * BITS[state_dtype(kv_dtype)] / 8
    return attention_kv_bytes(spec, context, kv_dtype, layout) + state


def tensor_parallel_share(spec: ModelSpec, layout: str, tp: int) -> float:
    """Fraction of a layer's cache one device holds under tensor parallelism. KV heads split across
    devices; with fewer KV heads than devices each device keeps a replica of one head, and an MLA
    latent (one shared "head") is replicated on every device."""
    if tp <= 1 or spec.mla is not None:
        return 1.0
    return ceil(spec.num_kv_heads / tp) / spec.num_kv_heads
