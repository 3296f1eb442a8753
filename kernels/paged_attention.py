"""Paged decode attention: one query token per sequence against a KV cache stored in fixed-size pages and
addressed through a block table (vLLM's PagedAttention, arXiv 2309.06180), in the layout of transformers'
continuous-batching cache (`transformers/generation/continuous_batching/cache_allocators/full_attention.py`): each
layer's keys and values are page views (num_pages, page_size, kv_heads, head_dim), possibly strided, and a
sequence's block table row lists its pages in order. As in FlashAttention's `flash_attn_with_kvcache` (which
transformers calls there), `cache_seqlens` counts the tokens already cached, and the new token's key and value,
when given, are written at that position before attending.

The kernel is the split-K decode kernel of `flash_decoding` reading keys through the table (its PAGED variant),
so windows, sinks, sink logits and soft-capping work the same.
"""

from __future__ import annotations

from .flash_decoding import flash_decode, reference_decode


def append_kv(k_cache, v_cache, k_new, v_new, block_table, cache_seqlens) -> None:
    """Write each sequence's new key and value (b, kv_h, d) at position cache_seqlens[b] of its pages. A position past
    the sequence's block-table row, or in an unallocated (-1) page, is refused (checked on the host: a negative index
    would write into the pool's last page)."""
    import torch

    pos = cache_seqlens.to(device=k_cache.device, dtype=torch.long)
    page_size = k_cache.shape[1]
    table = block_table.to(device=k_cache.device, dtype=torch.long)
    if bool((pos >= table.shape[1] * page_size).any()) or bool((pos < 0).any()):
        raise ValueError(f"cache_seqlens {pos.tolist()[:8]}: a new token must land inside its block-table row of "
                         f"{table.shape[1]} pages of {page_size}")
    rows = torch.arange(pos.numel(), device=k_cache.device)
    pages = table[rows, pos // page_size]
    if bool(((pages < 0) | (pages >= k_cache.shape[0])).any()):
        raise ValueError(f"the pages the new tokens land in ({pages.tolist()[:8]}) are not all allocated pages of the "
                         f"{k_cache.shape[0]}-page pool")
    k_cache[pages, pos % page_size] = k_new.to(k_cache.dtype)
    v_cache[pages, pos % page_size] = v_new.to(v_cache.dtype)


def paged_decode(q, k_cache, v_cache, block_table, cache_seqlens, *, k_new=None, v_new=None,
                 scale: float | None = None, window: int | None = None, num_sinks: int = 0, sink_logits=None,
                 softcap: float | None = None, num_splits: int | None = None):
    """Decode attention over pages. q (b, h, d) or (b, h, 1, d); k_cache/v_cache (num_pages, page_size, kv_h, d);
    block_table (b, max_pages) int32 page indices (entries past a sequence's pages are never read); cache_seqlens
    (b,) cached tokens. With k_new/v_new (b, kv_h, d), they are appended first and attended to. Returns q's shape."""
    lens = cache_seqlens
    if k_new is not None:
        append_kv(k_cache, v_cache, k_new, v_new, block_table, cache_seqlens)
        lens = cache_seqlens + 1
    return flash_decode(q, k_cache, v_cache, k_lens=lens, block_table=block_table, scale=scale, window=window,
                        num_sinks=num_sinks, sink_logits=sink_logits, softcap=softcap, num_splits=num_splits)


def gather_pages(cache, block_table, lengths):
    """The pages of each sequence laid end to end: (b, kv_h, max(lengths), d), zeros past a sequence's length."""
    import torch

    batch, page_size = block_table.shape[0], cache.shape[1]
    longest = int(lengths.max())
    out = torch.zeros(batch, cache.shape[2], longest, cache.shape[3], dtype=cache.dtype, device=cache.device)
    for b in range(batch):
        n = int(lengths[b])
        pages = block_table[b, : -(-n // page_size)].long()
        out[b, :, :n] = cache[pages].reshape(-1, cache.shape[2], cache.shape[3])[:n].transpose(0, 1)
    return out


def reference_paged_decode(q, k_cache, v_cache, block_table, cache_seqlens, *, k_new=None, v_new=None,
                           scale: float | None = None, window: int | None = None, num_sinks: int = 0,
                           sink_logits=None, softcap: float | None = None):
    """Plain PyTorch: gather each sequence's pages into a contiguous cache, then the decode reference.
    Appends k_new/v_new into the caches like `paged_decode` does."""
    lens = cache_seqlens
    if k_new is not None:
        append_kv(k_cache, v_cache, k_new, v_new, block_table, cache_seqlens)
        lens = cache_seqlens + 1
    k, v = gather_pages(k_cache, block_table, lens), gather_pages(v_cache, block_table, lens)
    return reference_decode(q, k, v, k_lens=lens, scale=scale, window=window, num_sinks=num_sinks,
                            sink_logits=sink_logits, softcap=softcap)
