"""The compute rate an engine's steps reach on a device: the share of the documented rate its steps reach
(`flop_share` in its profile) and, for a GEMM of its own that its profile describes for a weight format on a backend
(llama.cpp's on a GPU), the peak it runs at (`gemm_accumulate`: fp16 accumulation, twice the documented rate on a
GeForce card), the share of that peak it reaches (`gemm_share`), a bound per streaming multiprocessor where that,
not the tensor cores' peak, sets its throughput (`gemm_unit_tflops`), and a conversion of the weights to 16 bits
before it (`gemm_dequantize`); and which weight kernel an engine reads a format with on a device, at what share of
its bandwidth (`engine_weight_kernel`, `expert_bandwidth_share`)."""

from __future__ import annotations

from typing import Any

from ..catalog.engines import (
    engine_fallback_kernel,
    engine_flop_share,
    engine_kernel,
    engine_kernel_efficiency,
)
from ..schema import EfficiencyFactors, HardwareSpec
from .efficiency import default_efficiency, weight_kernel_refusal


def at_engine_share(eff: EfficiencyFactors, engine: str | None, hw: HardwareSpec) -> EfficiencyFactors:
    """Documented efficiencies at the share of their compute rate the engine's steps reach on the device
    (`engines.engine_flop_share`; unchanged where it is 1)."""
    if (share := engine_flop_share(engine, hw)) == 1.0:
        return eff
    return eff.model_copy(update={"flop_efficiency": eff.flop_efficiency * share,
                                  "source": f"{eff.source} Compute at {share:g} of that: {engine}'s profile "
                                            "(flop_share)."})


def kernel_fact(engine: str | None, weight_dtype: str, hw: HardwareSpec, key: str) -> Any:
    """What the engine's GEMM for `weight_dtype` weights states under `key` for `hw`'s backend (a mapping of backends
    under that key in its profile's kernels), or None: it states none, or `hw` is not a GPU."""
    if hw.kind != "gpu":
        return None
    return (engine_kernel(engine, weight_dtype).get(key) or {}).get(hw.features.backend)


def kernel_unit_tflops(engine: str | None, weight_dtype: str, hw: HardwareSpec) -> float | None:
    """TFLOP/s per streaming multiprocessor the engine's GEMM for `weight_dtype` weights reaches at most on `hw`'s
    backend (`gemm_unit_tflops` under the format in its profile's kernels), or None where it states none."""
    return kernel_fact(engine, weight_dtype, hw, "gemm_unit_tflops")


def kernel_peak_tflops(engine: str | None, weight_dtype: str, compute: str, hw: HardwareSpec) -> float | None:
    """The peak the engine's GEMM for `weight_dtype` weights runs at on `hw` where it is not the documented `compute`
    rate: one that accumulates in fp16 (`gemm_accumulate: fp16`: llama.cpp's cuBLAS calls, CUBLAS_COMPUTE_16F) on a
    device whose fp16 tensor rate is higher so (a GeForce card's `fp16_accumulate_tflops`, twice its fp32-accumulate
    rate); None otherwise."""
    if compute not in ("fp16", "bf16") or kernel_fact(engine, weight_dtype, hw, "gemm_accumulate") != "fp16":
        return None
    return hw.fp16_accumulate_tflops


def dequantize_pass(engine: str | None, weight_dtype: str, hw: HardwareSpec) -> tuple[int, int] | None:
    """(the fewest rows of a step, the rows of one pass) where the engine's GEMM for `weight_dtype` weights first
    converts them to 16 bits, once per pass of that many rows, for a 16-bit GEMM (`gemm_dequantize`: llama.cpp's
    prompts before b3216, through FP16 cuBLAS); None where it reads them as they are."""
    if (fact := kernel_fact(engine, weight_dtype, hw, "gemm_dequantize")) is None:
        return None
    return int(fact["min_rows"]), int(fact["ubatch_rows"])


def at_kernel_rate(eff: EfficiencyFactors, engine: str | None, weight_dtype: str, compute: str,
                   hw: HardwareSpec, peak: float | None = None) -> EfficiencyFactors:
    """`eff` with the linear layers' compute share as the engine's GEMM for `weight_dtype` weights states it for
    `hw`'s backend: its own share of the peak (`gemm_share`) in place of the documented one, then bounded by its rate
    per streaming multiprocessor times the device's (`gemm_unit_tflops`); shares of `peak` (TFLOP/s: the rate the
    GEMM runs at, `kernel_peak_tflops`) where given, else of the `compute` peak. Unchanged where the kernel or the
    catalog states neither."""
    if compute not in hw.peak_tflops:
        return eff
    top = peak or hw.peak_tflops[compute]
    share, rate = kernel_fact(engine, weight_dtype, hw, "gemm_share"), kernel_unit_tflops(engine, weight_dtype, hw)
    flop, notes = eff.flop_efficiency, []
    if share is not None:
        flop = float(share)
        notes.append(f"{engine}'s GEMM for {weight_dtype} weights at {flop:g} of "
                     + (f"its fp16-accumulate peak, {top:g} TFLOP/s" if peak else f"the {compute} peak")
                     + " (its profile's gemm_share)")
    if rate is not None and hw.compute_units is not None and (bound := rate * hw.compute_units / top) < flop:
        flop = bound
        notes.append(f"at most {rate:g} TFLOP/s per SM ({hw.compute_units} SMs; its profile's gemm_unit_tflops)")
    if not notes:
        return eff
    return eff.model_copy(update={"flop_efficiency": min(flop, 1.0), "source": (
        f"{eff.source} Linear layers at {flop:.2f} of {top:g} TFLOP/s: " + "; ".join(notes) + ".")})


def kernel_rate_caveat(engine: str | None, weight_dtype: str, hw: HardwareSpec) -> str | None:
    """What a profile on `hw` should say where the engine's GEMM for `weight_dtype` weights is priced at a rate
    measured on other devices only (`gemm_rate_measured_on`: llama.cpp's MMQ, priced as its cuBLAS GEMM from
    GeForce runs), or None."""
    measured = kernel_fact(engine, weight_dtype, hw, "gemm_rate_measured_on")
    if not measured or hw.id in measured:
        return None
    return (f"{engine}'s prompt GEMM for {weight_dtype} weights is priced at a rate measured on "
            f"{', '.join(measured)} only (its profile's gemm_unit_source); no run on {hw.id} checks it, so the TTFT "
            "may be off by more than its band")


def expert_bandwidth_share(hw: HardwareSpec, engine: str | None, expert_dtype: str, compute: str,
                           runtime: str) -> tuple[float, str | None]:
    """The share of the peak bandwidth at which the engine's MoE kernel reads experts stored in `expert_dtype` beside
    16-bit layers, and that kernel: its profile's kernel for the format where it names one the device runs (bounded
    per compute unit where the kernel states one, as `default_efficiency` bounds it), else the device kind's share for
    the format (profiles/efficiency.yaml) and None. A step larger than the kernel's rows reads them at the engine's
    GEMM share (`_cost`)."""
    kernel = engine_weight_kernel(engine, expert_dtype, hw)
    return default_efficiency(hw, expert_dtype, compute, runtime, weight_kernel=kernel).bandwidth_efficiency, kernel


def engine_weight_kernel(engine: str | None, weight_dtype: str, hw: HardwareSpec,
                         method: str | None = None) -> str | None:
    """The weight kernel the engine reads `weight_dtype` weights with on `hw`: its profile's where the device runs it,
    else its fallback there (vLLM's GPTQ kernel below Marlin's device, its Marlin MXFP4 MoE before Hopper) where the
    device runs that, else None (the device's defaults)."""
    kernel = engine_kernel_efficiency(engine, weight_dtype, hw.features.backend, hw)
    if kernel and weight_kernel_refusal(hw, kernel, weight_dtype) is not None:
        kernel = (engine_fallback_kernel(engine, weight_dtype, hw, method) or {}).get("efficiency")
        kernel = kernel if kernel and weight_kernel_refusal(hw, kernel, weight_dtype) is None else None
    return kernel
