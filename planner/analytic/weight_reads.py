"""The weights a step reads on a device (all but the routed experts, and the experts its tokens are routed to), and the
time its linear layers take to read them: the engine's own weight kernel up to the rows it gives it (its share of the
peak bandwidth and its time per layer: launches and ramps of its GEMVs, llama.cpp's mat-vecs), the engine's GEMM
above them; the routed experts at the share of their own kernel where only they are quantized (gpt-oss's MXFP4
experts), through the engine's grouped GEMM beyond its rows."""

from __future__ import annotations

import math

from .params import busiest_device_experts, expected_experts_touched
from .setup import Setup


def _read_s(s: Setup, shared_bytes: float, expert_bytes: float, own_kernel: bool) -> float:
    """Seconds to read the weights by the engine's kernel (`own_kernel`) or by its GEMM."""
    peak = s.hw.memory_bandwidth_bytes_per_s  # measured kernels bring their own shares of it
    share = ((s.weight_bandwidth_efficiency or s.eff.bandwidth_efficiency) if own_kernel
             else s.eff.gemm_bandwidth_efficiency or s.eff.bandwidth_efficiency)
    expert_share = (s.expert_weight_share if own_kernel else None) or share
    kernel_s = s.eff.weight_kernel_layer_s * s.spec.num_layers if own_kernel else 0.0
    return shared_bytes / (peak * share) + expert_bytes / (peak * expert_share * s.eff.expert_bandwidth_ratio) \
        + kernel_s


def weight_read_s(s: Setup, rows: int, shared_bytes: float, expert_bytes: float, kernel_expert_bytes: float) -> float:
    """Seconds the step's `rows` take to read `shared_bytes` and `expert_bytes` of weights on the device. Above the
    rows the engine's kernel takes (`weight_kernel_max_rows`) its GEMM reads them, in no less time than the kernel
    took at those rows (reading `shared_bytes` and the routed experts those rows touch, `kernel_expert_bytes`): the
    engine's dispatch keeps the kernel up to those rows, set where its developers found the GEMM slower, and a GEMM
    over more rows is no faster. Without that floor a batch of 16 on llama.cpp decoded 2.5x faster a step than a
    batch of 8 (Llama-3.2-1B in bf16 on a B200: 0.98 ms against 2.54). (llama.cpp sends 16-bit weights to its mat-vec
    at one row on Ampere and later and up to 8 elsewhere; the profile keeps 8 rows: profiles/efficiency.yaml.)"""
    if s.eff.weight_kernel_max_rows is None or rows <= s.eff.weight_kernel_max_rows:
        return _read_s(s, shared_bytes, expert_bytes, own_kernel=True)
    return max(_read_s(s, shared_bytes, expert_bytes, own_kernel=False),
               _read_s(s, shared_bytes, kernel_expert_bytes, own_kernel=True))


def outside_block_bytes(s: Setup) -> float:
    """The weight bytes outside the blocks' linear layers, one device: norms, biases and routers (16-bit) and the
    output projection (in its own format)."""
    return (s.counts.small * s.act_bytes + s.counts.vocab_hidden * s.output_bytes) / s.tp


def dequantize_s(s: Setup, rows: int, quantized_bytes: float) -> float:
    """Seconds a step of `rows` rows spends converting its `quantized_bytes` of weights (the blocks' linear layers: a
    prompt's output projection takes its last row only) to 16 bits before a 16-bit GEMM takes them, where the engine
    does so (`dequantize_rows`: llama.cpp's prompts before b3216, through FP16 cuBLAS, the weights converted matrix by
    matrix each physical batch): the quantized weights read and their 16-bit copies written at the device's
    bandwidth, once per pass, in series with the GEMM; 0 for fewer rows (its quantized kernels) and for engines that
    read the weights as they are."""
    if s.dequantize_rows is None or rows < s.dequantize_rows[0] or not quantized_bytes:
        return 0.0
    written = quantized_bytes * 16 / s.bits_per_weight  # the same weights at two bytes each
    share = s.eff.activation_bandwidth_efficiency or s.eff.bandwidth_efficiency  # a streaming elementwise kernel
    passes = math.ceil(rows / s.dequantize_rows[1])
    return passes * (quantized_bytes + written) / (s.hw.memory_bandwidth_bytes_per_s * share)


def routed_expert_bytes(s: Setup, tokens: int) -> float:
    """The routed experts' weight bytes one forward pass over `tokens` tokens reads, one device: only the experts the
    tokens are routed to (all of them where the model's code runs every token through every one: `dense_experts`).
    Expert parallel: each device holds E/ep whole experts and waits for the busiest; otherwise
    every device holds a slice of every expert, and all read the same share."""
    c = s.counts
    if not c.num_moe_layers:
        return 0.0
    skew = s.eff.routing_skew
    touched = c.num_experts if s.dense_experts else \
        busiest_device_experts(c.num_experts, c.top_k, tokens, s.ep, skew) * s.ep if s.ep > 1 else \
        expected_experts_touched(c.num_experts, c.top_k, tokens, skew)
    return c.num_moe_layers * touched * c.layer.expert_linear * s.expert_bits_per_weight / 8 / s.shards


def all_expert_bytes(s: Setup) -> float:
    """Every routed expert's weight bytes, one device."""
    c = s.counts
    return c.num_moe_layers * c.num_experts * c.layer.expert_linear * s.expert_bits_per_weight / 8 / s.shards


def shared_weight_bytes(s: Setup) -> float:
    """The weight bytes every forward pass reads, one device, whatever its tokens: all but the routed experts."""
    c, lp = s.counts, s.counts.layer
    dense = c.num_dense_layers * c.dense_layer_linear + s.spec.extra_linear_reuse  # a shared block read per use
    moe = c.num_moe_layers * (lp.attn_linear + lp.shared_linear)
    return (dense + moe) * s.bits_per_weight / 8 / s.tp + outside_block_bytes(s)


def weights_read_bytes(s: Setup, tokens: int) -> float:
    """Weight bytes one forward pass over `tokens` tokens reads, one device (MoE layers read only the experts the
    tokens are routed to, or all where the model's code runs them densely: `routed_expert_bytes`)."""
    return shared_weight_bytes(s) + routed_expert_bytes(s, tokens)
