"""Split-K flash decoding: one new query token per sequence against a contiguous KV cache (Dao et al.,
"Flash-Decoding for long-context inference", 2023).

At decode a sequence has one query row per head, so a kernel that parallelizes over queries leaves most of a GPU
idle; this one splits the keys of each sequence into chunks, computes a partial softmax-weighted sum and its
log-sum-exp per chunk (`_decode_split`), then merges the chunks (`_decode_merge`). All query heads that share a
key/value head are computed by one program, so grouped-query attention reads each key once.

Same semantics as `flash_attention` (the query sits at position k_len - 1): windows, sink tokens, learned sink
logits, soft-capping, a per-key boolean mask (padding), and per-sequence cache lengths (`k_lens`).
"""

from __future__ import annotations

from .common import (
    boolean_mask,
    check_qkv,
    dot_flags,
    gpu_generation,
    interpreted,
    next_power_of_2,
    on_device,
    online_softmax_step,
    require,
    sink_values,
    tile_scores,
    tl,
    triton,
)

# (BLOCK_N, num_warps, num_stages): decode streams the cache once, so wide key tiles and deep pipelines
HOPPER = [(64, 4, 4), (128, 4, 3), (128, 8, 3), (64, 4, 2)]
AMPERE = [(64, 4, 3), (128, 4, 2), (32, 4, 4)]
INTERPRETER_TILE = {"BLOCK_N": 32}  # one fixed config on CPU


def _configs():
    tiles = HOPPER if gpu_generation() == "hopper" else AMPERE
    return [triton.Config({"BLOCK_N": n}, num_warps=w, num_stages=s) for n, w, s in tiles]


@triton.jit
def _decode_split(
    Q, K, V, MASK, PART_O, PART_LSE, K_LENS, BLOCK_TABLE,
    stride_qb, stride_qh, stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn, stride_mb, stride_mn,
    stride_bt, page_size,  # paged: K/V are (pages, page_size, kv_h, d), stride_kb a page's and stride_kn a slot's
    num_heads, head_dim, sm_scale, softcap, window, num_sinks, chunk, num_splits,
    MAX_K,  # keys the cache holds per sequence (its rows, or its table's pages): a longer k_len is cut to them
    K_BUCKET,  # autotune key only
    PAGED: tl.constexpr, GROUP: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_D: tl.constexpr, HAS_WINDOW: tl.constexpr,
    HAS_MASK: tl.constexpr, HAS_SOFTCAP: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    b = tl.program_id(0)
    kvh = tl.program_id(1)
    split = tl.program_id(2)
    b64 = b.to(tl.int64)
    offs_g = tl.arange(0, BLOCK_G)  # the query heads of this key/value head, padded to a dot-able 16
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    g_ok = offs_g < GROUP
    d_ok = offs_d < head_dim
    heads = kvh * GROUP + offs_g
    q = tl.load(Q + b64 * stride_qb + heads[:, None] * stride_qh + offs_d[None, :],
                mask=g_ok[:, None] & d_ok[None, :], other=0.0)
    if UPCAST:  # the interpreter's dot mishandles bf16 (numpy has none): multiply the same values in fp32
        q = q.to(tl.float32)
    k_len = tl.maximum(tl.minimum(tl.load(K_LENS + b), MAX_K), 0)
    pos = k_len - 1
    c0 = split * chunk  # chunk is a multiple of BLOCK_N
    c1 = tl.minimum(c0 + chunk, k_len)
    lo = c0
    n_sink = 0
    if HAS_WINDOW:
        w_lo = (tl.maximum(pos - window + 1, 0) // BLOCK_N) * BLOCK_N
        lo = tl.maximum(c0, w_lo)
        n_sink = (tl.maximum(tl.minimum(tl.minimum(num_sinks, w_lo), c1) - c0, 0) + BLOCK_N - 1) // BLOCK_N
    n_main = (tl.maximum(c1 - lo, 0) + BLOCK_N - 1) // BLOCK_N

    m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], tl.float32)
    for t in range(0, n_sink + n_main):
        start_n = tl.where(t < n_sink, c0 + t * BLOCK_N, lo + (t - n_sink) * BLOCK_N)
        cols = start_n + offs_n
        n_ok = cols < c1
        keys = cols.to(tl.int64)
        if PAGED:  # each key's page from the block table, then its slot in the page
            page = tl.load(BLOCK_TABLE + b64 * stride_bt + cols // page_size, mask=n_ok, other=0).to(tl.int64)
            n_ok = n_ok & (page >= 0)  # an unallocated entry (-1) holds no key
            k_rows = page * stride_kb + (cols % page_size) * stride_kn
            v_rows = page * stride_vb + (cols % page_size) * stride_vn
        else:
            k_rows = b64 * stride_kb + keys * stride_kn
            v_rows = b64 * stride_vb + keys * stride_vn
        k = tl.load(K + kvh * stride_kh + k_rows[None, :] + offs_d[:, None],
                    mask=n_ok[None, :] & d_ok[:, None], other=0.0)
        if UPCAST:
            k = k.to(tl.float32)
        s = tile_scores(q, k, sm_scale, softcap, HAS_SOFTCAP, PRECISION)
        ok = n_ok
        if HAS_WINDOW:
            ok = ok & ((cols > pos - window) | (cols < num_sinks))
        if HAS_MASK:
            ok = ok & (tl.load(MASK + b64 * stride_mb + keys * stride_mn, mask=ok, other=0) != 0)
        s = tl.where(ok[None, :], s, float("-inf"))
        v = tl.load(V + kvh * stride_vh + v_rows[:, None] + offs_d[None, :],
                    mask=n_ok[:, None] & d_ok[None, :], other=0.0)
        m_i, l_i, acc = online_softmax_step(s, v, m_i, l_i, acc, PRECISION, UPCAST)
    # partials: the chunk's normalized output and its log2-sum-exp (-inf where the chunk saw no key)
    lse = tl.where(l_i == 0.0, float("-inf"), m_i + tl.math.log2(tl.where(l_i == 0.0, 1.0, l_i)))
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    part = (b64 * num_heads + heads) * num_splits + split  # (b, h, split) row
    tl.store(PART_O + part[:, None] * BLOCK_D + offs_d[None, :], out, mask=g_ok[:, None])
    tl.store(PART_LSE + part, lse, mask=g_ok)


@triton.jit
def _decode_merge(PART_O, PART_LSE, SINKS, O, stride_ob, stride_oh, num_heads, head_dim, num_splits,
                  HAS_SINKS: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    h = tl.program_id(1)
    offs_s = tl.arange(0, BLOCK_S)
    offs_d = tl.arange(0, BLOCK_D)
    s_ok = offs_s < num_splits
    row = (b.to(tl.int64) * num_heads + h) * num_splits
    lse = tl.load(PART_LSE + row + offs_s, mask=s_ok, other=float("-inf"))
    m = tl.max(lse, 0)
    if HAS_SINKS:
        sink = tl.load(SINKS + h).to(tl.float32) * 1.4426950408889634
        m = tl.maximum(m, sink)
    m_use = tl.where(m == float("-inf"), 0.0, m)
    w = tl.math.exp2(lse - m_use)  # (BLOCK_S,)
    parts = tl.load(PART_O + (row + offs_s)[:, None] * BLOCK_D + offs_d[None, :], mask=s_ok[:, None], other=0.0)
    denom = tl.sum(w, 0)
    if HAS_SINKS:
        denom = denom + tl.math.exp2(sink - m_use)
    out = tl.sum(parts * w[:, None], 0) / tl.where(denom == 0.0, 1.0, denom)
    tl.store(O + b.to(tl.int64) * stride_ob + h * stride_oh + offs_d, out.to(O.dtype.element_ty),
             mask=offs_d < head_dim)


_decode_split_tuned = triton.autotune(configs=_configs() if not interpreted() else [],
                                      key=["K_BUCKET", "BLOCK_D", "GROUP", "HAS_WINDOW", "PAGED"])(_decode_split)


def _splits(batch: int, kv_heads: int, max_k: int, device) -> int:
    """Enough programs to fill the GPU twice over, each with at least 256 keys to stream."""
    import torch

    if device.type != "cuda":
        return max(1, min(4, -(-max_k // 32)))
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(-(-2 * sms // (batch * kv_heads)), -(-max_k // 256), 128))


def flash_decode(q, k, v, *, k_lens=None, scale: float | None = None, window: int | None = None,
                 num_sinks: int = 0, sink_logits=None, softcap: float | None = None, key_mask=None,
                 num_splits: int | None = None, block_table=None):
    """One query token per sequence: q (b, h, d) or (b, h, 1, d); k/v (b, kv_h, sk, d), d contiguous;
    k_lens (b,) valid cache entries (default sk); key_mask bool (b, sk), True = attend. Returns q's shape.
    With `block_table` (b, max_pages) int32, k/v are pages (num_pages, page_size, kv_h, d) and k_lens is required
    (`optiplan.kernels.paged_attention` is the entry point for that)."""
    import torch

    require(q.device)
    if q.dim() not in (3, 4) or (q.dim() == 4 and q.shape[2] != 1):
        raise ValueError(f"q {tuple(q.shape)}: decode takes one query per sequence, (b, h, d) or (b, h, 1, d); "
                         "more query rows go to flash_attention")
    squeeze = q.dim() == 4
    q3 = q[:, :, 0] if squeeze else q
    batch, heads, head_dim = q3.shape
    paged = block_table is not None
    if paged and k_lens is None:
        raise ValueError("a paged cache needs k_lens, the tokens each sequence holds")
    if k.dim() != 4 or (block_table.shape[0] if paged else k.shape[0]) != batch:
        raise ValueError(f"k {tuple(k.shape)} for {batch} sequences: (b, kv_h, sk, d), or pages (num_pages, "
                         "page_size, kv_h, d) with one block-table row per sequence")
    kv_heads = k.shape[2] if paged else k.shape[1]
    max_k = block_table.shape[1] * k.shape[1] if paged else k.shape[2]
    check_qkv(q3, k, v, heads, kv_heads)
    key_mask = boolean_mask(key_mask, "key_mask")
    sink_logits = sink_values(sink_logits, heads)
    q3, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q3, k, v))
    k_lens = (torch.full((batch,), max_k, dtype=torch.int32, device=q.device) if k_lens is None
              else k_lens.to(device=q.device, dtype=torch.int32).contiguous())
    block_d = max(16, next_power_of_2(head_dim))
    group = heads // kv_heads
    splits = num_splits or _splits(batch, kv_heads, max_k, q.device)
    tile_n = INTERPRETER_TILE["BLOCK_N"] if interpreted() else 128  # chunks are a multiple of every BLOCK_N
    chunk = -(-(-(-max_k // splits)) // tile_n) * tile_n
    splits = max(1, -(-max_k // chunk))
    part_o = torch.empty(batch, heads, splits, block_d, dtype=torch.float32, device=q.device)
    part_lse = torch.empty(batch, heads, splits, dtype=torch.float32, device=q.device)
    mask = None
    if key_mask is not None:
        mask = key_mask.to(torch.bool).expand(batch, max_k).contiguous().view(torch.uint8)
    if paged:  # page, slot and head strides in the kernel's (batch-or-page, head, row) order
        block_table = block_table.to(device=q.device, dtype=torch.int32).contiguous()
        k_strides = (k.stride(0), k.stride(2), k.stride(1))
        v_strides = (v.stride(0), v.stride(2), v.stride(1))
    else:
        k_strides, v_strides = (k.stride(0), k.stride(1), k.stride(2)), (v.stride(0), v.stride(1), v.stride(2))
    args = (q3, k, v, mask if mask is not None else q3, part_o, part_lse, k_lens,
            block_table if paged else k_lens, q3.stride(0), q3.stride(1), *k_strides, *v_strides,
            mask.stride(0) if mask is not None else 0, mask.stride(1) if mask is not None else 0,
            block_table.stride(0) if paged else 0, k.shape[1] if paged else 1,
            heads, head_dim, scale if scale is not None else head_dim ** -0.5, float(softcap or 1.0),
            int(window or 0), int(num_sinks or 0), chunk, splits, max_k, next_power_of_2(max_k))
    flags = dict(PAGED=paged, GROUP=group, BLOCK_G=max(16, next_power_of_2(group)), BLOCK_D=block_d, HAS_WINDOW=bool(window),
                 HAS_MASK=mask is not None, HAS_SOFTCAP=bool(softcap), **dot_flags(q.dtype))
    out = torch.empty(batch, 1, heads, head_dim, dtype=q.dtype, device=q.device)[:, 0]  # (b, h, d), bshd storage
    with on_device(q3, k, v, mask, sink_logits, block_table, k_lens):
        if interpreted():
            _decode_split[(batch, kv_heads, splits)](*args, **flags, **INTERPRETER_TILE)
        else:
            _decode_split_tuned[(batch, kv_heads, splits)](*args, **flags)
        if splits == 1 and sink_logits is None:  # one chunk is already normalized: nothing to merge
            out.copy_(part_o[:, :, 0, :head_dim])
            return out[:, :, None] if squeeze else out
        _decode_merge[(batch, heads)](part_o, part_lse, sink_logits if sink_logits is not None else q3, out,
                                      out.stride(0), out.stride(1), heads, head_dim, splits,
                                      HAS_SINKS=sink_logits is not None, BLOCK_S=max(2, next_power_of_2(splits)),
                                      BLOCK_D=block_d)
    return out[:, :, None] if squeeze else out


def reference_decode(q, k, v, *, k_lens=None, scale: float | None = None, window: int | None = None,
                     num_sinks: int = 0, sink_logits=None, softcap: float | None = None, key_mask=None):
    """Plain PyTorch decode attention (via the prefill reference with one query row): what the kernel is tested against."""
    from .flash_attention import reference_attention

    squeeze = q.dim() == 4
    q4 = q if squeeze else q[:, :, None]
    mask = key_mask[:, None, None, :] if key_mask is not None else None
    out = reference_attention(q4, k, v, k_lens=k_lens, causal=True, scale=scale, window=window,
                              num_sinks=num_sinks, sink_logits=sink_logits, softcap=softcap, mask=mask)
    return out if squeeze else out[:, :, 0]
