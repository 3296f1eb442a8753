"""What a full fine-tune without mixed precision keeps for its backward: an fp32 model's layers. They keep what a bf16
layer keeps (`training_activations.layer_activation_units`, in bytes per token and hidden unit at 16 bits), each 16-bit
tensor at 4 bytes, but the tensors a bf16 layer keeps in fp32 already, or as integers, stay as they are, and an fp32
copy a bf16 layer casts of a tensor it keeps anyway is that tensor in fp32 (the cast is an identity). `fixed_units`
counts those in the bf16 layer: an fp32 layer keeps 2 x its units less them. Read off the bench's layers in fp32
(benchmarks/bench_activation_memory.py, its fp32 rows: the same layers' saved tensors in an fp32 model)."""

from __future__ import annotations

from ..catalog.engine_refusals import dense_experts, sdpa_refused
from ..schema import ModelSpec
from .state_mixer_activations import STATE_MIXER_UNITS, fp32_mixer_units
from .training_activations import (
    EXPERT_INDEX_BYTES,
    FP32_ROUTER_TYPES,
    FP32_ROUTER_UNITS,
    FP32_WEIGHT_NORM_TYPES,
    FP32_WEIGHT_NORM_UNITS,
    HEAD_STAT_BYTES,
    L2_QK_NORM_UNITS,
    ROUTER_BYTES,
    ROUTER_EXPERT_BYTES,
    ROUTER_TOP_K_BYTES,
    UPCAST_LAYERNORM_TYPES,
    UPCAST_LAYERNORM_UNITS,
    l2_norm_runs,
    norms_run,
    state_mixer_kind,
)

# A norm's fp32 tensors, per unit of the width it normalizes: an RMSNorm's fp32 copy of its input (in an fp32 model,
# the input itself); one that multiplies its weight in fp32 its normalized copy too (FP32_WEIGHT_NORM_UNITS); Cohere's
# LayerNorm its three (UPCAST_LAYERNORM_UNITS); OLMo's weightless one its copy; a LayerNorm none (its 16-bit input
# doubles). And each keeps an fp32 statistic a row it normalizes (its rsqrt or mean and variance: 4 bytes).
NORM_FIXED_BYTES = {"rmsnorm": 4.0, "layernorm": 0.0, "nonparametric": 4.0}
NORM_STAT_BYTES = 4.0
# Eager attention's scores (`attention_activations.EAGER_SCORE_BYTES`) in fp32 where a bf16 layer keeps an fp32 softmax
# and its 16-bit cast (6, an identity cast in fp32: 4 fixed and the cast's 2 twice) or, Gemma 2's, beside a 16-bit tanh
# (8); gpt-oss's 16-bit softmax doubles
EAGER_FIXED_SCORE_BYTES = {"gemma2": 8.0, "gpt_oss": 0.0}
EAGER_FIXED_SCORE_BYTES_DEFAULT = 8.0


def norm_fixed_bytes(spec: ModelSpec) -> float:
    """The fp32 bytes a norm of the model's keeps per unit of its width in a bf16 layer (NORM_FIXED_BYTES)."""
    if spec.norm == "rmsnorm" and spec.model_type in FP32_WEIGHT_NORM_TYPES:
        return FP32_WEIGHT_NORM_UNITS
    if spec.model_type in UPCAST_LAYERNORM_TYPES:
        return UPCAST_LAYERNORM_UNITS
    return NORM_FIXED_BYTES.get(spec.norm, 0.0)


def fixed_units(spec: ModelSpec, layer: int, sequence_length: int = 0) -> float:
    """The part of `layer`'s bf16 count (`layer_activation_units`, and eager attention's scores over
    `sequence_length`) that an fp32 model keeps at the same size, not twice: its norms' fp32 tensors and statistics
    (NORM_FIXED_BYTES), SDPA's statistics, an fp32 softmax's scores, Llama 4's L2 norm's fp32 copy, a mixture of
    experts' router and dispatch bytes and an fp32 router's copy of its input, which is the input in fp32 (8 bytes);
    and a state mixer's, which `state_mixer_activations.fp32_mixer_units` counts in fp32."""
    h = spec.hidden_size
    norm = norm_fixed_bytes(spec)
    fixed = norms_run(spec, layer) * (norm + NORM_STAT_BYTES / h)
    kind = state_mixer_kind(spec, layer)
    if kind in STATE_MIXER_UNITS:  # a state mixer's own (`state_mixer_activations.fp32_mixer_units`)
        fixed += 2 * STATE_MIXER_UNITS[kind](spec) - fp32_mixer_units(spec)
    if "attention" in spec.mixer(layer):
        if spec.mla is not None:
            a = spec.mla
            latent = [w for w in (a.q_lora_rank, a.kv_lora_rank) if w]
            q = kv = 0  # no query-key norms on latent attention
            fixed += sum(norm * w + NORM_STAT_BYTES for w in latent) / h
        else:
            q, kv = spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim
        if sdpa_refused(spec.model_type):
            score = EAGER_FIXED_SCORE_BYTES.get(spec.model_type, EAGER_FIXED_SCORE_BYTES_DEFAULT)
            fixed += spec.num_heads * sequence_length * score / h
        else:
            fixed += HEAD_STAT_BYTES * spec.num_heads / h
        if spec.qk_norm == "l2":
            fixed += L2_QK_NORM_UNITS * (q + kv) / h if l2_norm_runs(spec, layer) else 0.0
        elif spec.qk_norm in ("head", "full"):
            stats = spec.num_heads + spec.num_kv_heads if spec.qk_norm == "head" else 2
            fixed += (norm * (q + kv) + NORM_STAT_BYTES * stats) / h
            if spec.attn_output_gate:
                # the queries are a view of the projection that yields the gate too: in fp32 the norm's input keeps
                # the gate's half alive, which a bf16 model's fp32 copy did not (Qwen3-Next's: 4 bytes a query width)
                fixed -= 4 * q / h
    m = spec.moe
    if m is not None and spec.layer_moe[layer] and spec.has_mlp(layer):
        dispatch = 0.0 if dense_experts(spec.model_type) else EXPERT_INDEX_BYTES * m.top_k
        fixed += (ROUTER_EXPERT_BYTES * m.num_experts + ROUTER_TOP_K_BYTES * m.top_k + ROUTER_BYTES + dispatch) / h
        if spec.model_type in FP32_ROUTER_TYPES:
            fixed += 2 * FP32_ROUTER_UNITS
    return fixed
