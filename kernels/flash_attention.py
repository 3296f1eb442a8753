"""Flash attention forward for prefill: tiled, online softmax, no score matrix in memory (Dao et al.,
arXiv 2205.14135; the shape of Triton's fused-attention tutorial).

Supports causal attention aligned to the end of the keys (query i of a sequence with q_len queries and k_len keys
sits at position k_len - q_len + i), grouped-query and multi-query attention (query head h reads key/value head
h // group), any head_dim up to 256 (padded to a power of two inside the kernel), sliding windows (a key j is seen
when position - j < window), StreamingLLM sink tokens (the first `num_sinks` keys stay visible beside the window),
learned per-head sink logits (gpt-oss' `s_aux`: an extra softmax term with no value), logit soft-capping
(Gemma 2: softcap * tanh(score / softcap)), an optional dense boolean mask (transformers' masks), and ragged
batches: per-sequence query and key lengths, either padded (b, h, s, d) or packed varlen (total, h, d) with
cumulative offsets as in FlashAttention's varlen API.

Decode (one query per sequence) goes to the split-K kernel in `flash_decoding`.
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

# (BLOCK_M, BLOCK_N, num_warps, num_stages). Hopper has 228 KB of shared memory per SM and takes deeper
# pipelines; Ampere (A100: 164 KB) fewer stages. Head dim 256 tiles are pruned to fit (see _prune).
HOPPER = [(128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 4), (128, 32, 4, 4), (64, 128, 8, 3)]
AMPERE = [(128, 64, 4, 3), (64, 64, 4, 3), (128, 32, 4, 4), (64, 32, 4, 4)]
# one fixed config on CPU, where tests' shapes cross its edges
INTERPRETER_TILE = {"BLOCK_M": 32, "BLOCK_N": 32, "WHOLE_TILES": True}


def _configs():
    """Each tile shape with and without WHOLE_TILES (the tiles every query sees whole read without masks): the
    autotuner keeps whichever the device runs faster."""
    tiles = HOPPER if gpu_generation() == "hopper" else AMPERE
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n, "WHOLE_TILES": whole}, num_warps=w, num_stages=s)
            for m, n, w, s in tiles for whole in (True, False)]


def _prune(configs, named_args, **kwargs):
    """Tiles of a 256-wide head need BLOCK_M * BLOCK_N small enough for the registers and shared memory."""
    wide = kwargs.get("BLOCK_D", named_args.get("BLOCK_D", 64)) >= 256
    kept = [c for c in configs if not wide or c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] <= 64 * 64]
    return kept or configs[:1]


@triton.jit
def _fold_tile(q, K_ROWS, V_ROWS, MASK_ROWS, k0, start_n, offs_n, offs_d, d_ok, m_ok, pos_m, k_len,
               stride_kn, stride_vn, stride_mn, m_i, l_i, acc, sm_scale, softcap, window, num_sinks,
               CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr, HAS_MASK: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
               PRECISION: tl.constexpr, UPCAST: tl.constexpr, MASKED: tl.constexpr):
    """Fold the key tile at `start_n` into the running softmax. MASKED: the tile crosses the diagonal, the window's
    edge, the keys' end or a dense mask, so each (query, key) pair is checked; otherwise every pair is visible and
    the tile is read and scored without a mask (the bulk of a long prefill)."""
    cols = start_n + offs_n
    keys = (k0 + cols).to(tl.int64)
    n_ok = cols < k_len
    if MASKED:
        k = tl.load(K_ROWS + keys[None, :] * stride_kn + offs_d[:, None], mask=n_ok[None, :] & d_ok[:, None],
                    other=0.0)
    else:
        k = tl.load(K_ROWS + keys[None, :] * stride_kn + offs_d[:, None], mask=d_ok[:, None], other=0.0)
    if UPCAST:  # the interpreter's dot mishandles bf16 (numpy has none): multiply the same values in fp32
        k = k.to(tl.float32)
    s = tile_scores(q, k, sm_scale, softcap, HAS_SOFTCAP, PRECISION)
    if MASKED:
        ok = n_ok[None, :] & m_ok[:, None]
        if CAUSAL:
            ok = ok & (cols[None, :] <= pos_m[:, None])
        if HAS_WINDOW:
            ok = ok & ((cols[None, :] > pos_m[:, None] - window) | (cols[None, :] < num_sinks))
        if HAS_MASK:
            allowed = tl.load(MASK_ROWS + cols[None, :] * stride_mn, mask=ok, other=0)
            ok = ok & (allowed != 0)
        s = tl.where(ok, s, float("-inf"))
        v = tl.load(V_ROWS + keys[:, None] * stride_vn + offs_d[None, :], mask=n_ok[:, None] & d_ok[None, :],
                    other=0.0)
    else:
        v = tl.load(V_ROWS + keys[:, None] * stride_vn + offs_d[None, :], mask=d_ok[None, :], other=0.0)
    return online_softmax_step(s, v, m_i, l_i, acc, PRECISION, UPCAST)


@triton.jit
def _flash_fwd(
    Q, K, V, O, MASK, SINKS,
    Q_START, Q_LENS, K_START, K_LENS,  # int32 per sequence: first row and row count in Q/O, and in K/V
    stride_qb, stride_qh, stride_qm, stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn,
    stride_ob, stride_oh, stride_om, stride_mb, stride_mh, stride_mm, stride_mn,
    num_heads, head_dim, sm_scale, softcap, window, num_sinks,
    Q_ROWS, K_ROWS_HELD,  # rows Q/O and K/V hold past each sequence's start: a length beyond them is cut to them
    Q_BUCKET, K_BUCKET,  # powers of two of the longest lengths: autotune keys only
    GROUP: tl.constexpr, BLOCK_D: tl.constexpr, CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr,
    HAS_MASK: tl.constexpr, HAS_SINKS: tl.constexpr, HAS_SOFTCAP: tl.constexpr, PRECISION: tl.constexpr,
    UPCAST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, WHOLE_TILES: tl.constexpr,
):
    start_m = tl.program_id(0)
    off_bh = tl.program_id(1)
    b = off_bh // num_heads
    h = (off_bh % num_heads).to(tl.int64)  # 64-bit offsets: a head's or a mask row's reach past 2^31 elements
    kvh = h // GROUP
    b64 = b.to(tl.int64)
    q0 = tl.load(Q_START + b)
    k0 = tl.load(K_START + b)
    # a length past the tensor's rows would read another sequence's keys and write its output rows: cut to the rows
    q_len = tl.maximum(tl.minimum(tl.load(Q_LENS + b), Q_ROWS - q0), 0)
    k_len = tl.maximum(tl.minimum(tl.load(K_LENS + b), K_ROWS_HELD - k0), 0)

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    m_ok = offs_m < q_len
    d_ok = offs_d < head_dim
    rows = (q0 + offs_m).to(tl.int64)
    q = tl.load(Q + b64 * stride_qb + h * stride_qh + rows[:, None] * stride_qm + offs_d[None, :],
                mask=m_ok[:, None] & d_ok[None, :], other=0.0)
    if UPCAST:
        q = q.to(tl.float32)
    pos_m = k_len - q_len + offs_m  # each query's position among the keys (end-aligned)
    K_ROWS = K + b64 * stride_kb + kvh * stride_kh
    V_ROWS = V + b64 * stride_vb + kvh * stride_vh
    MASK_ROWS = MASK + b64 * stride_mb + h * stride_mh + offs_m.to(tl.int64)[:, None] * stride_mm

    # keys this block of queries can see: [lo, hi) plus the sink blocks before lo
    first_pos = k_len - q_len + start_m * BLOCK_M  # the block's first and last query positions
    last_pos = first_pos + BLOCK_M - 1
    lo = 0
    hi = k_len
    if CAUSAL:
        hi = tl.minimum(k_len, last_pos + 1)
    if HAS_WINDOW:
        lo = tl.maximum(first_pos - window + 1, 0)
        lo = (lo // BLOCK_N) * BLOCK_N
    live = start_m * BLOCK_M < q_len
    n_sink = tl.where(live, (tl.minimum(num_sinks, lo) + BLOCK_N - 1) // BLOCK_N, 0)
    n_main = tl.where(live, (tl.maximum(hi - lo, 0) + BLOCK_N - 1) // BLOCK_N, 0)
    # main tiles [full_lo, full_hi) are seen whole by every query of the block: inside the keys, at or before the
    # first query's position (causal), after the last query's window edge (window); the others are masked
    seen_by_all = tl.minimum(first_pos + 1, k_len) if CAUSAL else k_len
    full_hi = tl.minimum(tl.maximum(seen_by_all - lo, 0) // BLOCK_N, n_main)
    full_lo = 0
    if HAS_WINDOW:
        full_lo = tl.minimum((tl.maximum(last_pos - window + 1 - lo, 0) + BLOCK_N - 1) // BLOCK_N, full_hi)
    if HAS_MASK or not WHOLE_TILES:  # a dense mask can hide any pair: every tile checks it
        full_lo = n_main
        full_hi = n_main

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for t in range(0, n_sink):  # sink tokens before the window
        m_i, l_i, acc = _fold_tile(q, K_ROWS, V_ROWS, MASK_ROWS, k0, t * BLOCK_N, offs_n, offs_d, d_ok, m_ok, pos_m,
                                   k_len, stride_kn, stride_vn, stride_mn, m_i, l_i, acc, sm_scale, softcap, window,
                                   num_sinks, CAUSAL, HAS_WINDOW, HAS_MASK, HAS_SOFTCAP, PRECISION, UPCAST, True)
    for t in range(0, full_lo):  # the window's edge
        m_i, l_i, acc = _fold_tile(q, K_ROWS, V_ROWS, MASK_ROWS, k0, lo + t * BLOCK_N, offs_n, offs_d, d_ok, m_ok,
                                   pos_m, k_len, stride_kn, stride_vn, stride_mn, m_i, l_i, acc, sm_scale, softcap,
                                   window, num_sinks, CAUSAL, HAS_WINDOW, HAS_MASK, HAS_SOFTCAP, PRECISION, UPCAST,
                                   True)
    for t in range(full_lo, full_hi):  # whole tiles: no mask
        m_i, l_i, acc = _fold_tile(q, K_ROWS, V_ROWS, MASK_ROWS, k0, lo + t * BLOCK_N, offs_n, offs_d, d_ok, m_ok,
                                   pos_m, k_len, stride_kn, stride_vn, stride_mn, m_i, l_i, acc, sm_scale, softcap,
                                   window, num_sinks, CAUSAL, HAS_WINDOW, HAS_MASK, HAS_SOFTCAP, PRECISION, UPCAST,
                                   False)
    for t in range(full_hi, n_main):  # the diagonal and the keys' end
        m_i, l_i, acc = _fold_tile(q, K_ROWS, V_ROWS, MASK_ROWS, k0, lo + t * BLOCK_N, offs_n, offs_d, d_ok, m_ok,
                                   pos_m, k_len, stride_kn, stride_vn, stride_mn, m_i, l_i, acc, sm_scale, softcap,
                                   window, num_sinks, CAUSAL, HAS_WINDOW, HAS_MASK, HAS_SOFTCAP, PRECISION, UPCAST,
                                   True)
    if HAS_SINKS:  # a learned logit per head joins the softmax's denominator and adds no value
        sink = tl.load(SINKS + h).to(tl.float32) * 1.4426950408889634
        m_fin = tl.maximum(m_i, sink)
        alpha = tl.math.exp2(m_i - m_fin)
        l_i = l_i * alpha + tl.math.exp2(sink - m_fin)
        acc = acc * alpha[:, None]
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    tl.store(O + b64 * stride_ob + h * stride_oh + rows[:, None] * stride_om + offs_d[None, :],
             out.to(O.dtype.element_ty), mask=m_ok[:, None] & d_ok[None, :])


_flash_fwd_tuned = triton.autotune(configs=_configs() if not interpreted() else [],
                                   key=["Q_BUCKET", "K_BUCKET", "BLOCK_D", "GROUP", "CAUSAL", "HAS_WINDOW"],
                                   prune_configs_by={"early_config_prune": _prune})(_flash_fwd)


def _lengths(lens, default: int, batch: int, device):
    import torch

    if lens is None:
        return torch.full((batch,), default, dtype=torch.int32, device=device)
    return lens.to(device=device, dtype=torch.int32).contiguous()


def _launch(q, k, v, o, q_start, q_lens, k_start, k_lens, strides, max_q, max_k, *, causal, scale, window,
            num_sinks, sink_logits, softcap, mask, mask_strides, batch):
    require(q.device)
    heads, kv_heads, head_dim = strides["heads"], strides["kv_heads"], q.shape[-1]
    check_qkv(q, k, v, heads, kv_heads)
    sink_logits = sink_values(sink_logits, heads)
    block_d = max(16, next_power_of_2(head_dim))
    args = (q, k, v, o, mask if mask is not None else q, sink_logits if sink_logits is not None else q,
            q_start, q_lens, k_start, k_lens, *strides["q"], *strides["k"], *strides["v"], *strides["o"],
            *(mask_strides or (0, 0, 0, 0)), heads, head_dim, scale if scale is not None else head_dim ** -0.5,
            float(softcap or 1.0), int(window or 0), int(num_sinks or 0), strides["q_rows"], strides["k_rows"],
            next_power_of_2(max_q), next_power_of_2(max_k))
    flags = dict(GROUP=heads // kv_heads, BLOCK_D=block_d, CAUSAL=bool(causal), HAS_WINDOW=bool(window),
                 HAS_MASK=mask is not None, HAS_SINKS=sink_logits is not None, HAS_SOFTCAP=bool(softcap),
                 **dot_flags(q.dtype))
    with on_device(q, k, v, o, mask, sink_logits, q_start, q_lens, k_start, k_lens):
        if interpreted():
            tile = INTERPRETER_TILE
            _flash_fwd[(triton.cdiv(max_q, tile["BLOCK_M"]), batch * heads)](*args, **flags, **tile)
        else:
            grid = lambda meta: (triton.cdiv(max_q, meta["BLOCK_M"]), batch * heads)  # noqa: E731
            _flash_fwd_tuned[grid](*args, **flags)
    return o


def flash_attention(q, k, v, *, q_lens=None, k_lens=None, causal: bool = True, scale: float | None = None,
                    window: int | None = None, num_sinks: int = 0, sink_logits=None, softcap: float | None = None,
                    mask=None):
    """Attention over padded batches. q (b, h, sq, d), k/v (b, kv_h, sk, d) in any strides with d contiguous;
    q_lens/k_lens (b,) the valid rows of each sequence (default: all); mask bool (b, 1 or h, sq, sk), True = attend.
    Returns (b, h, sq, d), a view of a (b, sq, h, d) tensor (transformers' layout); rows past q_lens are zero."""
    import torch

    if q.dim() != 4 or k.dim() != 4 or q.shape[0] != k.shape[0]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)}: the padded layout is (batch, heads, rows, "
                         "head_dim) for both, one batch")
    batch, heads, max_q, _ = q.shape
    kv_heads, max_k = k.shape[1], k.shape[2]
    mask = boolean_mask(mask, "mask")
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    o = torch.zeros(batch, max_q, heads, q.shape[-1], dtype=q.dtype, device=q.device).transpose(1, 2)
    zeros = torch.zeros(batch, dtype=torch.int32, device=q.device)
    strides = {"heads": heads, "kv_heads": kv_heads, "q_rows": max_q, "k_rows": max_k,
               "q": (q.stride(0), q.stride(1), q.stride(2)),
               "k": (k.stride(0), k.stride(1), k.stride(2)), "v": (v.stride(0), v.stride(1), v.stride(2)),
               "o": (o.stride(0), o.stride(1), o.stride(2))}
    mask_strides = None
    if mask is not None:  # one byte per (sequence, [head,] query, key); broadcast over heads by a zero stride
        mask = mask.to(torch.bool).expand(batch, -1, max_q, max_k).contiguous().view(torch.uint8)
        mask_strides = (mask.stride(0), mask.stride(1) if mask.shape[1] > 1 else 0, mask.stride(2), mask.stride(3))
    return _launch(q, k, v, o, zeros, _lengths(q_lens, max_q, batch, q.device), zeros,
                   _lengths(k_lens, max_k, batch, q.device), strides, max_q, max_k, causal=causal, scale=scale,
                   window=window, num_sinks=num_sinks, sink_logits=sink_logits, softcap=softcap, mask=mask,
                   mask_strides=mask_strides, batch=batch)


def flash_attention_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_q: int, max_k: int, *, causal: bool = True,
                           scale: float | None = None, window: int | None = None, num_sinks: int = 0,
                           sink_logits=None, softcap: float | None = None):
    """Attention over packed sequences (FlashAttention's varlen layout): q (total_q, h, d), k/v (total_k, kv_h, d),
    cu_seqlens (b + 1,) int32 offsets. Returns (total_q, h, d).

    The offsets are checked against the tensors and max_q/max_k (one small copy to the host: the launch grid is
    sized by max_q, so a longer sequence would leave rows unwritten)."""
    import torch

    batch = cu_seqlens_q.numel() - 1
    if cu_seqlens_k.numel() != batch + 1 or batch < 1:
        raise ValueError(f"cu_seqlens_q ({cu_seqlens_q.numel()}) and cu_seqlens_k ({cu_seqlens_k.numel()}) must both "
                         "hold batch + 1 offsets")
    for name, cu, total, longest in (("q", cu_seqlens_q, q.shape[0], max_q), ("k", cu_seqlens_k, k.shape[0], max_k)):
        offsets = cu.tolist()
        lengths = [b - a for a, b in zip(offsets, offsets[1:])]
        if offsets[0] != 0 or offsets[-1] != total or min(lengths) < 0 or max(lengths) > longest:
            raise ValueError(f"cu_seqlens_{name} {offsets[:8]}{'...' if len(offsets) > 8 else ''} must rise from 0 to "
                             f"the {total} rows of {name}, each sequence at most max_{name}={longest}")
    # the kernel reads a row's head dimension as contiguous, as flash_attention makes it; the output is allocated so
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    o = torch.zeros(q.shape, dtype=q.dtype, device=q.device)
    cq, ck = cu_seqlens_q.to(torch.int32), cu_seqlens_k.to(torch.int32)
    strides = {"heads": q.shape[1], "kv_heads": k.shape[1], "q_rows": q.shape[0], "k_rows": k.shape[0],
               "q": (0, q.stride(1), q.stride(0)),
               "k": (0, k.stride(1), k.stride(0)), "v": (0, v.stride(1), v.stride(0)), "o": (0, o.stride(1), o.stride(0))}
    return _launch(q, k, v, o, cq[:-1].contiguous(), (cq[1:] - cq[:-1]).contiguous(), ck[:-1].contiguous(),
                   (ck[1:] - ck[:-1]).contiguous(), strides, max_q, max_k, causal=causal, scale=scale, window=window,
                   num_sinks=num_sinks, sink_logits=sink_logits, softcap=softcap, mask=None, mask_strides=None,
                   batch=batch)


def reference_attention(q, k, v, *, q_lens=None, k_lens=None, causal: bool = True, scale: float | None = None,
                        window: int | None = None, num_sinks: int = 0, sink_logits=None, softcap: float | None = None,
                        mask=None):
    """The same attention in plain PyTorch, fp32 throughout: what the kernels are tested against. Same arguments
    and result layout as `flash_attention` (rows past q_lens are zero)."""
    import torch

    batch, heads, max_q, head_dim = q.shape
    kv_heads, max_k = k.shape[1], k.shape[2]
    group = heads // kv_heads
    kf = k.float().repeat_interleave(group, dim=1)
    vf = v.float().repeat_interleave(group, dim=1)
    scale = scale if scale is not None else head_dim ** -0.5
    s = torch.matmul(q.float(), kf.transpose(-1, -2)) * scale  # (b, h, sq, sk)
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    ql = _lengths(q_lens, max_q, batch, q.device).long()
    kl = _lengths(k_lens, max_k, batch, q.device).long()
    i = torch.arange(max_q, device=q.device)
    j = torch.arange(max_k, device=q.device)
    pos = (kl - ql)[:, None] + i[None, :]  # (b, sq)
    ok = (j[None, None, :] < kl[:, None, None]) & (i[None, :, None] < ql[:, None, None])  # (b, sq, sk)
    if causal:
        ok &= j[None, None, :] <= pos[:, :, None]
    if window:
        ok &= (j[None, None, :] > pos[:, :, None] - window) | (j[None, None, :] < num_sinks)
    ok = ok[:, None]
    if mask is not None:
        ok = ok & mask.to(torch.bool)
    s = s.masked_fill(~ok, float("-inf"))
    if sink_logits is not None:
        sinks = sink_logits.float().view(1, heads, 1, 1).expand(batch, heads, max_q, 1)
        s = torch.cat([s, sinks], dim=-1)
    m = s.amax(-1, keepdim=True).clamp(min=torch.finfo(torch.float32).min)  # rows that see nothing give zeros
    p = torch.exp(s - m)
    denom = p.sum(-1, keepdim=True)
    p = (p / torch.where(denom == 0, torch.ones_like(denom), denom))[..., :max_k]
    return torch.matmul(p, vf).to(q.dtype)
