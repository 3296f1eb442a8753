"""Weight-only quantized matmul: y = x @ dequant(W)^T + bias with x in 16 or 32 bits and W in int4 (groups of
32/64/128 along the input dim, asymmetric) or int8 (one scale per output channel, symmetric), dequantized inside
the kernel so the weights cross memory at 4 or 8 bits (the tiled matmul of Triton's matmul tutorial with a
dequantizing load).

Packed format (what `pack_int4` / `pack_int8` return, and what an optiplan artifact stores):
- int4: `qweight` uint8 (K_pad, N // 2), the weight transposed so a tile of K rows reads contiguous output columns;
  byte [k, j] holds column 2j of row k in its low nibble and column 2j + 1 in its high nibble, unsigned 0..15.
  `scales` and `zeros` (K_pad // group, N) in the compute dtype: w = (q - zero) * scale. K is padded to a multiple
  of the group with q = zero (weight 0), and the kernel masks x past K.
- int8: `qweight` int8 (K, N), transposed likewise; `scales` (N,): w = q * scale.

Two paths: M <= 16 (decode) reads every weight once with 16-row tiles and splits K across programs (atomic adds
into an fp32 accumulator) so that a 1 x 8192 x 8192 product still fills the GPU, and multiplies an int4 tile's even
and odd columns apart (no interleave); larger M uses square tiles with the nibbles interleaved back in order.
For M <= 4 the decode path also has tiles that multiply and sum on the CUDA cores (`REDUCE`: a matrix-vector
product, x broadcast over the dequantized tile and summed along K) instead of padding M to a 16-row tensor-core
tile: no rows wasted, and the dequantized tile stays in registers instead of going to the MMA's operand layout
through shared memory. The autotuner times both kinds on the device and keeps the faster for each M.
"""

from __future__ import annotations

from .common import dot_flags, gpu_generation, interpreted, next_power_of_2, on_device, require, tl, triton

GROUPS = (32, 64, 128)
SMALL_M = 16
# (BLOCK_M, BLOCK_N, BLOCK_K, SPLIT_K, num_warps, num_stages). A BLOCK_K must divide the int4 group (one scale
# row per tile): configs with a wider one are pruned for smaller groups (_prune).
# The decode path's matrix-vector tiles (REDUCE), tried for M <= 4 with BLOCK_M the next power of 2 of M: wide
# tiles and a split K, so that every SM keeps several KB of weights in flight (a 1 x 8192 x 8192 int4 product is
# 32 MB: at 16-row tensor-core tiles it read 0.8 TB/s of an H200's 4.8).
HOPPER_SMALL = [(16, 64, 32, 8, 4, 4), (16, 128, 32, 4, 4, 4), (16, 64, 32, 16, 4, 3), (16, 256, 32, 2, 8, 3),
                (16, 128, 128, 4, 4, 3), (16, 64, 128, 8, 4, 3), (16, 256, 64, 4, 8, 3)]
HOPPER_LARGE = [(128, 128, 32, 1, 8, 4), (128, 256, 32, 1, 8, 3), (64, 128, 32, 1, 4, 4), (128, 64, 32, 1, 4, 4),
                (128, 128, 64, 1, 8, 3), (128, 256, 64, 1, 8, 3)]
AMPERE_SMALL = [(16, 64, 32, 8, 4, 3), (16, 128, 32, 4, 4, 3), (16, 32, 32, 16, 2, 4), (16, 128, 64, 4, 4, 3)]
AMPERE_LARGE = [(128, 128, 32, 1, 8, 3), (64, 128, 32, 1, 4, 3), (128, 64, 32, 1, 4, 3), (128, 128, 64, 1, 8, 3)]
REDUCE_TILES = [(128, 32, 16, 4, 4), (256, 32, 8, 4, 4), (128, 64, 8, 4, 3), (256, 64, 8, 8, 3), (512, 32, 4, 8, 3)]
REDUCE_M = 4
# the broadcast product held per thread at most (BLOCK_M x BLOCK_K x BLOCK_N / 2 for int4, whose even and odd
# columns multiply apart; x BLOCK_N for int8): at 128 the tiles compiled for sm_90 to 200-255 registers and spilled,
# at 64 to 64-160 without spilling, leaving room for more programs per SM
REDUCE_ELEMENTS_PER_THREAD = 64
# one fixed tile each on CPU: the interpreter's cost is per program and per loop step, so wide tiles
INTERPRETER_SMALL = {"BLOCK_M": 16, "BLOCK_N": 128, "BLOCK_K": 32, "SPLIT_K": 2, "GROUP_M": 4}
INTERPRETER_REDUCE = {"BLOCK_N": 128, "BLOCK_K": 32, "SPLIT_K": 2, "GROUP_M": 1}
INTERPRETER_LARGE = {"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 32, "SPLIT_K": 1, "GROUP_M": 4}


def _configs(small: bool):
    hopper = gpu_generation() == "hopper"
    tiles = (HOPPER_SMALL if hopper else AMPERE_SMALL) if small else (HOPPER_LARGE if hopper else AMPERE_LARGE)
    configs = [triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "SPLIT_K": s, "GROUP_M": 8, "REDUCE": False},
                             num_warps=w, num_stages=st) for m, n, k, s, w, st in tiles]
    if small:
        configs += [triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "SPLIT_K": s, "GROUP_M": 1,
                                   "REDUCE": True}, num_warps=w, num_stages=st)
                    for m in (1, 2, 4) for n, k, s, w, st in REDUCE_TILES if _reduce_fits(m, n, k, w, bits=4)]
    return configs


def _reduce_fits(block_m: int, block_n: int, block_k: int, warps: int, bits: int) -> bool:
    """Whether a matrix-vector tile's broadcast product stays within REDUCE_ELEMENTS_PER_THREAD per thread."""
    width = block_n // 2 if bits == 4 else block_n
    return block_m * block_k * width <= REDUCE_ELEMENTS_PER_THREAD * 32 * warps


def _prune(configs, named_args, **kwargs):
    """Keep the tiles whose K width divides the int4 group (for int8 the launcher passes K as the group), and the
    matrix-vector tiles (REDUCE) only for M <= 4, with BLOCK_M the next power of 2 of M (M_BUCKET), and within the
    per-thread budget for the weights' format (an int8 tile multiplies all its columns at once)."""
    group = named_args.get("group_size", 32)
    bucket = named_args.get("M_BUCKET", 1)
    bits = kwargs.get("BITS", named_args.get("BITS", 4))
    configs = [c for c in configs if not c.kwargs.get("REDUCE") or (
        c.kwargs["BLOCK_M"] == bucket <= REDUCE_M
        and _reduce_fits(bucket, c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"], c.num_warps, bits))]
    kept = [c for c in configs if group % c.kwargs["BLOCK_K"] == 0]
    return kept or [c for c in configs if c.kwargs["BLOCK_K"] == 32] or configs[:1]


@triton.jit
def _wo_gemm(
    X, QW, SCALES, ZEROS, BIAS, Y, ACC,
    M, N, K, stride_xm, stride_qk, stride_sg, stride_ym,
    group_size,
    M_BUCKET,  # autotune key only
    BITS: tl.constexpr, HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr,
    GROUP_M: tl.constexpr, SPLIT_NIBBLES: tl.constexpr, REDUCE: tl.constexpr,
):
    pid = tl.program_id(0)
    split = tl.program_id(1)
    # grouped ordering (Triton's matmul tutorial): programs that run together share rows of x and columns of W
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    in_group = GROUP_M * num_n
    first_m = (pid // in_group) * GROUP_M
    rows_here = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + ((pid % in_group) % rows_here)
    pid_n = (pid % in_group) // rows_here

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_k = tl.arange(0, BLOCK_K)
    m_ok = offs_m < M
    k_per_split = tl.cdiv(tl.cdiv(K, SPLIT_K), BLOCK_K) * BLOCK_K
    k_lo = split * k_per_split  # a multiple of BLOCK_K: every tile lies in one int4 group
    k_hi = tl.minimum(k_lo + k_per_split, K)
    if BITS == 4 and SPLIT_NIBBLES:
        # a byte holds columns 2j (low nibble) and 2j + 1 (high): the even and the odd columns are two products of
        # half the width, each dequantizing its nibbles in place. Interleaving them back into one tile moves them
        # through shared memory: on an H200 this path took 1.3-1.6x less time at M <= 16, and 1.4-1.6x more at M >= 64,
        # where the half-width products fill the tensor cores worse (profiles/kernels/h200-sxm.json)
        half = pid_n * (BLOCK_N // 2) + tl.arange(0, BLOCK_N // 2)
        even = 2 * half
        odd = even + 1
        pair_ok = half < N // 2
        acc_even = tl.zeros([BLOCK_M, BLOCK_N // 2], tl.float32)
        acc_odd = tl.zeros([BLOCK_M, BLOCK_N // 2], tl.float32)
        for k0 in range(k_lo, k_hi, BLOCK_K):
            ks = k0 + offs_k
            k_ok = ks < K
            x = tl.load(X + offs_m[:, None].to(tl.int64) * stride_xm + ks[None, :],
                        mask=m_ok[:, None] & k_ok[None, :], other=0.0)
            packed = tl.load(QW + ks[:, None].to(tl.int64) * stride_qk + half[None, :],
                             mask=k_ok[:, None] & pair_ok[None, :], other=0)
            g = k0 // group_size  # BLOCK_K divides the group: one scale row per tile
            row = SCALES + g * stride_sg
            zrow = ZEROS + g * stride_sg
            w_even = (((packed & 0xF).to(tl.float32) - tl.load(zrow + even, mask=pair_ok, other=0.0).to(
                tl.float32)[None, :]) * tl.load(row + even, mask=pair_ok, other=0.0).to(tl.float32)[None, :])
            w_odd = (((packed >> 4).to(tl.float32) - tl.load(zrow + odd, mask=pair_ok, other=0.0).to(
                tl.float32)[None, :]) * tl.load(row + odd, mask=pair_ok, other=0.0).to(tl.float32)[None, :])
            if not REDUCE:  # the tensor cores take the weights in x's dtype (the reduction stays in fp32)
                w_even = w_even.to(X.dtype.element_ty)
                w_odd = w_odd.to(X.dtype.element_ty)
            acc_even = _mac(x, w_even, acc_even, PRECISION, UPCAST, REDUCE)
            acc_odd = _mac(x, w_odd, acc_odd, PRECISION, UPCAST, REDUCE)
        _store(Y, ACC, BIAS, acc_even, offs_m, even, m_ok, pair_ok, N, stride_ym, split, HAS_BIAS, SPLIT_K)
        _store(Y, ACC, BIAS, acc_odd, offs_m, odd, m_ok, pair_ok, N, stride_ym, split, HAS_BIAS, SPLIT_K)
    else:
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        n_ok = offs_n < N
        acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
        for k0 in range(k_lo, k_hi, BLOCK_K):
            ks = k0 + offs_k
            k_ok = ks < K
            x = tl.load(X + offs_m[:, None].to(tl.int64) * stride_xm + ks[None, :],
                        mask=m_ok[:, None] & k_ok[None, :], other=0.0)
            if BITS == 4:  # the nibbles interleaved back into one tile of BLOCK_N columns, in order
                half = pid_n * (BLOCK_N // 2) + tl.arange(0, BLOCK_N // 2)
                packed = tl.load(QW + ks[:, None].to(tl.int64) * stride_qk + half[None, :],
                                 mask=k_ok[:, None] & (half < N // 2)[None, :], other=0)
                q = tl.interleave(packed & 0xF, packed >> 4).to(tl.float32)
                g = k0 // group_size
                scale = tl.load(SCALES + g * stride_sg + offs_n, mask=n_ok, other=0.0).to(tl.float32)
                zero = tl.load(ZEROS + g * stride_sg + offs_n, mask=n_ok, other=0.0).to(tl.float32)
                w = ((q - zero[None, :]) * scale[None, :]).to(X.dtype.element_ty)
            else:
                q8 = tl.load(QW + ks[:, None].to(tl.int64) * stride_qk + offs_n[None, :],
                             mask=k_ok[:, None] & n_ok[None, :], other=0)
                if UPCAST or REDUCE:  # the interpreter converts int8 to bf16 wrongly; fp32 holds the same values
                    w = q8.to(tl.float32)
                else:
                    w = q8.to(X.dtype.element_ty)  # exact: |q| <= 127
            acc = _mac(x, w, acc, PRECISION, UPCAST, REDUCE)
        if BITS == 8:  # the per-channel scale factors out of the sum over K
            acc = acc * tl.load(SCALES + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
        _store(Y, ACC, BIAS, acc, offs_m, offs_n, m_ok, n_ok, N, stride_ym, split, HAS_BIAS, SPLIT_K)


@triton.jit
def _mac(x, w, acc, PRECISION: tl.constexpr, UPCAST: tl.constexpr, REDUCE: tl.constexpr):
    """acc + x @ w for x (BLOCK_M, BLOCK_K) and a dequantized w (BLOCK_K, columns): on the tensor cores, or, for a
    few rows (REDUCE), as broadcast products summed along K on the CUDA cores, all in fp32."""
    # one return at the end: a GPU build goes on compiling the statements after a return inside a constexpr branch
    if REDUCE:
        out = acc + tl.sum(x.to(tl.float32)[:, :, None] * w.to(tl.float32)[None, :, :], axis=1)
    elif UPCAST:  # the interpreter's dot mishandles bf16 (numpy has none): the same values in fp32
        out = tl.dot(x.to(tl.float32), w.to(tl.float32), acc, input_precision=PRECISION)
    else:
        out = tl.dot(x, w, acc, input_precision=PRECISION)
    return out


@triton.jit
def _store(Y, ACC, BIAS, acc, offs_m, cols, m_ok, n_ok, N, stride_ym, split, HAS_BIAS: tl.constexpr,
           SPLIT_K: tl.constexpr):
    """Write a tile's columns `cols` (any spacing): to y directly, or added into the fp32 accumulator when K is
    split across programs; the bias once, by the first split."""
    if HAS_BIAS:
        if split == 0:
            acc = acc + tl.load(BIAS + cols, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    out_ok = m_ok[:, None] & n_ok[None, :]
    if SPLIT_K == 1:
        tl.store(Y + offs_m[:, None].to(tl.int64) * stride_ym + cols[None, :], acc.to(Y.dtype.element_ty), mask=out_ok)
    else:
        tl.atomic_add(ACC + offs_m[:, None].to(tl.int64) * N + cols[None, :], acc, mask=out_ok)


_small_m = triton.autotune(configs=_configs(True) if not interpreted() else [],
                           key=["M_BUCKET", "N", "K", "BITS", "group_size"], reset_to_zero=["ACC"],
                           prune_configs_by={"early_config_prune": _prune})(_wo_gemm)
_large_m = triton.autotune(configs=_configs(False) if not interpreted() else [],
                           key=["M_BUCKET", "N", "K", "BITS", "group_size"],
                           prune_configs_by={"early_config_prune": _prune})(_wo_gemm)


def weight_only_matmul(x, qweight, scales, zeros=None, bias=None, *, bits: int, group_size: int | None = None,
                       out_features: int | None = None):
    """y = x @ dequant(W)^T + bias for x (..., K) and a packed W (see the module docstring); returns (..., N)."""
    import torch

    require(x.device)
    lead, k = x.shape[:-1], x.shape[-1]
    x2 = x.reshape(-1, k)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    m = x2.shape[0]
    _check_packed(k, qweight, scales, zeros, bits, group_size, out_features)
    n = out_features or (qweight.shape[1] * 2 if bits == 4 else qweight.shape[1])
    y = torch.empty(m, n, dtype=x.dtype, device=x.device)
    small = m <= SMALL_M
    acc = torch.zeros(m, n, dtype=torch.float32, device=x.device) if small else y
    k_rows = qweight.shape[0]  # K padded to the group for int4
    args = (x2, qweight, scales, zeros if zeros is not None else scales, bias if bias is not None else scales, y, acc,
            m, n, k, x2.stride(0), qweight.stride(0), scales.stride(0) if bits == 4 else 0, y.stride(0),
            group_size or k_rows)
    flags = dict(BITS=bits, HAS_BIAS=bias is not None, SPLIT_NIBBLES=small, **dot_flags(x.dtype))
    with on_device(x2, qweight, scales, zeros, bias):
        _launch_gemm(args, flags, m, n, small, group_size)
    if small:
        y.copy_(acc)
    return y.reshape(*lead, n)


def _check_packed(k: int, qweight, scales, zeros, bits: int, group_size: int | None, out_features: int | None) -> None:
    """Refuse, in one sentence, packed tensors that disagree with each other or with x's K: the kernel would read
    past their ends (what `pack_int4` and `pack_int8` return always agrees)."""
    if bits not in (4, 8):
        raise ValueError(f"bits={bits}: the kernel reads int4 or int8 weights")
    k_rows, columns = qweight.shape[0], qweight.shape[1] * (2 if bits == 4 else 1)
    if out_features is not None and not 0 < out_features <= columns:
        raise ValueError(f"out_features={out_features}: the packed weight holds {columns} output columns")
    if bits == 8:
        if k != k_rows or tuple(scales.shape) != (qweight.shape[1],):
            raise ValueError(f"x's K={k}, int8 weight {tuple(qweight.shape)} and scales {tuple(scales.shape)}: "
                             "pack_int8 gives (K, N) and (N,)")
        return
    if group_size not in GROUPS or k_rows % group_size:
        raise ValueError(f"int4 groups are {GROUPS} along K (padded), got {group_size}")
    groups = (k_rows // group_size, columns)
    if not k <= k_rows or tuple(scales.shape) != groups or zeros is None or tuple(zeros.shape) != groups:
        raise ValueError(f"x's K={k}, int4 weight {tuple(qweight.shape)}, scales "
                         f"{tuple(scales.shape)} and zeros {None if zeros is None else tuple(zeros.shape)} at group "
                         f"{group_size}: pack_int4 gives (K_pad, N/2) and two of {groups}")
    if scales.stride(-1) != 1 or zeros.stride() != scales.stride():
        raise ValueError("int4 scales and zeros are read with one row stride and contiguous rows: pass them as "
                         "pack_int4 gives them (or .contiguous())")


def _launch_gemm(args, flags, m: int, n: int, small: bool, group_size: int | None) -> None:
    if interpreted():
        # wider K steps where the group allows: the interpreter pays per loop step; a few rows take the
        # matrix-vector tiles, as the autotuner may on a GPU
        if m <= REDUCE_M:
            tile = dict(INTERPRETER_REDUCE, BLOCK_M=next_power_of_2(m), REDUCE=True)
        else:
            tile = dict(INTERPRETER_SMALL if small else INTERPRETER_LARGE, REDUCE=False)
        tile["BLOCK_K"] = min(64, group_size or 64)
        grid = (triton.cdiv(m, tile["BLOCK_M"]) * triton.cdiv(n, tile["BLOCK_N"]), tile["SPLIT_K"])
        _wo_gemm[grid](*args, m, **flags, **tile)
    else:
        grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),  # noqa: E731
                             meta["SPLIT_K"])
        (_small_m if small else _large_m)[grid](*args, next_power_of_2(m), **flags)


def tuned_config(m: int) -> str | None:
    """The tile the autotuner chose for the last product of `m` rows' path (the decode path's tensor-core or
    matrix-vector tile, or the large-M one), as text; None before any or in the interpreter."""
    config = getattr(_small_m if m <= SMALL_M else _large_m, "best_config", None)
    return None if config is None else str(config)


def pack_int4(weight, group_size: int = 128):
    """Round-to-nearest asymmetric int4 of `weight` (N, K), one scale and zero point per `group_size` inputs of
    each output row. Returns (qweight uint8 (K_pad, N // 2), scales, zeros (K_pad // group, N)) in weight's dtype."""
    import torch

    if group_size not in GROUPS:
        raise ValueError(f"int4 group size must be one of {GROUPS}, got {group_size}")
    n, k = weight.shape
    if n % 2:
        raise ValueError(f"int4 packing pairs output columns; {n} is odd")
    k_pad = -(-k // group_size) * group_size
    w = torch.nn.functional.pad(weight.float(), (0, k_pad - k)).view(n, k_pad // group_size, group_size)
    # the range holds zero (as GPTQ's and AWQ's do): a group of one sign, or a constant one, would otherwise clamp
    # its zero point to the range's end and saturate its values
    lo, hi = w.amin(-1).clamp(max=0), w.amax(-1).clamp(min=0)
    scale = ((hi - lo) / 15).clamp(min=1e-8)
    zero = torch.round(-lo / scale).clamp(0, 15)
    q = torch.clamp(torch.round(w / scale[..., None]) + zero[..., None], 0, 15).to(torch.uint8)
    if k_pad > k:  # padding decodes to exactly zero
        q.view(n, k_pad)[:, k:] = zero.repeat_interleave(group_size, dim=1)[:, k:].to(torch.uint8)
    qt = q.view(n, k_pad).t().contiguous()  # (K_pad, N)
    packed = (qt[:, 0::2] | (qt[:, 1::2] << 4)).contiguous()
    return packed, scale.t().contiguous().to(weight.dtype), zero.t().contiguous().to(weight.dtype)


def pack_int8(weight):
    """Symmetric int8 of `weight` (N, K), one scale per output row. Returns (qweight int8 (K, N), scales (N,))."""
    import torch

    scale = (weight.float().abs().amax(-1) / 127).clamp(min=1e-8)
    q = torch.round(weight.float() / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q.t().contiguous(), scale.to(weight.dtype)


def dequantize(qweight, scales, zeros=None, *, bits: int, in_features: int, dtype=None):
    """The weight (N, K) a packed layout stands for, in `dtype` (default: the scales' dtype)."""
    import torch

    if bits == 8:
        w = qweight.t().float() * scales.float()[:, None]
    else:
        q = torch.stack([qweight & 0xF, qweight >> 4], dim=-1).view(qweight.shape[0], -1).float()  # (K_pad, N)
        group = qweight.shape[0] // scales.shape[0]
        s = scales.float().repeat_interleave(group, dim=0)
        z = zeros.float().repeat_interleave(group, dim=0)
        w = ((q - z) * s).t()[:, :in_features]
    return w.to(dtype or scales.dtype)


def reference_matmul(x, qweight, scales, zeros=None, bias=None, *, bits: int, in_features: int):
    """Plain PyTorch, fp32 throughout: the dequantized weight times x, rounded to x's dtype at the end."""
    import torch

    w = dequantize(qweight, scales, zeros, bits=bits, in_features=in_features, dtype=torch.float32)
    y = x.float() @ w.float().t()
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)
