"""The analytic model: FLOPs, bytes, memory and roofline time of prefill and decode steps.

Pure functions of a resolved `Setup` (model x device x parallelism x formats x efficiency), so the
planner can transform a Setup per technique and predict baseline and plan with the same code.
Time of a step = a roofline per kind of kernel, summed (the linear layers: max(matmul time, weight
bytes' time); attention: max(attention FLOPs' time, KV-cache bytes' time); elementwise kernels:
activation bytes' time) + communication + fixed overheads, where compute and memory time use the
datasheet peaks scaled by the efficiency factors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..schema import ModelSpec
from .chunked_attention import attention_chunks, chunk_keys, chunk_pairs
from .cuda_graphs import graph_rows
from .kvcache import elements_per_token, kv_cache_elements, state_parts
from .offload import host_layers_s, streamed_weights_s
from .setup import Setup
from .step_cost import StepCost
from .weight_reads import (
    all_expert_bytes,
    dequantize_s,
    outside_block_bytes,
    routed_expert_bytes,
    shared_weight_bytes,
    weight_read_s,
)

# Share of the link bandwidth a ring all-reduce achieves (NCCL "bus bandwidth" on NVLink/PCIe is
# typically about 80% of the link rate).
ALLREDUCE_EFFICIENCY = 0.8


# ---------------------------------------------------------------------------------------------
# FLOPs
# ---------------------------------------------------------------------------------------------


def attention_dims(spec: ModelSpec, layout: str, decode: bool) -> int:
    """Multiply-add width per (query head, key) pair: QK^T over the key dim plus PV over the value dim.
    An MLA decode step in a serving engine attends in the latent space (weights absorbed);
    transformers expands the latent into per-head keys and values (see `mla_expansion_flops`)."""
    if spec.mla is not None and decode and layout == "serving":
        return 2 * spec.mla.kv_lora_rank + spec.mla.qk_rope_head_dim
    return spec.head_dim + spec.v_head_dim


def mla_expansion_flops(spec: ModelSpec, layout: str, keys: float) -> float:
    """transformers re-expands the cached MLA latent of every key through kv_b_proj at each forward:
    2 x kv_lora_rank x heads x (nope + v) FLOPs per key and layer (zero elsewhere)."""
    if spec.mla is None or layout != "transformers":
        return 0.0
    m = spec.mla
    return 2 * m.kv_lora_rank * spec.num_heads * (m.qk_nope_head_dim + m.v_head_dim) * keys


def _causal_pairs(prompt: int, window: int | None) -> float:
    """Query-key pairs a causal (optionally windowed) attention computes over a prompt."""
    if window is None or window >= prompt:
        return prompt * (prompt + 1) / 2
    return window * (window + 1) / 2 + (prompt - window) * window


def attention_windows(spec: ModelSpec, layout: str = "serving") -> list[int | None]:
    """Windows of the layers that attend (every layer of a Transformer; a hybrid's attention layers); a static
    cache (gpt-fast) attends over the whole sequence in every layer."""
    windows = list(spec.layer_windows) if not spec.layer_mixers else \
        [w for i, w in enumerate(spec.layer_windows) if "attention" in spec.mixer(i)]
    return [None] * len(windows) if layout == "static" else windows


def state_scan_flops(spec: ModelSpec, tokens: float) -> float:
    """FLOPs of the state layers' token mixing for `tokens` tokens: convolution, state update and readout
    (their projections are matmuls, counted with the linear layers). The same per token at any context:
    a recurrent layer's decode step costs no more at 128k tokens than at 1k."""
    return tokens * spec.state_layers * spec.state.scan_flops_per_token if spec.state is not None else 0.0


def _layer_pairs(prompt: int, window: int | None, chunk: int | None) -> float:
    """Causal query-key pairs one layer computes over a prompt: its window's, or its chunks' (the fewer of the two
    where a layer has both)."""
    pairs = _causal_pairs(prompt, window)
    return min(pairs, chunk_pairs(prompt, chunk)) if chunk else pairs


def layer_keys(context: int, window: int | None, chunk: int | None) -> int:
    """Keys one layer's decode attends to for a sequence of `context` tokens: the whole context, its window's or its
    own chunk's (`analytic.chunked_attention`)."""
    keys = min(context, window) if window else context
    return min(keys, chunk_keys(context, chunk)) if chunk else keys


def prefill_attention_flops(s: Setup, batch: int, prompt: int, cached: int = 0) -> float:
    """Token-mixing FLOPs of prefilling tokens [cached, prompt) of each prompt: attention (with a cached
    prefix the new tokens still attend to the whole prefix, windows and chunks permitting) and the state layers'
    scan."""
    dims = 2 * s.spec.num_heads * attention_dims(s.spec, s.layout, decode=False)
    scan = state_scan_flops(s.spec, batch * (prompt - cached))
    windows = attention_windows(s.spec, s.layout)
    if s.eager_attention:  # the full score matrix is computed, then masked
        return batch * dims * len(windows) * (prompt - cached) * prompt + scan
    spans = zip(windows, attention_chunks(s.spec, s.layout))
    return batch * dims * sum(_layer_pairs(prompt, w, c) - _layer_pairs(cached, w, c) for w, c in spans) + scan


def decode_attention_flops(s: Setup, batch: int, context: int) -> float:
    dims = 2 * s.spec.num_heads * attention_dims(s.spec, s.layout, decode=True)
    keys = sum(layer_keys(context, w, c) for w, c in zip(attention_windows(s.spec, s.layout),
                                                          attention_chunks(s.spec, s.layout)))
    return batch * (dims * keys + mla_expansion_flops(s.spec, s.layout, keys)) + state_scan_flops(s.spec, batch)


def chunk_read_bytes(s: Setup, context: int) -> float:
    """What a decode step's chunked layers read of one sequence's cache on one device beyond what they store (less
    than nothing past a chunk: they read their own chunk's keys, the cache keeps all of them), each key read
    `chunk_rereads` times."""
    layers = [(w, c) for w, c in zip(attention_windows(s.spec, s.layout), attention_chunks(s.spec, s.layout)) if c]
    if not layers:
        return 0.0
    per_key = elements_per_token(s.spec, s.layout) * s.kv_element_bytes * (1.0 - s.host_layer_share)
    return per_key * sum(layer_keys(context, w, c) * s.chunk_rereads - layer_keys(context, w, None) for w, c in layers)


def matmul_flops(s: Setup, tokens: float, logits_tokens: float) -> float:
    """Every matmul weight a token passes through, a shared block at each of its uses; where the model's code runs
    every token through every routed expert (`Setup.dense_experts`), all of them."""
    c = s.counts
    unrouted = (experts_per_token(s) - c.top_k) * c.num_moe_layers * c.layer.expert_linear
    return 2 * tokens * (c.active_linear + s.spec.extra_linear_reuse + unrouted) + 2 * logits_tokens * c.vocab_hidden


def experts_per_token(s: Setup) -> int:
    """The routed experts a token goes through: its top-k, or every one where the model's code runs them densely."""
    return s.counts.num_experts if s.dense_experts else s.counts.top_k


# ---------------------------------------------------------------------------------------------
# Bytes
# ---------------------------------------------------------------------------------------------


def kv_bytes_per_device(s: Setup, context: int, stage: int | None = None, host: bool = False) -> float:
    """Cache bytes of one sequence on one device, attention KV and fixed-size state together: one pipeline
    stage (all stages when None). With data-parallel attention the sequences spread over its groups, a share of
    1/attention_dp each. The layers an engine keeps and computes in host memory keep their caches there too
    (llama.cpp: `host_layer_share`); `host` gives that share instead of the device's."""
    groups = s.stage_kv_groups if stage is None else (s.stage_kv_groups[stage],)
    elements = sum(kv_cache_elements(g, context, s.layout) for g in groups)
    whole = elements * s.kv_element_bytes + state_bytes_per_device(s, stage)
    return whole * (s.host_layer_share if host else 1.0 - s.host_layer_share)


def state_bytes(s: Setup, first: int = 0, last: int | None = None) -> float:
    """Recurrent and convolution state of one sequence in layers [first, last), in the activation format (KV
    quantization leaves it alone), the recurrent state in the engine's own where set (vLLM's fp32 for Nemotron-H)."""
    recurrent, conv = state_parts(s.spec, s.layout, first, last)
    return recurrent * (s.recurrent_state_bytes or s.act_bytes) + conv * s.act_bytes


def state_bytes_per_device(s: Setup, stage: int | None = None) -> float:
    """`state_bytes` on one device, of a pipeline stage (all when None), split with the mixer's heads by TP."""
    if s.spec.state is None:
        return 0.0
    first, last = (0, None) if stage is None else s.stages[stage]
    return state_bytes(s, first, last) / s.tp / s.attention_dp


def active_intermediate(s: Setup) -> int:
    if s.spec.moe is None:
        return s.spec.intermediate_size
    m = s.spec.moe
    return max(s.spec.intermediate_size if not all(s.spec.layer_moe) else 0,
               experts_per_token(s) * m.expert_intermediate_size + m.shared_intermediate_size)


def activation_traffic_bytes(s: Setup, tokens: float) -> float:
    """Hidden states and MLP intermediates written and read by one forward pass, one device: a share of the tokens
    under data-parallel attention (each group holds its own sequences' states; a token's routed experts spread over
    all devices), all of them otherwise."""
    per_layer = tokens / s.attention_dp * s.act_bytes * (6 * s.spec.hidden_size + 3 * active_intermediate(s) / s.tp)
    return per_layer * s.spec.num_layers


def routed_activation_bytes(s: Setup, tokens: float) -> float:
    """The routed experts' intermediates within `activation_traffic_bytes`: spread over every expert-parallel device
    whichever attention group the tokens come from."""
    m = s.spec.moe
    if m is None:
        return 0.0
    per_layer = tokens / s.attention_dp * s.act_bytes * 3 * experts_per_token(s) * m.expert_intermediate_size / s.tp
    return per_layer * s.counts.num_moe_layers


def routed_matmul_flops(s: Setup, tokens: float) -> float:
    """The routed experts' share of `matmul_flops`: spread over every expert-parallel device whichever attention
    group the tokens come from."""
    c = s.counts
    return 2 * tokens * c.num_moe_layers * experts_per_token(s) * c.layer.expert_linear


def busiest_group_multiple(s: Setup, sequences: float) -> float:
    """How many times an even share (1 / attention_dp) of a step's `sequences`, alike, the data-parallel attention
    group holding the most of them carries: whole sequences go to the groups in turn, so with fewer sequences than
    groups each busy group holds one and the others wait for them at each MoE layer's exchange (a lone prompt
    prefills on one group's devices while the rest of the deployment idles), and nine sequences on eight groups put
    two on one (16/9 of an even share)."""
    whole = max(math.ceil(sequences - 1e-9), 1)
    return s.attention_dp * math.ceil(whole / s.attention_dp) / whole


# ---------------------------------------------------------------------------------------------
# Communication and overhead
# ---------------------------------------------------------------------------------------------


def allreduce_s(s: Setup, message_bytes: float, devices: int | None = None) -> float:
    """All-reduce over the tensor-parallel group (or `devices` of them): the ring's 2(n-1)/n of the message over the
    link, plus ceil(log2 n) link latencies (small decode messages go through one-shot or tree algorithms,
    not 2(n-1) ring hops: vLLM's custom all-reduce, NCCL's LL protocols), plus the runtime's fixed cost of a
    collective (its launch and the devices' synchronisation). A group wider than a node reduces in two levels, one
    after the other: inside each node over its links, then each device's 1/m share across the k nodes over its own
    scale-out port (an upper bound where NCCL pipelines the two in one ring or tree)."""
    n = devices or s.tp
    if n <= 1 or s.hw.interconnect is None:
        return 0.0
    link = s.hw.interconnect
    one_way = link.bandwidth_gbps / 2 * 1e9 * ALLREDUCE_EFFICIENCY
    m = min(n, link.max_devices_per_node)
    inside = 2 * (m - 1) / m * message_bytes / one_way + math.ceil(math.log2(m)) * link.latency_us * 1e-6 \
        if m > 1 else 0.0
    k = math.ceil(n / m)
    across = 2 * (k - 1) / k * message_bytes / m / (link.scale_out_gbps * 1e9 * ALLREDUCE_EFFICIENCY) + \
        math.ceil(math.log2(k)) * link.scale_out_latency_us * 1e-6 if k > 1 else 0.0
    return inside + across + s.eff.collective_latency_s


def all_to_all_s(s: Setup, message_bytes: float) -> float:
    """Expert-parallel dispatch or combine from data-parallel attention: each device sends (ep-1)/ep of its
    tokens' hidden states. Under tensor-parallel attention every device already holds every token: each computes
    its experts' share and the MoE output is all-reduced like a dense MLP's, with no dispatch."""
    if s.ep <= 1 or s.attention_dp <= 1 or s.hw.interconnect is None:
        return 0.0
    link = s.hw.interconnect
    one_way = link.bandwidth_gbps / 2 * 1e9 * ALLREDUCE_EFFICIENCY
    node = min(link.max_devices_per_node, s.ep)
    inside = (node - 1) / s.ep * message_bytes / one_way + (node - 1) * link.latency_us * 1e-6 + \
        s.eff.collective_latency_s
    if node == s.ep:
        return inside
    # the share bound for other nodes leaves through the device's scale-out port, alongside NVLink traffic
    across = (s.ep - node) / s.ep * message_bytes / (link.scale_out_gbps * 1e9 * ALLREDUCE_EFFICIENCY)
    return max(inside, across) + (s.ep // node - 1) * link.scale_out_latency_us * 1e-6


def _comm_s(s: Setup, tokens: float, busy: float | None = None) -> float:
    """The step's collectives: all-reduces inside each tensor-parallel group over its own sequences' tokens (`busy`:
    the step's tokens over the busiest data-parallel attention group's, the number of groups holding some where the
    tokens spread evenly, all of them by default), pipeline hops, and the MoE dispatch and combine of the busiest
    group's top-k copies (expert parallel) or the gather and scatter of every group's tokens (experts
    tensor-parallel under data-parallel attention)."""
    busy = busy or s.attention_dp
    message = tokens * s.spec.hidden_size * s.act_bytes
    # after attention and after the MLP, each tensor-parallel group over its own sequences
    per_layer = 2 * allreduce_s(s, message / busy)
    hops = 0.0
    if s.pp > 1 and s.hw.interconnect is not None:
        link = s.hw.interconnect
        across = min(max(math.ceil(s.tp * s.pp / link.max_devices_per_node) - 1, 0), s.pp - 1)  # to the next node
        hops = (s.pp - 1 - across) * (message / (link.bandwidth_gbps / 2 * 1e9) + link.latency_us * 1e-6) + \
            across * (message / (link.scale_out_gbps * 1e9) + link.scale_out_latency_us * 1e-6)
    moe = 0.0
    if s.ep > 1 and s.attention_dp > 1 and s.counts.num_moe_layers:  # dispatch and combine of top-k copies
        routed = message / (s.tp * busy) * s.counts.top_k
        moe = 2 * all_to_all_s(s, routed) * s.counts.num_moe_layers
    elif s.attention_dp > 1 and s.counts.num_moe_layers:
        # experts tensor-parallel over every device (SGLang's DP attention without expert parallelism): each MoE
        # layer gathers every group's tokens onto every device and scatters the summed outputs back, an all-reduce's
        # traffic over all of them in place of the group's own after the MLP
        moe = (allreduce_s(s, message, s.shards) - allreduce_s(s, message / busy)) * s.counts.num_moe_layers
    return per_layer * s.spec.num_layers + hops + moe


def _overhead_s(s: Setup, tokens: float) -> float:
    """A step's fixed costs: per step, per layer, and what a MoE layer's routed experts, a latent-attention layer and
    a state layer add to a layer's kernels (their kernels' fixed times at a small batch: a serving engine's runtime
    states them), less what the engine's fused all-reduces save in a step of up to the tokens it fuses (each layer's
    two but the last layer's after its MLP: `engine_fusions`)."""
    e = s.eff
    mla_layers = s.spec.num_layers if s.spec.mla is not None else 0
    state_layers = s.spec.state_layers if s.spec.state is not None else 0
    fused = (2 * s.spec.num_layers - 1) * e.allreduce_fusion_saving_s if 0 < tokens <= s.fused_allreduce_tokens else 0.0
    return max(e.step_overhead_s + e.layer_overhead_s * s.spec.num_layers + e.moe_layer_overhead_s
               * s.counts.num_moe_layers + e.mla_layer_overhead_s * mla_layers + e.state_layer_overhead_s * state_layers
               - fused, 0.0)


def matmul_efficiency(eff, tokens: int) -> float:
    """Flop efficiency of a matmul over `tokens` rows: small matrix products (a decode step's few
    rows) reach less of the peak, `matmul_half_tokens` (measured by calibration) being where they reach
    half; a single row runs as a matrix-vector product, a bandwidth-bound kernel of its own."""
    half = eff.matmul_half_tokens
    return eff.flop_efficiency * (tokens / (tokens + half) if half and tokens > 1 else 1.0)


@dataclass(frozen=True)
class Busiest:
    """Under data-parallel attention, how many times an even share (1 / attention_dp) of the step's work the busiest
    group carries: of its tokens (the non-routed layers, activations, all-reduces and the weight kernel's rows), of
    its attention FLOPs and of its cache bytes. A step's decode sequences spread over the groups while a prompt sits
    in the one group that prefills it, so the three differ in a step that carries both."""
    tokens: float
    attention: float
    cache: float


def _cost(s: Setup, matmul: float, attention: float, weight_tokens: int, kv_dev: float, act_dev: float,
          tokens: float, sequences: int, busiest: Busiest | None = None, host_kv: float = 0.0) -> StepCost:
    """The step's cost. The linear layers (matmul FLOPs against the weight bytes), attention (its FLOPs against the
    KV-cache bytes) and the elementwise kernels between them (norms, activations, residual adds, rotary: activation
    bytes only) run one after another, each bound by its own roof, so their times add. One roof over the whole step
    hid a large batch's long-context cache traffic under the linear layers' compute: on the CPU accuracy benchmark
    decode at batch 8 and context 512 came out 13-35% too fast, where the cache's bytes account for the measured
    step from context 128 to 512 within a few percent. Refitting five saved benchmark runs, the worse of the
    held-out prefill and decode median errors fell from 15.7% (one roof) to 15.6% (attention apart) and 13.0% (the
    elementwise kernels apart too)."""
    peak = s.peak_flops * s.shards  # the work is spread over the shards
    # under data-parallel attention the busiest group sets the step: with fewer sequences than groups, the groups
    # holding them take on all of the step's attention, caches and non-routed layers (`kv_dev` and `act_dev` come as
    # even shares); a mixed step's prompts load their own groups beside an even share of the decoding (`Busiest`)
    if busiest is None:
        lag = busiest_group_multiple(s, sequences)
        busiest = Busiest(lag, lag, lag)
    flops = matmul + attention
    if s.attention_dp > 1 and busiest != Busiest(1.0, 1.0, 1.0):
        routed = routed_matmul_flops(s, tokens)
        routed_act = min(routed_activation_bytes(s, tokens), act_dev)
        matmul = (matmul - routed) * busiest.tokens + routed
        attention, kv_dev = attention * busiest.attention, kv_dev * busiest.cache
        act_dev = (act_dev - routed_act) * busiest.tokens + routed_act
    group_rows = tokens * busiest.tokens / s.attention_dp  # the busiest group's rows
    attention_eff = s.attention_efficiency or s.eff.flop_efficiency
    matmul_eff = matmul_efficiency(s.eff, max(int(group_rows + 1e-9), 1))
    stream = s.eff.activation_bandwidth_efficiency or s.eff.bandwidth_efficiency  # 16-bit activations, any weights
    bandwidth = s.hw.memory_bandwidth_bytes_per_s * stream
    peak_bw = s.hw.memory_bandwidth_bytes_per_s  # measured kernels bring their own shares of it
    rows = max(math.ceil(group_rows - 1e-9), 1)  # the busiest group's rows, rounded up
    # weights held in host memory (CPU offload, `analytic.offload`): streamed to the device with the pass's weights,
    # or computed by the host in series with the device's layers
    # the weights the step's `weight_tokens` read (the routed experts by the engine's grouped GEMM), by the engine's
    # weight kernel up to its rows, then by its GEMM (`weight_reads`)
    shared_dev, experts_dev = shared_weight_bytes(s), routed_expert_bytes(s, weight_tokens)
    weights_dev = shared_dev + experts_dev
    # the host's layers read the same share of their weights as the device's (the experts the tokens are routed to)
    read_share = min(weights_dev / (shared_dev + all_expert_bytes(s)), 1.0)
    offload_s, host_s = streamed_weights_s(s), host_layers_s(s, rows, host_kv, read_share)
    convert_s = dequantize_s(s, rows, weights_dev - outside_block_bytes(s))  # a 16-bit GEMM's copy, in series too
    kernel_rows = s.eff.weight_kernel_max_rows  # the routed experts its kernel would read at its most rows
    weights_s = weight_read_s(s, rows, shared_dev, experts_dev, experts_dev if not kernel_rows
                              or weight_tokens <= kernel_rows else routed_expert_bytes(s, kernel_rows))
    # the routed experts run the engine's grouped MoE GEMM, at its own share of the peak where the engine states one
    routed = routed_matmul_flops(s, tokens) if s.expert_flop_efficiency else 0.0
    expert_eff = matmul_eff * (s.expert_flop_efficiency or 1.0) / s.eff.flop_efficiency
    linear = ((matmul - routed) / (peak * matmul_eff) + routed / (peak * expert_eff), weights_s + offload_s)
    kv_share = s.kv_bandwidth_efficiency or s.eff.kv_bandwidth_efficiency or s.eff.bandwidth_efficiency
    attend = (attention / (s.attention_peak_flops * s.shards * attention_eff), kv_dev / (peak_bw * kv_share))
    elementwise = act_dev / bandwidth
    compute_bound = sum(max(kind) for kind in (linear, attend) if kind[0] >= kind[1])
    return StepCost(
        flops=flops, busiest_flops=(matmul + attention) / s.shards,
        bytes_per_device=weights_dev + kv_dev + act_dev, kv_bytes_per_device=kv_dev,
        activation_bytes_per_device=act_dev, compute_s=linear[0] + attend[0],
        memory_s=linear[1] + attend[1] + elementwise + host_s + convert_s,
        roofline_s=max(linear) + max(attend) + elementwise + host_s + convert_s,
        comm_s=_comm_s(s, tokens, s.attention_dp / busiest.tokens), overhead_s=_overhead_s(s, tokens),
        host_overlap=s.eff.host_overlap, compute_bound_s=compute_bound,
    )


def _decode_parts(s: Setup, batch: int, context: int, tokens_per_seq: int = 1) -> tuple[float, float, float]:
    """A decode step's attention FLOPs, its cache bytes (read, appended, state updated) and its tokens."""
    tokens = batch * tokens_per_seq
    attention = decode_attention_flops(s, tokens, context)
    attending = s.spec.attention_layers if s.spec.layer_mixers else s.spec.num_layers
    new_kv = tokens * elements_per_token(s.spec, s.layout) * attending * s.kv_share * s.kv_bits / 8
    # read and written in place once per step, whatever the runtime (the device's layers' share of it)
    state = state_bytes_per_device(s) * (1.0 - s.host_layer_share)
    kv_bytes = batch * ((kv_bytes_per_device(s, context) - state) * kv_passes(s) + chunk_read_bytes(s, context)) \
        + batch * 2 * state + new_kv
    return attention, kv_bytes, tokens


def decode_step(s: Setup, batch: int, context: int, tokens_per_seq: int = 1) -> StepCost:
    """One decode step: each of `batch` sequences adds `tokens_per_seq` tokens (1, or a speculative draft's tokens
    being verified) to a cache of `context` tokens. With pipeline parallelism the token passes every stage in turn, so
    the step reads all layers. A padded step's dummy sequences (`graph_rows`) run the linear layers, not attention."""
    attention, kv_bytes, tokens = _decode_parts(s, batch, context, tokens_per_seq)
    rows = graph_rows(s, batch) * tokens_per_seq  # the padding's one dummy token reaches its own experts only
    # every group pads to the same size: the padded rows spread evenly, the caches and attention as the batch does
    busiest = Busiest(1.0, lag := busiest_group_multiple(s, batch), lag) if rows > tokens else None
    return _cost(s, matmul_flops(s, rows, rows), attention, tokens + (tokens_per_seq if busiest else 0), kv_bytes,
                 activation_traffic_bytes(s, rows), rows, batch, busiest,
                 host_kv=batch * kv_bytes_per_device(s, context, host=True))  # the host layers' caches, read there


def mixed_step(s: Setup, batch: int, context: int, prompt_tokens: float, prompt: int, cached: int = 0) -> StepCost:
    """A continuous-batching step: `batch` sequences decode one token each over caches of `context` tokens, and
    `prompt_tokens` tokens of waiting prompts of `prompt` tokens (`cached` of them found in the prefix cache) ride
    along: whole prompts, or a chunk of one. One forward pass over all the tokens: the linear layers take every
    row against one read of the weights (and run the kernel for that many rows), decode and prefill attention each
    pay their own FLOPs and bytes, and every token's activations and all-reduces count. The chunk's prefill
    attention is its share of its prompts' (a chunk late in a prompt attends to more keys: the mean over chunks).
    Each decode sequence adds one token: a plan that speculates adds what its chunks cost to its own verify step."""
    if prompt_tokens <= 0:
        return decode_step(s, batch, context)
    new = max(prompt - cached, 1)
    prompts = max(1, round(prompt_tokens / new))  # whole prompts side by side, or one prompt's chunk
    share = prompt_tokens / (prompts * new)
    decode_attention, decode_kv, decoding = _decode_parts(s, batch, context)  # all zero without decode sequences
    prompt_attention = share * prefill_attention_flops(s, prompts, prompt, cached)
    prompt_kv = share * prompts * kv_bytes_per_device(s, prompt)
    tokens = decoding + prompt_tokens
    # under data-parallel attention the decode sequences spread over the groups, while a prompt is prefilled by the
    # one group that holds it (whole prompts side by side on as many groups): the busiest group carries its share of
    # the decoding and its prompts, part by part
    # a group prefills whole prompts, or chunks of them no larger than its share of the step's budget where the engine
    # chunks (each group takes a chunk of its own prompts)
    unit = min(new, s.group_chunk_tokens) if s.group_chunk_tokens else new
    whole = prompt_tokens / unit  # prompts' (or group chunks') worth of tokens, a fraction for a chunk
    stacked = math.floor(whole / s.attention_dp)  # prompts on every group
    in_busiest = min(1.0, (stacked + min(1.0, whole - stacked * s.attention_dp)) / whole)  # the busiest group's share

    def lag(decode_part: float, prompt_part: float) -> float:
        total = decode_part + prompt_part
        spread = decode_part * busiest_group_multiple(s, batch) / s.attention_dp
        return s.attention_dp * (spread + prompt_part * in_busiest) / total if total else 1.0

    busiest = Busiest(lag(decoding, prompt_tokens), lag(decode_attention, prompt_attention), lag(decode_kv, prompt_kv))
    cost = _cost(s, matmul_flops(s, tokens, decoding + share * prompts), decode_attention + prompt_attention,
                 math.ceil(tokens), decode_kv + prompt_kv, activation_traffic_bytes(s, tokens),
                 tokens, batch + prompts, busiest)
    return with_host_time(s, cost, tokens)


def with_host_time(s: Setup, cost: StepCost, tokens: float) -> StepCost:
    """The step with an eager prompt's host time launching its kernels (`Setup.prefill_floor_s`): under load it
    overlaps the step before where the scheduler runs a batch ahead, else it comes in series with the step's kernels,
    as when the step runs alone (SGLang under speculative decoding or pipeline stages, or serving a hybrid model)."""
    floor = s.prefill_floor_s(tokens)
    return replace(cost, host_floor_s=floor, host_in_series=not s.schedules_ahead) if floor else cost


def kv_passes(s: Setup) -> int:
    """Times a decode step moves the whole cache. transformers' DynamicCache grows by `torch.cat`, which copies
    the cache (one read, one write) before attention reads it; paged serving caches append in place. Refitting
    the calibration benchmark's saved samples with 3 passes instead of 1 took the held-out decode error from
    18.8% to 11.7% (prefill unchanged)."""
    return 3 if s.layout == "transformers" else 1


def first_token_step_s(s: Setup, batch: int, prompt: int) -> float:
    """The decode step after the prefill that computes the first token, where the engine's prefill stops one prompt
    token short (TurboMind up to LMDeploy 0.1.0a1); 0 for every other engine, whose prefill yields it."""
    return decode_step(s, batch, prompt).time_s if s.first_token_decoded else 0.0


def prefill_step(s: Setup, batch: int, prompt: int, cached: int = 0) -> StepCost:
    """The prefill of `batch` prompts of `prompt` tokens whose first `cached` tokens are already in
    the cache (a prefix cache hit): the rest are computed, attending to the whole prompt, and the
    cached prefix is read. Logits for the last token only."""
    tokens = batch * (prompt - cached)
    matmul = matmul_flops(s, tokens, batch)
    attention = prefill_attention_flops(s, batch, prompt, cached)
    kv_bytes = batch * kv_bytes_per_device(s, prompt)
    cost = _cost(s, matmul, attention, tokens, kv_bytes, activation_traffic_bytes(s, tokens), tokens, batch)
    return with_host_time(s, cost, tokens)
