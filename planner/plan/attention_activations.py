"""What attention keeps for its backward beyond `training_activations.layer_activation_units`' fused kernel, by the
kernel a step runs: over packed documents masked apart (the memory-efficient kernel's bias, grouped keys and values
repeated to every head), eagerly where transformers has no SDPA attention for a model (the whole score matrix), and
on SDPA's math path where a model with attention dropout trains on a CPU. Measured as the layers' counts were
(benchmarks/bench_activation_memory.py)."""

from __future__ import annotations

from ..catalog.engine_refusals import sdpa_refused
from ..schema import ModelSpec
from .training_activations import (
    ATTENTION_INPUT_UNITS,
    FUSED_QKV_TYPES,
    HEAD_STAT_BYTES,
    KV_UNITS,
    QUERY_UNITS,
    output_copied,
)

# Model types transformers has no SDPA attention for (`sdpa_refused`), which the script's default attention therefore
# runs eagerly: the score matrix is kept for the backward, in bytes per score (measured on their layers at two
# sequence lengths, as layer_activation_units): Gemma 2's softcapping tanh's 16-bit output, its fp32 softmax and that
# softmax's 16-bit cast (8); gpt-oss's 16-bit softmax over the scores and its sinks' column (2); a Llama layer run
# eagerly keeps 6 (its fp32 softmax and the 16-bit cast), taken for another such model
EAGER_SCORE_BYTES = {"gemma2": 8.0, "gpt_oss": 2.0}
EAGER_SCORE_BYTES_DEFAULT = 6.0


def packed_attention_units(spec: ModelSpec, layer: int, sequence_length: int) -> float:
    """What attention keeps beyond `layer_activation_units` when the rendered script's packed documents are masked
    apart (templates/deploy/train.py.j2, `packed`): transformers builds a block-diagonal mask from the position ids,
    and with a mask on CUDA its SDPA path repeats grouped keys and values to every query head (sdpa_attention's
    use_gqa_in_sdpa: "CUDA ... require no mask"), which the kernel then keeps; and a masked kernel (memory-efficient
    attention, whose backward takes the bias) keeps a 16-bit bias of a row of the sequence per token. Where the model
    has no SDPA attention, eager attention repeats the keys and values too, and keeps its scores (EAGER_SCORE_BYTES) in
    place of the bias. None for a layer without attention (a state-space mixer takes no mask)."""
    if "attention" not in spec.mixer(layer):
        return 0.0
    h = spec.hidden_size
    expanded = 0.0 if spec.mla is not None else KV_UNITS * (spec.num_heads - spec.num_kv_heads) * spec.head_dim / h
    if sdpa_refused(spec.model_type):
        score_bytes = EAGER_SCORE_BYTES.get(spec.model_type, EAGER_SCORE_BYTES_DEFAULT)
        return expanded + spec.num_heads * sequence_length * score_bytes / h
    return expanded + 2 * sequence_length / h


# SDPA with dropout on a CPU runs its math path (no fused CPU kernel takes dropout), measured on GPT-2's and StarCoder
# 2's layers (their configs' attention dropout, 0.1): it keeps fp32 copies of the queries and of the keys and values
# repeated to every query head (4 bytes each a query width), the fp32 softmax, its dropout mask and the dropped
# probabilities over every key of the sequence (12 bytes a score, the causal half included), no statistics, and an
# output laid out head by head, which the output projection copies (2 a query width). CUDA's flash and
# memory-efficient kernels take dropout in the kernel and keep their random state only.
MATH_QKV_BYTES = 4.0
MATH_SCORE_BYTES = 12.0
FUSED_VIEW_COPY_BYTES = 8.0


def runs_math_path(spec: ModelSpec, cpu: bool) -> bool:
    """Whether a step runs SDPA's math path for the model's attention (`math_attention_units`): attention dropout on a
    CPU, for SDPA attention without latent attention (eager attention keeps its own scores; latent not measured)."""
    return cpu and spec.attention_dropout > 0 and spec.mla is None and not sdpa_refused(spec.model_type)


def math_attention_units(spec: ModelSpec, layer: int, sequence_length: int, act_bytes: int,
                         lora_autocast: bool = False) -> float:
    """What SDPA's math path keeps beyond `layer_activation_units`' fused kernel where a model with attention dropout
    trains on a CPU (MATH_SCORE_BYTES), in units at 16 bits (its fp32 tensors are fp32 whatever `act_bytes`). It
    takes the place of `packed_attention_units` there: the math path repeats the keys and values itself and keeps no
    bias. Under LoRA with autocast (`lora_autocast`) the output projection's adapter casts that copy and keeps it,
    which `lora_units` counts beside a flash kernel's output. None for a layer without attention, or where the path
    does not run (`runs_math_path`)."""
    if "attention" not in spec.mixer(layer) or not runs_math_path(spec, cpu=True):
        return 0.0
    h, q, kv = spec.hidden_size, spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim
    fp32 = 3 * MATH_QKV_BYTES * q + MATH_SCORE_BYTES * spec.num_heads * sequence_length
    # the copy, counted as the adapter's cast under LoRA where `lora_units` counts one
    counted = lora_autocast and not output_copied(spec, flash_kernel=True) and not spec.attn_output_gate
    copy = 0.0 if counted else ATTENTION_INPUT_UNITS * q
    # the kernel's, in the layer's count (its fp32 statistics fixed: `fp32_activations.fixed_units`)
    fused = QUERY_UNITS * q + KV_UNITS * kv + HEAD_STAT_BYTES * spec.num_heads * 2 / act_bytes
    # in an fp32 model the queries and keys a fused projection yields without rotary positions stay views of it (no
    # fp32 copy is made), which the path's matmuls copy: 8 bytes a query width (GPT-2's, measured at 4 and 8 heads)
    views = FUSED_VIEW_COPY_BYTES * q if act_bytes == 4 and spec.model_type in FUSED_QKV_TYPES \
        and (spec.rotary_fraction == 0 or spec.learned_positions) else 0.0
    return ((fp32 + views) * 2 / act_bytes + copy - fused) / h
