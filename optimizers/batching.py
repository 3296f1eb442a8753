"""Paged KV cache with continuous batching through transformers' `generate_batch`, with a configuration
sized from the model's KV bytes per token and the workload instead of the library's memory-fraction
defaults (which size the cache from free GPU memory and mean little on a CPU).
"""

from __future__ import annotations

import math
from typing import Any

from .workspace import NotSupportedHere, Workspace, device_kind

DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_TOKENS = 512  # prompt + output per request


def kv_width(config) -> int:
    """Values one token's keys (or values) take in a layer: KV heads x head dim."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return heads * head_dim


def kv_bytes_per_token(config, dtype_bytes: int) -> int:
    """Key and value bytes one token occupies in every layer."""
    return 2 * config.num_hidden_layers * kv_width(config) * dtype_bytes


def sized_config(config, device: str, concurrency: int, max_tokens: int, dtype_bytes: int,
                 block: int | None = None) -> dict[str, int]:
    """Blocks for `concurrency` requests of up to `max_tokens` tokens each, in pages that suit the device."""
    block = block or (256 if device_kind(device) == "cuda" else 32)  # small pages on CPU: less waste when short
    blocks_per_request = math.ceil(max_tokens / block)
    num_blocks = concurrency * blocks_per_request + 1  # one spare block per scheduler round
    return {"block_size": block, "num_blocks": num_blocks, "max_batch_tokens": min(concurrency * max_tokens, 2048),
            "max_requests_per_batch": concurrency, "max_blocks_per_request": blocks_per_request,
            "cache_bytes": num_blocks * block * kv_bytes_per_token(config, dtype_bytes)}


def continuous_batching(ws: Workspace, params: dict[str, Any]) -> str:
    """Paged KV cache and continuous batching (`generate_batch`), sized for the workload's concurrency."""
    # the planner's step names the sequences it serves at once (max_running; max_num_seqs in plans saved before);
    # a user may say concurrency
    from transformers.generation.continuous_batching.cache import group_layers_by_attn_type

    try:  # its paged cache allocates full- and sliding-attention layers only
        group_layers_by_attn_type(ws.model.config.get_text_config(decoder=True))
    except ValueError as exc:
        raise NotSupportedHere(f"transformers' continuous batching has no paged cache for {type(ws.model).__name__}'s "
                               f"layers ({exc})") from exc
    concurrency = int(params.get("concurrency") or params.get("max_running") or params.get("max_num_seqs")
                      or DEFAULT_CONCURRENCY)
    max_tokens = int(params.get("max_tokens", DEFAULT_MAX_TOKENS))
    dtype_bytes = {"fp32": 4}.get(ws.runtime.dtype, 2)
    sized = sized_config(ws.model.config, ws.device, concurrency, max_tokens, dtype_bytes,
                         block=int(params["block_size"]) if params.get("block_size") else None)
    ws.runtime.continuous_batching = sized
    return (f"paged KV cache: {sized['num_blocks']} blocks of {sized['block_size']} tokens "
            f"({sized['cache_bytes'] / 1e6:.1f} MB) for {concurrency} requests of up to {max_tokens} tokens")
