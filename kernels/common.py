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
