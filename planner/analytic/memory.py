"""Memory of a resolved Setup on its devices: weights per pipeline stage, KV cache, transient activations (a
prefill's, or a decode step's where the engine copies its cache), what fits, and the largest batch and longest
context that do."""

from __future__ import annotations

import math

from .kvcache import kv_cache_elements, tokens_held
from .setup import Setup
from .steps import active_intermediate, kv_bytes_per_device


def stage_weight_bytes(s: Setup, stage: int) -> float:
    """Weights held by one device of a pipeline stage (tensor-parallel shards)."""
    return s.stage_weights[stage]


def activation_peak_bytes(s: Setup, batch: int, prompt: int) -> float:
    """Peak transient memory of a prefill, one device: the residual stream and normed input, the MLP
    intermediates (gate, up, their product), the last token's logits in fp32, for eager attention the
    materialised score and probability matrices, and where the engine casts each quantized matrix whole to 16 bits
    (torchao's int8 weight-only) the largest one's copy (`Setup.cast_weight_bytes`). A chunked prefill holds one
    chunk at a time; an engine with a step budget but no chunks (TensorRT-LLM's max_num_tokens) as many whole prompts
    as the budget takes, one at least."""
    prompts = math.ceil(batch / s.attention_dp)  # whole prompts per data-parallel attention group
    if s.step_tokens and not s.prefill_chunk_tokens:  # whole prompts, as many as one group's share of the budget takes
        prompts = min(prompts, max(int(s.step_tokens / s.attention_dp) // max(prompt, 1), 1))
    tokens = max(prompts * prompt, 1)
    if s.group_chunk_tokens:  # one group's share of the step's budget
        tokens = min(tokens, s.group_chunk_tokens)
        prompts = min(prompts, -(-tokens // max(prompt, 1)))  # the prompts one chunk spans, each its last logits
    hidden = tokens * s.act_bytes * (2 * s.spec.hidden_size + 3 * active_intermediate(s) / s.tp)
    logits = min(prompts, tokens) * s.spec.vocab_size * (s.act_bytes + 4)
    scores = 0.0
    if s.eager_attention:  # queries of this pass against every key of their prompts
        scores = tokens * (s.spec.num_heads / s.tp) * prompt * (2 * s.act_bytes + 4)
    return hidden + logits + scores + s.cast_weight_bytes


def repeated_kv_bytes(s: Setup, batch: int, context: int) -> float:
    """The cache's K and V repeated to every query head, in the activation dtype, one layer at a time: what gpt-fast's
    `repeat_interleave` materialises in every forward pass, over the whole cache it set up (the engines that read
    a grouped cache in their attention kernel copy nothing: 0)."""
    if not s.math_decode_attention:
        return 0.0
    sequences = math.ceil(batch / s.attention_dp)
    return sequences * context * (s.spec.num_heads / s.tp) * s.spec.head_dim * 2 * s.act_bytes


def decode_attention_bytes(s: Setup, batch: int, context: int) -> float:
    """Transient memory of one decode step's attention where the engine runs torch SDPA's math backend over the
    cache repeated to every query head (gpt-fast): the repeated K and V (`repeated_kv_bytes`), the backend's fp32
    copies of both when they are 16-bit, and its scaled copy of K. Per token of context and query head: 2 x act
    bytes + 3 x 4 bytes (64 KiB per token for Llama-3-8B in bf16, as torch's profiler counts it,
    tests/planner/analytic/test_gpt_fast.py). Engines with a fused decode kernel: 0."""
    repeated = repeated_kv_bytes(s, batch, context)
    if not repeated:
        return 0.0
    upcast = 3 * 4 if s.act_bytes < 4 else s.act_bytes  # fp32 K and V, then K scaled; fp32 inputs: K scaled only
    return repeated * (2 * s.act_bytes + upcast) / (2 * s.act_bytes)


def causal_mask_bytes(s: Setup, context: int) -> float:
    """A causal mask an engine keeps for the whole cache: gpt-fast builds one boolean per (query, key) position pair
    of its `max_seq_length` when it sets up the caches, on every device; engines that mask inside the attention
    kernel keep none."""
    return float(context) ** 2 if s.square_mask else 0.0


def sampler_bytes(s: Setup, batch: int) -> float:
    """The peak of the engine's profiling run that sizes its cache where its sampler sets it, one device: vLLM's
    sampler over max_num_seqs rows of logits (5.6 GiB for Qwen3 on an H100 at its default 1,024), at the default cap,
    or at the `batch`'s sequences per data-parallel group where the config caps the server at them."""
    rows = s.sampler_rows if s.sampler_rows is not None else math.ceil(batch / s.attention_dp)
    return s.sampler_row_bytes * rows


def transient_bytes(s: Setup, batch: int, context: int, prompt: int) -> float:
    """The largest of the prefill's transients (with the repeated cache, where the engine makes it), a decode step's
    and the engine's profiling peak (`sampler_bytes`), one device."""
    return max(activation_peak_bytes(s, batch, prompt) + repeated_kv_bytes(s, batch, context),
               decode_attention_bytes(s, batch, context), sampler_bytes(s, batch))


def cache_bytes_per_device(s: Setup, context: int, stage: int | None = None) -> float:
    """The room one sequence of `context` tokens takes in the engine's cache on one device: what it holds
    (`kv_bytes_per_device`), or, where the engine sizes its cache otherwise for a model with attention windows
    (`Setup.window_pools`, `served.engine_window_pools`), its share of the pools as they fill, the pool that fills
    first setting how many sequences fit. "equal" (TensorRT-LLM): each window size gets the same share of the cache, a
    sequence taking as many times its largest window's part as there are window sizes (gpt-oss, half its layers
    windowed to 128 tokens: as many sequences as if every layer held the whole context). "ratio" (SGLang's hybrid
    models): the windowed layers' pool holds `ratio` times the tokens of the full layers' one, the two sized
    together. "whole" (SGLang's other models): a token's slot holds every layer, windowed or not."""
    held = kv_bytes_per_device(s, context, stage)
    split, ratio = s.window_pools
    groups = s.stage_kv_groups if stage is None else (s.stage_kv_groups[stage],)
    per_token: dict[int | None, int] = {}  # elements a token takes in each window size's layers
    for stage_groups in groups:
        for g in stage_groups:
            per_token[g.window] = per_token.get(g.window, 0) + g.layers * g.elements_per_token
    windowed = sum(e for w, e in per_token.items() if w is not None)
    if split == "shared" or not windowed or (split != "whole" and len(per_token) < 2) or \
            (split == "ratio" and None not in per_token):  # a pipeline stage of windowed layers alone: its own pool
        return held
    tokens = {w: tokens_held(w, context, s.layout) for w in per_token}
    if split == "equal":
        claim = len(per_token) * max(per_token[w] * tokens[w] for w in per_token)
    elif split == "ratio":  # the full layers' pool and the windowed layers' one
        claim = (per_token[None] + ratio * windowed) * max(context, max(t for w, t in tokens.items() if w) / ratio)
    else:  # every layer keeps every token
        claim = sum(per_token.values()) * context
    fixed = sum(kv_cache_elements(g, context, s.layout) for g in groups)
    return held + (claim - fixed) * s.kv_element_bytes * (1.0 - s.host_layer_share)


def per_device_bytes(s: Setup, batch: int, context: int, prompt: int) -> tuple[float, float, float]:
    """(weights, KV cache, activations) of the fullest device: the activations are the larger of the prefill's and
    a decode step's transients (each with the copies of the cache an engine makes), beside the causal mask an
    engine keeps."""
    worst = (0.0, 0.0, 0.0)
    act = transient_bytes(s, batch, context, prompt) + causal_mask_bytes(s, context)
    for stage in range(s.pp):
        w = stage_weight_bytes(s, stage)
        kv = batch * cache_bytes_per_device(s, context, stage)
        if w + kv + act > sum(worst):
            worst = (w, kv, act)
    return worst


def whole_sequences(s: Setup, batch: int) -> int:
    """`batch` rounded up to whole sequences per data-parallel attention group: the fullest group holds
    ceil(batch / groups) of them (a lone sequence's whole cache sits on one group)."""
    return math.ceil(batch / s.attention_dp) * s.attention_dp


# (weights, cache bytes per sequence) of another model that shares each device with the served one: a speculative
# draft's (`plan.predict`); none by default
NO_DRAFT = (0.0, 0.0)


def fits(s: Setup, batch: int, context: int, prompt: int, raised: bool = False,
         draft: tuple[float, float] = NO_DRAFT) -> bool:
    """Whether `batch` sequences of `context` tokens fit: their caches (and a `draft`'s) in the share of the device the
    engine gives its cache (`cache_room`; `raised` as there) beside the weights, activations and runtime."""
    sequences = whole_sequences(s, batch)
    weights, kv, act = per_device_bytes(s, sequences, context, prompt)
    kv += sequences / s.attention_dp * draft[1]
    return kv <= cache_room(s, weights + draft[0], act + s.runtime_bytes, raised)


# The most of a device a plan asks an engine with a memory share (vLLM, TensorRT-LLM) to give its cache where the
# default share cannot hold the workload's own sequences: the share TensorRT-LLM's published max-throughput runs set
# (perf-overview: kv_cache_free_gpu_mem_fraction 0.95), leaving 5% for what the profiling run does not see.
RAISED_SHARE = 0.95


def _pool(s: Setup, raised: bool) -> tuple[str, float] | None:
    """The engine's KV pool as `Setup.kv_memory` states it, its share raised to RAISED_SHARE where `raised` (a reserve
    stays as it is); None where the engine sets none."""
    if s.kv_memory is None:
        return None
    kind, value = s.kv_memory
    return (kind, max(value, RAISED_SHARE)) if raised and kind != "reserve" else (kind, value)


def _static_bytes(s: Setup, reserve: float) -> float:
    """The bytes SGLang gives weights and cache together where it keeps `reserve` bytes of the device out: its static
    fraction (1 - reserve / device, as its server_args derives --mem-fraction-static) of the memory still free once
    the runtime is up, before the weights load (model_runner.profile_max_num_token: "rest_memory =
    available_gpu_memory - total_gpu_memory * (1 - self.mem_fraction_static)", its total the memory free after
    init_torch_distributed), so the runtime's own memory comes out of the cache, not the reserve."""
    memory = s.hw.memory_bytes
    return (1.0 - reserve / memory) * (memory - s.runtime_bytes)


def cache_room(s: Setup, weights: float, other: float, raised: bool = False) -> float:
    """Bytes of one device the KV cache may take beside `weights` and `other` bytes (the runtime, activations and
    masks): what the engine gives its cache by default (`Setup.kv_memory`: vLLM runs within 0.9 of the device,
    TensorRT-LLM gives the cache 0.9 of what is free, SGLang keeps a reserve beside weights and cache), never more than
    is left; where the engine takes no share, what is left less the margin a plan keeps (`Setup.cache_margin_bytes`:
    llama.cpp's); `raised`: with a share raised to RAISED_SHARE (the engine's option set higher)."""
    free = s.hw.memory_bytes - weights - other
    pool = _pool(s, raised)
    if pool is None:
        return free - s.cache_margin_bytes
    kind, value = pool
    if kind == "reserve":
        return min(free, _static_bytes(s, value) - weights)
    if kind == "free":  # a share of what is free; where nothing is, the deficit as it is (not a share of it)
        return free * value if free > 0 else free
    return min(free, s.hw.memory_bytes * value - weights - other)


def weights_room(s: Setup, kv: float, other: float, raised: bool = False) -> float:
    """The most weight bytes one device may hold and still leave `kv` bytes of cache in the engine's share of it
    (`cache_room` solved for the weights, the share `raised` as there) beside `other` bytes (the runtime,
    activations)."""
    left = s.hw.memory_bytes - other - kv
    pool = _pool(s, raised)
    if pool is None:
        return left - s.cache_margin_bytes
    kind, value = pool
    if kind == "reserve":
        return min(left, _static_bytes(s, value) - kv)
    if kind == "free":
        return s.hw.memory_bytes - other - kv / value
    return min(left, s.hw.memory_bytes * value - other - kv)


def beside_sampler_rows(s: Setup, n: int, per_sequence: float, weights: float, fixed: float, transient: float,
                        raised: bool = False) -> int:
    """The most of `n` sequences (those whose caches of `per_sequence` bytes fit beside `weights`, `fixed` bytes and
    `transient` ones) that still fit where a config caps the server at its sequences, so the engine's profiling peak
    (`sampler_bytes`) grows with them: `n` itself where the peak is fixed."""
    if s.sampler_rows is not None or not s.sampler_row_bytes:
        return n
    lo = 0
    while lo < n:
        mid = (lo + n + 1) // 2
        peak = max(transient, sampler_bytes(s, mid))
        lo, n = (mid, n) if per_sequence * mid <= cache_room(s, weights, fixed + peak, raised) else (lo, mid - 1)
    return lo


# the largest batch where a device holds no cache (llama.cpp with every layer on the host): no limit of the device's
NO_DEVICE_LIMIT = 1 << 20


def prefill_room_bytes(s: Setup, context: int, prompt: int) -> float:
    """The transients an engine leaves room for beside its cache whatever the batch, one device: a whole prefill
    chunk's prompts where it chunks (it sizes its cache around a full chunk, as `fits` counts a batch's), one prompt's
    where it does not (the least a batch brings; `max_batch` adds the rest of a batch's own)."""
    prefilling = -(-s.prefill_chunk_tokens // max(prompt, 1)) if s.prefill_chunk_tokens else 1
    return transient_bytes(s, prefilling, context, prompt)


def profiling_run_bytes(s: Setup) -> float:
    """The peak of the profiling run an engine that sizes its cache at start-up makes before it does, one device: a
    prefill of its whole step budget (the prefill chunk where it chunks); 0 for an engine that sizes no cache then."""
    if s.kv_memory is None:
        return 0.0
    budget = s.step_tokens or 1
    return transient_bytes(s, 1, budget, budget)


def max_batch(s: Setup, context: int, prompt: int, raised: bool = False, draft: tuple[float, float] = NO_DRAFT) -> int:
    """Largest number of sequences whose caches fit beside the weights and the activations of one prefill, in the share
    of the device the engine gives its cache (`cache_room`; `raised` as there). Where the engine chunks its prefill,
    a whole chunk's prompts (the engine sizes its cache around a full chunk); otherwise the batch's own prompts, which
    prefill together (up to a step budget's worth), so the largest batch is the largest that `fits`. Where the engine
    copies the cache in every step (gpt-fast), each sequence also brings its share of those copies; where a `draft`
    shares the device, its weights and its cache per sequence. The pipeline stage that fills first sets it."""
    fixed = s.runtime_bytes + causal_mask_bytes(s, context)
    transient = prefill_room_bytes(s, context, prompt)
    copies = decode_attention_bytes(s, 1, context)  # one sequence's; a device holds those of its own sequences
    n = NO_DEVICE_LIMIT
    for stage in range(s.pp):
        w = stage_weight_bytes(s, stage) + draft[0]
        kv = cache_bytes_per_device(s, context, stage) + draft[1] / s.attention_dp
        free = cache_room(s, w, fixed + transient, raised)
        if kv <= 0:  # a stage that holds no cache (llama.cpp with its layers on the host) limits nothing, if it fits
            n = n if free >= 0 else 0
            continue
        n = min(n, beside_sampler_rows(s, int(free // kv), kv, w, fixed, transient, raised))
        if copies:
            room = s.hw.memory_bytes - fixed - w
            n = min(n, int(room // (kv + copies / s.attention_dp)))
            while n > 0 and kv * n + math.ceil(n / s.attention_dp) * copies > room:  # whole sequences per device
                n -= 1
    if n >= NO_DEVICE_LIMIT:
        return NO_DEVICE_LIMIT
    groups = max(n // s.attention_dp, 0)  # whole sequences per attention group (`whole_sequences`)
    if not s.prefill_chunk_tokens and groups and not fits(s, groups * s.attention_dp, context, prompt, raised, draft):
        lo, hi = 0, groups - 1  # the batch's own prefill takes more than one prompt's: the most groups that fit
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(s, mid * s.attention_dp, context, prompt, raised, draft) else (lo, mid - 1)
        groups = lo
    return groups * s.attention_dp


def cache_capacity_tokens(s: Setup, context: int, raised: bool = False,
                          draft: tuple[float, float] = NO_DRAFT) -> int | None:
    """Tokens of context the engine's KV cache holds, as it sizes the cache at start-up (vLLM logs it as "GPU KV cache
    size: N tokens", SGLang as "KV Cache is allocated. #tokens: N"): the room its memory share leaves (`cache_room`;
    `raised` as there) beside the weights, the runtime and the peak of its profiling run (a whole step budget's
    prefill; vLLM's sampler over its running cap's rows), over a token's cache bytes on one device. The fullest
    pipeline stage sets it; with data-parallel attention it counts every group's cache (vLLM logs each rank's own). A
    model with attention windows or a fixed-size state counts tokens of sequences of `context` tokens (what one holds,
    over that length, as vLLM counts its cache's sequences of max_model_len). None for an engine that sizes no cache
    at start-up (it allocates per sequence: llama.cpp, gpt-fast, transformers) and off a GPU. A `draft` sharing the
    device takes its weights out of the room and its cache per token beside the model's."""
    if s.kv_memory is None:
        return None
    fixed = s.runtime_bytes + profiling_run_bytes(s)
    length = max(context, 1)
    tokens = []
    for stage in range(s.pp):
        per_token = (cache_bytes_per_device(s, length, stage) + draft[1] / s.attention_dp) / length
        if per_token > 0:
            room = cache_room(s, stage_weight_bytes(s, stage) + draft[0], fixed, raised)
            tokens.append(max(room, 0.0) / per_token)
    return int(min(tokens)) if tokens else None


def pooled_max_batch(s: Setup, context: int, prompt: int, raised: bool = False,
                     draft: tuple[float, float] = NO_DRAFT) -> int:
    """`max_batch`, no more than the engine's cache holds where it sizes one at start-up (`cache_capacity_tokens`,
    after a profiling run of its whole step budget): TensorRT-LLM on an L4 held 146 requests of 300 tokens, not the
    164 one prompt's activations leave room for."""
    n = max_batch(s, context, prompt, raised, draft)
    pool = cache_capacity_tokens(s, context, raised, draft)
    if pool is not None and n < NO_DEVICE_LIMIT:
        n = min(n, int(pool // max(context, 1)) // s.attention_dp * s.attention_dp)
    return n


def sizes_cache_ahead(s: Setup) -> bool:
    """Whether the engine sizes its cache before it sees a batch: around a whole prefill chunk's activations (TGI's
    warm-up prefill of its token budget, vLLM's profiling run) or at start-up (TensorRT-LLM's, after its profiling
    run), so a batch that fits beside its own prompts may still find no room in it (`serves`)."""
    return bool(s.prefill_chunk_tokens) or s.kv_memory is not None


def serves(s: Setup, batch: int, context: int, prompt: int, raised: bool = False) -> bool:
    """Whether the engine holds `batch` sequences of `context` tokens: they `fit`, and where it sizes its cache ahead
    (`sizes_cache_ahead`) they are no more than that cache holds (`pooled_max_batch`): the test `max_context` searches
    with and a profile's verdict."""
    if not fits(s, batch, context, prompt, raised):
        return False
    return not sizes_cache_ahead(s) or batch <= pooled_max_batch(s, context, prompt, raised)


def max_context(s: Setup, batch: int, raised: bool = False) -> int:
    """Longest context (prompt prefilled whole) the engine holds at `batch` (`serves`), up to the model's maximum
    (`raised`: with the engine's memory share raised as a plan raises it)."""
    lo, hi = 0, s.spec.max_position_embeddings
    if serves(s, batch, hi, hi, raised):
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if serves(s, batch, mid, mid, raised):
            lo = mid
        else:
            hi = mid - 1
    return lo


def one_sequence_bytes(s: Setup, context: int, stage: int) -> float:
    """One sequence's cache (window caps and state included) on a device of pipeline `stage`: whole, on one
    data-parallel attention group (`kv_bytes_per_device` spreads sequences over the groups)."""
    return cache_bytes_per_device(s, context, stage) * s.attention_dp


def longest_cached_context(s: Setup, pool: float, stage: int) -> int:
    """The longest context one sequence's cache fits in `pool` bytes of a device of pipeline `stage`, up to the
    model's maximum."""
    lo, hi = 0, s.spec.max_position_embeddings
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if one_sequence_bytes(s, mid, stage) <= pool else (lo, mid - 1)
    return lo
