"""Efficiency factors: documented defaults from `profiles/efficiency.yaml`, per device kind, weight
format and engine. A calibration (measured on the machine) replaces them when given."""

from __future__ import annotations

from .. import profiles
from .errors import RequestError
from .schema import EfficiencyFactors, HardwareSpec

ENGINES = ("serving", "transformers")


def default_efficiency(hw: HardwareSpec, weight_dtype: str, compute_dtype: str, engine: str) -> EfficiencyFactors:
    """The documented default factors for this device kind, weight format, compute dtype and engine."""
    table = profiles.efficiency_table()
    if engine not in table["engines"]:
        raise RequestError(f"unknown engine '{engine}'; known: {', '.join(table['engines'])}")
    kind = table["device_kinds"][hw.kind]
    bw = kind["bandwidth_efficiency"].get(weight_dtype, min(kind["bandwidth_efficiency"].values()))
    flop = kind["flop_efficiency"].get(compute_dtype, min(kind["flop_efficiency"].values()))
    bw_src = kind["bandwidth_source"]
    bw_src = bw_src.get(weight_dtype, "assumed") if isinstance(bw_src, dict) else bw_src
    eng = table["engines"][engine]
    costs = eng.get(hw.kind, eng["default"])
    sources = table["sources"]
    source = (f"defaults ({hw.kind}, {weight_dtype} weights, {compute_dtype} compute, {engine} engine): "
              f"bandwidth: {sources[bw_src]} flops: {sources[kind['flop_source']]} overhead: {eng['source']}")
    return EfficiencyFactors(flop_efficiency=flop, bandwidth_efficiency=bw,
                             step_overhead_s=costs["step_overhead_s"], layer_overhead_s=costs["layer_overhead_s"],
                             source=" ".join(source.split()))


def prefill_chunk_tokens(engine: str) -> int | None:
    """The most tokens the engine prefills in one forward pass (None: all prompts at once)."""
    return profiles.efficiency_table()["engines"][engine].get("prefill_chunk_tokens")
