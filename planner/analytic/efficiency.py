"""Efficiency factors: documented defaults from `profiles/efficiency.yaml`, per device kind, weight
format and runtime. A calibration (measured on the machine) replaces them when given."""

from __future__ import annotations

from ... import profiles
from ..errors import RequestError
from ..machine.calibration import calibration_path, load_calibration
from ..schema import EfficiencyFactors, HardwareSpec


def default_efficiency(hw: HardwareSpec, weight_dtype: str, compute_dtype: str, runtime: str) -> EfficiencyFactors:
    """The documented default factors for this device kind, weight format, compute dtype and runtime."""
    table = profiles.efficiency_table()
    if runtime not in table["runtimes"]:
        raise RequestError(f"unknown runtime '{runtime}'; known: {', '.join(table['runtimes'])}")
    kind = table["device_kinds"][hw.kind]
    bw = kind["bandwidth_efficiency"].get(weight_dtype, min(kind["bandwidth_efficiency"].values()))
    flop = kind["flop_efficiency"].get(compute_dtype, min(kind["flop_efficiency"].values()))
    bw_src = kind["bandwidth_source"]
    bw_src = bw_src.get(weight_dtype, "assumed") if isinstance(bw_src, dict) else bw_src
    eng = table["runtimes"][runtime]
    costs = eng.get(hw.kind, eng["default"])
    sources = table["sources"]
    source = (f"defaults ({hw.kind}, {weight_dtype} weights, {compute_dtype} compute, {runtime} runtime): "
              f"bandwidth: {sources[bw_src]} flops: {sources[kind['flop_source']]} overhead: {eng['source']}")
    return EfficiencyFactors(flop_efficiency=flop, bandwidth_efficiency=bw,
                             step_overhead_s=costs["step_overhead_s"], layer_overhead_s=costs["layer_overhead_s"],
                             source=" ".join(source.split()))


def calibrated_efficiency(hw: HardwareSpec, runtime: str, weight_dtype: str) -> EfficiencyFactors | None:
    """The factors `optiplan calibrate` fitted on this machine for this runtime and weight dtype."""
    if hw.id != "local":
        return None
    calibration = load_calibration()
    fitted = (calibration or {}).get("runtimes", {}).get(runtime, {}).get(weight_dtype)
    if not fitted:
        return None
    f = fitted["factors"]
    return EfficiencyFactors(flop_efficiency=f["flop_efficiency"], bandwidth_efficiency=f["bandwidth_efficiency"],
                             step_overhead_s=f["step_overhead_s"], layer_overhead_s=f["layer_overhead_s"],
                             matmul_half_tokens=f.get("matmul_half_tokens", 0.0),
                             source=f"calibrated on this machine ({calibration_path()}, {calibration['measured_at']}): "
                                    f"median error {fitted['median_abs_error_pct']:.1f}% over "
                                    f"{len(fitted['points'])} measured steps")


def prefill_chunk_tokens(runtime: str) -> int | None:
    """The most tokens the runtime prefills in one forward pass (None: all prompts at once)."""
    return profiles.efficiency_table()["runtimes"][runtime].get("prefill_chunk_tokens")
