"""What optiplan's Triton kernels measured on a GPU: the JSON `benchmarks/gpu/bench_kernels.py` writes, kept in
`profiles/kernels/<hardware id>.json`, read into the shares of the device's peaks that the planner predicts them with.

With no measurement of a GPU the planner keeps its documented defaults there and never plans our kernels: their
effect is measured, not assumed. Each share comes from our kernel's rows of the run (the best share at the longest
context for decode attention, at the longest sequence for prefill, at M = 1 on the largest weight for the GEMMs),
and the same run's alternatives (torch SDPA and flash-attn, torchao int4) decide whether ours is the one to plan: at
the median of the shapes both measured (the GEMMs' at M = 1, decode's), not at the one the shares come from (a kernel
faster at its longest context only is slower where most requests run). The paged decode kernel, which `apply` does
not swap in, counts for neither.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ... import profiles
from ..analytic.efficiency import default_efficiency
from ..schema import HardwareSpec
from .hardware import resolve_hardware

KERNELS_DIR = Path(profiles.__file__).resolve().parent / "kernels"
# what our attention replaces: transformers' default (torch SDPA) and FlashAttention where the run had it
ATTENTION_ALTERNATIVES = ("torch-sdpa", "flash-attn")
# How much faster ours must measure to be planned: a swap is a gain only beyond the noise between runs. Two H200 runs
# timed the same cuBLAS, int8 and torchao GEMMs 0.8% apart at the median and 2.7% at most (30 cases, GPU work
# alone; profiles/kernels/h200-sxm.json's two runs); a win inside that is a tie, and a tie is no gain to plan on.
WIN_MARGIN = 1.05


@dataclass(frozen=True)
class KernelShares:
    """Shares of the device's datasheet peaks that kernels reached in one benchmark run."""

    hardware: str
    source: str  # the file, the device as CUDA names it, the library versions
    prefill_attention: float | None = None  # our flash attention forward, share of the bf16 peak
    decode_attention: float | None = None  # our split-K flash decoding, share of HBM bandwidth (KV bytes read)
    gemm: dict[str, float] = field(default_factory=dict)  # "int4" / "int8": our weight-only GEMM at M = 1, HBM share
    alternatives: dict[str, float] = field(default_factory=dict)  # the same figures of SDPA/flash-attn, torchao, cuBLAS
    # ours over the best alternative at each shape both measured, the median of them (`median_ratio`):
    # "prefill_attention", "decode_attention", "gemm_int4" (against torchao's, at M = 1)
    ratios: dict[str, float] = field(default_factory=dict)

    def attention_wins(self) -> bool:
        """Our attention measured faster than the best alternative in the same run (torch's SDPA, which transformers
        runs by default, and flash-attn where installed) by `WIN_MARGIN`, at prefill and at decode, at the median of
        the shapes both measured."""
        if self.prefill_attention is None:
            return False
        parts = ("prefill_attention", "decode_attention")
        return all(self.ratios.get(part, WIN_MARGIN) >= WIN_MARGIN for part in parts)

    def gemm_share(self, bits: str, default: float) -> float | None:
        """Our GEMM's HBM share for `bits` weights where it beats, by `WIN_MARGIN`, the alternative measured in the same
        run (torchao's int4) at the median of the shapes both measured, or else the documented default share of the
        format; None where it does not."""
        ours = self.gemm.get(bits)
        if ours is None:
            return None
        if (ratio := self.ratios.get(f"gemm_{bits}")) is not None:
            return ours if ratio >= WIN_MARGIN else None
        return ours if ours >= default * WIN_MARGIN else None


def _best(rows: list[dict], impl: str, section: str, key: str, size_key: str) -> float | None:
    """`key` of `impl`'s rows in `section` at the largest `size_key` measured, the best of them."""
    mine = [r for r in rows if r["impl"] == impl and r["section"] == section and r.get(key) is not None]
    if not mine:
        return None
    largest = max(r[size_key] for r in mine)
    return max(r[key] for r in mine if r[size_key] == largest)


def _gemm_m1(rows: list[dict], impl: str) -> float | None:
    """GB/s of `impl` at M = 1 on the largest weight measured."""
    mine = [r for r in rows if r["impl"] == impl and r["section"] == "gemm" and r["m"] == 1]
    if not mine:
        return None
    largest = max(r["n"] * r["k"] for r in mine)
    return max(r["gbps"] for r in mine if r["n"] * r["k"] == largest)


def median_ratio(rows: list[dict], ours: str, theirs: tuple[str, ...], section: str, key: str,
                 shape: tuple[str, ...]) -> float | None:
    """The median over the shapes (`shape`'s keys) at which `ours` and any of `theirs` measured `key` in `section` of
    ours over the best of theirs there (higher is faster), or None where no shape has both."""
    def by_shape(impls):
        out: dict[tuple, float] = {}
        for r in rows:
            if r["impl"] in impls and r["section"] == section and r.get(key) is not None:
                at = tuple(r.get(k) for k in shape)
                out[at] = max(out.get(at, 0.0), r[key])
        return out
    mine, best = by_shape((ours,)), by_shape(theirs)
    ratios = [mine[at] / best[at] for at in mine.keys() & best.keys() if best[at] > 0]
    return statistics.median(ratios) if ratios else None


def shares_from_result(result: dict[str, Any], hw: HardwareSpec, where: str) -> KernelShares:
    """The shares in one bench_kernels.py result (its `rows`: section, impl, size, ms, GB/s, TFLOP/s) of the catalog
    device's datasheet peaks (the benchmark's own shares are of the H200's, whatever GPU it ran on)."""
    rows = result["rows"]
    gbps, tflops = hw.memory_bandwidth_bytes_per_s / 1e9, hw.peak_tflops["bf16"]
    versions = ", ".join(f"{k} {v}" for k, v in (result.get("versions") or {}).items() if v)

    def bandwidth(x: float | None) -> float | None:
        return None if x is None else x / gbps

    def compute(x: float | None) -> float | None:
        return None if x is None else x / tflops
    their_prefill = [x for x in (_best(rows, impl, "prefill", "tflops", "seq") for impl in ATTENTION_ALTERNATIVES)
                     if x is not None]
    their_decode = [x for x in (_best(rows, impl, "decode", "gbps", "context") for impl in ATTENTION_ALTERNATIVES)
                    if x is not None]
    alternatives = {"prefill_attention": compute(max(their_prefill, default=None)),
                    "decode_attention": bandwidth(max(their_decode, default=None)),
                    "gemm_int4": bandwidth(_gemm_m1(rows, "torchao-int4")),
                    "gemm_bf16": bandwidth(_gemm_m1(rows, "cublas-bf16"))}
    return KernelShares(
        hardware=hw.id, source=f"{where} (benchmarks/gpu/bench_kernels.py on {result.get('device', '?')}; {versions})",
        prefill_attention=compute(_best(rows, "optiplan", "prefill", "tflops", "seq")),
        decode_attention=bandwidth(_best(rows, "optiplan", "decode", "gbps", "context")),
        gemm={bits: share for bits in ("int4", "int8")
              if (share := bandwidth(_gemm_m1(rows, f"optiplan-{bits}"))) is not None},
        alternatives={k: v for k, v in alternatives.items() if v is not None},
        ratios={part: ratio for part, ratio in (
            ("prefill_attention", median_ratio(rows, "optiplan", ATTENTION_ALTERNATIVES, "prefill", "tflops",
                                               ("batch", "seq"))),
            ("decode_attention", median_ratio(rows, "optiplan", ATTENTION_ALTERNATIVES, "decode", "gbps",
                                              ("batch", "context"))),
            # weight-only GEMMs run decode: their M = 1 rows, every weight shape
            ("gemm_int4", median_ratio([r for r in rows if r.get("m") == 1], "optiplan-int4", ("torchao-int4",),
                                       "gemm", "gbps", ("n", "k"))))
            if ratio is not None})


def plannable_shares(hw: HardwareSpec, engine: str) -> KernelShares | None:
    """Our kernels' measured shares where the planner may plan them: the transformers engine (the one `optiplan
    apply` swaps them into) on a CUDA GPU they were measured on; None elsewhere."""
    if engine != "transformers" or hw.features.backend != "cuda":
        return None
    return kernel_shares(hw.id)


def triton_gemm(hw: HardwareSpec, engine: str, bits: str) -> KernelShares | None:
    """The shares where our `bits` weight-only GEMM measured faster here than the alternative: torchao's int4 in the
    same run, else the format's documented default bandwidth share (profiles/efficiency.yaml)."""
    shares = plannable_shares(hw, engine)
    # the default share as the prediction resolves it on this device (scaled by its microbenchmarks)
    default = default_efficiency(hw, bits, "bf16", "transformers").bandwidth_efficiency
    return shares if shares is not None and shares.gemm_share(bits, default) is not None else None


def triton_attention(hw: HardwareSpec, engine: str) -> KernelShares | None:
    """The shares where our attention measured faster than SDPA and flash-attn in the same run (`WIN_MARGIN`)."""
    shares = plannable_shares(hw, engine)
    return shares if shares is not None and shares.attention_wins() and shares.decode_attention is not None else None


@lru_cache(maxsize=None)
def kernel_shares(hardware: str) -> KernelShares | None:
    """The measured shares of our kernels on a catalog GPU, or None where they were never measured there."""
    path = KERNELS_DIR / f"{hardware}.json"
    if not path.is_file():
        return None
    return shares_from_result(json.loads(path.read_text()), resolve_hardware(hardware), f"profiles/kernels/{path.name}")
