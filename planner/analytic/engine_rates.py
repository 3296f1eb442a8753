"""The compute rate an engine's steps reach on a device: the share of the documented rate its steps reach
(`flop_share` in its profile) and, for a kernel whose throughput is bound per streaming multiprocessor rather than by
the tensor cores' peak, that bound (`gemm_unit_tflops`: llama.cpp's quantized GEMMs on a GPU)."""

from __future__ import annotations

from ..catalog.engines import engine_flop_share, engine_kernel
from ..schema import EfficiencyFactors, HardwareSpec


def at_engine_share(eff: EfficiencyFactors, engine: str | None, hw: HardwareSpec) -> EfficiencyFactors:
    """Documented efficiencies at the share of their compute rate the engine's steps reach on the device
    (`engines.engine_flop_share`; unchanged where it is 1)."""
    if (share := engine_flop_share(engine, hw)) == 1.0:
        return eff
    return eff.model_copy(update={"flop_efficiency": eff.flop_efficiency * share,
                                  "source": f"{eff.source} Compute at {share:g} of that: {engine}'s profile "
                                            "(flop_share)."})


def kernel_unit_tflops(engine: str | None, weight_dtype: str, hw: HardwareSpec) -> float | None:
    """TFLOP/s per streaming multiprocessor the engine's GEMM for `weight_dtype` weights reaches at most on `hw`'s
    backend (`gemm_unit_tflops` under the format in its profile's kernels), or None where it states none."""
    rates = engine_kernel(engine, weight_dtype).get("gemm_unit_tflops") or {}
    return rates.get(hw.features.backend) if hw.kind == "gpu" else None


def at_kernel_rate(eff: EfficiencyFactors, engine: str | None, weight_dtype: str, compute: str,
                   hw: HardwareSpec) -> EfficiencyFactors:
    """`eff` with the linear layers' compute share bounded by the engine's GEMM rate per streaming multiprocessor
    times the device's (`kernel_unit_tflops`), where that is below the share of the `compute` peak; unchanged where
    the kernel or the catalog states no such rate."""
    rate = kernel_unit_tflops(engine, weight_dtype, hw)
    if rate is None or hw.compute_units is None or compute not in hw.peak_tflops:
        return eff
    bound = rate * hw.compute_units / hw.peak_tflops[compute]
    if bound >= eff.flop_efficiency:
        return eff
    return eff.model_copy(update={"flop_efficiency": bound, "source": (
        f"{eff.source} Linear layers at {bound:.2f} of the {compute} peak: {engine}'s GEMM for {weight_dtype} weights "
        f"reaches {rate:g} TFLOP/s per SM ({hw.compute_units} SMs; its profile's gemm_unit_tflops).")})
