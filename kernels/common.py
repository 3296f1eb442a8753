"""Whether optiplan's Triton kernels can run here, and the tile configurations every kernel file shares.

Triton decides between compiling and interpreting when a function is decorated: `@triton.jit` returns an
interpreted function when TRITON_INTERPRET=1 is in the environment at that moment. triton.language's own helpers
(`tl.sum`, `tl.max`, `tl.sigmoid`) are decorated when `import triton` runs, ours when their module is imported,
so the variable has to be set before triton is first imported in the process; setting it later gives compiled
kernels that cannot take CPU tensors. `interpreted()` reports which mode this process got.

Without triton installed the kernel files still import (their PyTorch references work); their launchers raise
`KernelUnavailable` naming what to install.
"""

from __future__ import annotations

import functools

INSTALL_HINT = "pip install 'optiplan[kernels]' (triton)"


class KernelUnavailable(RuntimeError):
    """A Triton kernel cannot run in this process (no triton, or CPU tensors without the interpreter)."""


class _Stand:
    """Stands in for `triton` and `triton.language` when triton is not installed, so the kernel files import:
    decorators return the function unchanged and `tl.constexpr` is a plain annotation."""

    constexpr = int

    @staticmethod
    def jit(fn=None, **kwargs):
        return fn if fn is not None else (lambda f: f)

    @staticmethod
    def autotune(*args, **kwargs):
        return lambda f: f

    @staticmethod
    def Config(*args, **kwargs):  # noqa: N802 - triton's name
        return None


try:
    import triton
    import triton.language as tl
except ImportError:  # the kernel files still import; tested by hiding triton in a subprocess
    triton = tl = _Stand()


def triton_installed() -> bool:
    return not isinstance(triton, _Stand)


@functools.lru_cache(maxsize=1)
def interpreted() -> bool:
    """True when triton was imported with TRITON_INTERPRET=1: kernels then run on CPU tensors, in numpy."""
    if not triton_installed():
        return False
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(tl.sigmoid, InterpretedFunction)


def unavailable_reason(device) -> str | None:
    """Why the kernels cannot run on `device` (a torch.device or its name) in this process, or None."""
    if not triton_installed():
        return f"the Triton kernels need triton: {INSTALL_HINT}"
    kind = getattr(device, "type", None) or str(device).split(":")[0]
    if kind == "cuda" and not interpreted():
        return None
    if interpreted():
        return None if kind == "cpu" else f"triton runs in its interpreter here (TRITON_INTERPRET=1): CPU only, not {kind}"
    return ("the Triton kernels run on CUDA GPUs; on CPU only in triton's interpreter, slowly (set TRITON_INTERPRET=1 "
            "before the process starts)")


def require(device) -> None:
    """Raise KernelUnavailable when the kernels cannot run on `device` here."""
    reason = unavailable_reason(device)
    if reason:
        raise KernelUnavailable(reason)


def on_device(*tensors):
    """The context the kernels launch in: the CUDA device their tensors are on made current (Triton launches on the
    current device and its stream, so a model on cuda:1 would otherwise run its kernels on cuda:0 with pointers into
    cuda:1's memory); tensors on two devices are refused in one sentence."""
    import contextlib

    import torch

    devices = {t.device for t in tensors if t is not None}
    if len(devices) > 1:
        raise ValueError(f"the kernel's tensors are on {', '.join(sorted(map(str, devices)))}: move them to one device")
    device = next(iter(devices), None)
    return torch.cuda.device(device) if device is not None and device.type == "cuda" else contextlib.nullcontext()


def check_qkv(q, k, v, heads: int, kv_heads: int) -> None:
    """Refuse, in one sentence, attention inputs the kernels would misread: q, k and v of different dtypes, keys and
    values of different shapes (a value head narrower than the keys', as in MLA, is padded by the caller: see
    `optiplan.optimizers.attention.triton_attention`), a query head not as wide as a key head, query heads that do not
    group over the key/value heads, or heads wider than 256."""
    if not q.dtype == k.dtype == v.dtype:
        raise ValueError(f"q, k and v must share one dtype, not {q.dtype}, {k.dtype} and {v.dtype}")
    if k.shape != v.shape:
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} must have one shape (pad narrower value heads "
                         "to the key's width and slice the output, as FlashAttention's callers do)")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"query heads of {q.shape[-1]} do not match key heads of {k.shape[-1]}")
    if heads % kv_heads:
        raise ValueError(f"{heads} query heads do not divide into {kv_heads} key/value heads")
    if q.shape[-1] > 256:
        raise ValueError(f"head_dim {q.shape[-1]}: the kernel takes up to 256")


def sink_values(sink_logits, heads: int):
    """Learned sink logits as the kernels read them (one fp32 value per query head, contiguous), or None."""
    if sink_logits is None:
        return None
    if sink_logits.numel() != heads:
        raise ValueError(f"sink_logits holds {sink_logits.numel()} values: the kernels take one per query head "
                         f"({heads})")
    return sink_logits.float().contiguous().view(heads)


def boolean_mask(mask, name: str):
    """A mask the kernels take: boolean, True = attend. An additive float mask (0 where attended) would read as its
    opposite, so it is refused rather than converted."""
    import torch

    if mask is not None and mask.dtype != torch.bool:
        raise ValueError(f"{name} must be boolean (True = attend), not {mask.dtype}: from an additive mask, "
                         "take mask > torch.finfo(mask.dtype).min / 2")
    return mask


def gpu_generation() -> str:
    """'hopper' (sm_90 and newer) or 'ampere' (older): which autotune list a kernel file offers."""
    import torch

    if torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 9:
        return "hopper"
    return "ampere"


def next_power_of_2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def dot_flags(dtype) -> dict:
    """The kernels' PRECISION and UPCAST constants for inputs of `dtype`: fp32 multiplies in full precision (tf32
    would change an fp32 model's tokens); under the interpreter bf16 operands are widened to fp32 before `tl.dot`,
    which there mishandles bf16 (numpy has no bf16; the products of bf16 values are exact in fp32 anyway)."""
    import torch

    upcast = interpreted() and dtype == torch.bfloat16
    return {"PRECISION": "ieee" if dtype == torch.float32 or upcast else "tf32", "UPCAST": upcast}


# The inner step both attention kernels share (prefill's query tile and decode's group of query heads): scores of a
# key tile in log2 units, then the online-softmax update of the running maximum, denominator and weighted values
# (Milakov & Gimelshein, arXiv 1805.02867; FlashAttention's rescaling). Called from inside the @triton.jit kernels;
# Triton inlines them.


@triton.jit
def tile_scores(q, k, sm_scale, softcap, HAS_SOFTCAP: tl.constexpr, PRECISION: tl.constexpr):
    """q (rows, d) times k (d, cols), scaled, soft-capped where asked, in log2 units (the kernels use exp2)."""
    s = tl.dot(q, k, input_precision=PRECISION)
    if HAS_SOFTCAP:
        s = s * (sm_scale / softcap)
        s = softcap * (2.0 * tl.sigmoid(2.0 * s) - 1.0) * 1.4426950408889634  # tanh, then to log2 units
    else:
        s = s * (sm_scale * 1.4426950408889634)
    return s


@triton.jit
def online_softmax_step(s, v, m_i, l_i, acc, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """Fold a tile of scores s (rows, cols; -inf where not visible) and its values v (cols, d) into the running
    maximum m_i, denominator l_i and accumulator acc; returns them updated. A row that has seen nothing stays 0."""
    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
    p = tl.math.exp2(s - m_use[:, None])
    alpha = tl.math.exp2(m_i - m_use)
    l_i = l_i * alpha + tl.sum(p, 1)
    p = p.to(v.dtype)  # probabilities rounded to the value dtype, as FlashAttention does
    if UPCAST:  # the interpreter's dot mishandles bf16 (numpy has none): multiply the same values in fp32
        p = p.to(tl.float32)
        v = v.to(tl.float32)
    acc = tl.dot(p, v, acc * alpha[:, None], input_precision=PRECISION)
    return m_new, l_i, acc
