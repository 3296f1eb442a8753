"""Efficiency factors: documented defaults from `profiles/efficiency.yaml`, per device kind, weight
format and runtime. A calibration (measured on the machine) replaces them when given."""

from __future__ import annotations

from ... import profiles
from ..catalog.dtypes import canonical
from ..catalog.hardware import catalog_hardware
from ..errors import RequestError
from ..machine.calibration import calibrated_here, calibration_path, load_calibration
from ..schema import EfficiencyFactors, HardwareSpec


def measured_factors(hw: HardwareSpec, compute_dtype: str) -> tuple[float, float, str]:
    """(bandwidth factor, flop factor, why) scaling the device kind's default shares to `hw`: its measured share of
    its peak (microbenchmarks in its catalog entry) over that of the device the default was set on. 1.0 where either
    device has no figure."""
    refs = profiles.efficiency_table()["device_kinds"].get(hw.kind, {}).get("measured_reference") or {}

    def share(device: HardwareSpec, what: str) -> float | None:
        m = device.measured
        if m is None:
            return None
        if what == "bandwidth":
            return m.memory_bandwidth_tbps * 1e12 / device.memory_bandwidth_bytes_per_s \
                if m.memory_bandwidth_tbps else None
        peak = device.peak_tflops.get(what)
        if peak is None:
            return None
        # no figure for this dtype: one measured at the same tensor-core rate (int8 beside fp8, fp16 beside bf16)
        same_rate = [d for d in (what, *sorted(m.matmul_tflops)) if device.peak_tflops.get(d) == peak]
        got = next((m.matmul_tflops[d] for d in same_rate if d in m.matmul_tflops), None)
        return got / peak if got else None

    factors, why = [], []
    for what in ("bandwidth", compute_dtype):
        ref = refs.get(what)
        mine = share(hw, what)
        theirs = share(catalog_hardware(ref), what) if ref else None
        if mine is None or theirs is None or hw.id == ref:
            factors.append(1.0)
            continue
        factors.append(mine / theirs)
        why.append(f"{what}: measured {mine:.0%} of peak here vs {theirs:.0%} on {ref}")
    return factors[0], factors[1], "; ".join(why)


def weight_kernel_refusal(hw: HardwareSpec, kernel: str, weight_dtype: str) -> str | None:
    """Why the named weight kernel (`weight_kernels` in profiles/efficiency.yaml) cannot read `weight_dtype` weights
    on `hw`, or None where it can."""
    table = profiles.efficiency_table()
    entry = table["weight_kernels"].get(kernel)
    if entry is None:
        return f"unknown weight kernel '{kernel}'; known: {', '.join(table['weight_kernels'])}"
    if weight_dtype not in entry["formats"]:
        return f"the {kernel} kernel reads {', '.join(entry['formats'])} weights, not {weight_dtype}"
    backends = entry.get("backends", ["cuda"])
    if hw.kind != "gpu" or hw.features.backend not in backends:
        names = " or ".join({"cuda": "CUDA", "rocm": "ROCm"}.get(b, b) for b in backends)
        return f"the {kernel} kernel is a {names} kernel; {hw.id} runs {hw.features.backend}"
    need = entry.get("min_compute_capability")
    have = hw.features.compute_capability
    if need and (not have or float(have) < need):
        return f"the {kernel} kernel needs compute capability {need:g} or newer; {hw.id} has {have or 'none stated'}"
    below = entry.get("below_compute_capability")  # a kernel its engine runs on one generation only
    if below and have and float(have) >= below:
        return f"the {kernel} kernel runs below compute capability {below:g}; {hw.id} has {have}"
    return None


def _kernel_fact(kernel: str | None, key: str, default):
    """A fact of a weight kernel's entry in profiles/efficiency.yaml, `default` where there is no kernel, no entry
    (optiplan's measured `triton` kernels) or no such fact."""
    entry = profiles.efficiency_table()["weight_kernels"].get(kernel) if kernel is not None else None
    return (entry or {}).get(key) or default


def weight_kernel_group_format(kernel: str | None) -> dict[str, int]:
    """The scale and zero-point bits per group that a weight kernel's packed format stores (`group_format` in
    profiles/efficiency.yaml: tinygemm's bf16 pairs), or {} where it reads the format's usual storage."""
    return dict(_kernel_fact(kernel, "group_format", {}))


def weight_kernel_layer_s(kernel: str | None) -> float:
    """A weight kernel's own device time per layer beyond its bytes (`layer_device_s` in profiles/efficiency.yaml:
    the launches and ramps of its dequantizing GEMVs, which the runtime's costs for 16-bit GEMMs do not hold), 0 where
    it states none. Device time, not the host's: it does not hide under eager launches."""
    return _kernel_fact(kernel, "layer_device_s", 0.0)


def weight_kernel_max_rows(kernel: str | None) -> int | None:
    """The most rows (a step's tokens) a weight kernel takes (`max_rows` in profiles/efficiency.yaml: llama.cpp's
    mat-vecs up to 8, its GEMMs above), None where it takes any."""
    return _kernel_fact(kernel, "max_rows", None)


def weight_kernel_unit_share(hw: HardwareSpec, kernel: str | None) -> float | None:
    """The share of `hw`'s peak bandwidth a latency-bound weight kernel cannot pass: its bytes per second per compute
    unit (`unit_bandwidth_gbps` in profiles/efficiency.yaml: what one SM's blocks keep in flight over the memory's
    latency) times the device's compute units. None where the kernel states no such rate or the catalog no unit
    count: its share alone bounds it."""
    rate = _kernel_fact(kernel, "unit_bandwidth_gbps", None)
    if rate is None or hw.compute_units is None:
        return None
    return rate * 1e9 * hw.compute_units / hw.memory_bandwidth_bytes_per_s


def weight_kernel_share(hw: HardwareSpec, kernel: str, weight_dtype: str) -> tuple[float, str]:
    """(share of the peak bandwidth, source) of a named weight kernel reading `weight_dtype` weights on `hw`."""
    refusal = weight_kernel_refusal(hw, kernel, weight_dtype)
    if refusal:
        raise RequestError(refusal)
    table = profiles.efficiency_table()
    entry = table["weight_kernels"][kernel]
    kind = table["device_kinds"]["gpu"]["bandwidth_efficiency"]
    share = entry.get("bandwidth_efficiency") or entry["relative_to_16bit"] * kind["bf16"]
    return share, f"{kernel} ({entry['what']}): {table['kernel_sources'][entry['source']]}"


def default_flop_efficiency(hw: HardwareSpec, dtype: str) -> float:
    """The documented share of `hw`'s `dtype` peak that matmul kernels reach: the device kind's default scaled by the
    device's measured share (`measured_factors`)."""
    shares = profiles.efficiency_table()["device_kinds"][hw.kind]["flop_efficiency"]
    return min(shares.get(dtype, min(shares.values())) * measured_factors(hw, dtype)[1], 1.0)


def default_efficiency(hw: HardwareSpec, weight_dtype: str, compute_dtype: str, runtime: str,
                       kv_dtype: str | None = None, weight_kernel: str | None = None,
                       act_dtype: str | None = None, paged_cache: bool = False) -> EfficiencyFactors:
    """The documented default factors for this device kind, weight format, compute dtype and runtime. The KV cache
    is read at its own format's share of the bandwidth (`kv_dtype`): attention kernels stream a 16-bit cache as a
    plain 16-bit stream, whatever format the weights are stored in, and the elementwise kernels stream the
    activations (`act_dtype`) likewise; an engine that pages the cache (`paged_cache`) reads it with its runtime's
    paged decode-attention kernels, at their share where the runtime states one (`paged_kv_bandwidth_efficiency`).
    `weight_kernel` names the GEMM that reads the weights (an engine's Marlin, torchao's tinygemm), at that
    kernel's share where the table has one, bounded by its rate per compute unit where it states one, with its own
    device time per layer; a kernel that takes only a few rows (llama.cpp's mat-vecs, vLLM's skinny FP8 GEMV on
    MI3xx) leaves larger steps to the engine's GEMM, at the share the kernel states for it
    (`gemm_bandwidth_efficiency`) or else the format's."""
    table = profiles.efficiency_table()
    if runtime not in table["runtimes"]:
        raise RequestError(f"unknown runtime '{runtime}'; known: {', '.join(table['runtimes'])}")
    kind = table["device_kinds"][hw.kind]
    shares = kind["bandwidth_efficiency"]
    bw = format_bw = shares.get(weight_dtype, min(shares.values()))
    kv = shares.get(kv_dtype, min(shares.values())) if kv_dtype else None
    stream = shares.get(act_dtype, min(shares.values())) if act_dtype else None
    flop = kind["flop_efficiency"].get(compute_dtype, min(kind["flop_efficiency"].values()))
    bw_src = kind["bandwidth_source"]
    bw_src = bw_src.get(weight_dtype, "assumed") if isinstance(bw_src, dict) else bw_src
    sources = table["sources"]
    bw_text = sources[bw_src]
    if weight_kernel is not None:
        bw, bw_text = weight_kernel_share(hw, weight_kernel, weight_dtype)
    bw_factor, flop_factor, scaled = measured_factors(hw, compute_dtype)
    bw, flop = min(bw * bw_factor, 1.0), min(flop * flop_factor, 1.0)
    unit_share = weight_kernel_unit_share(hw, weight_kernel)
    if unit_share is not None and unit_share < bw:
        bw = unit_share
        bw_text += (f" On {hw.id} its {hw.compute_units} compute units bound it at {unit_share:.0%} of the peak "
                    f"({_kernel_fact(weight_kernel, 'unit_bandwidth_gbps', None):g} GB/s each).")
    max_rows = weight_kernel_max_rows(weight_kernel)
    gemm = _kernel_fact(weight_kernel, "gemm_bandwidth_efficiency", None)
    if max_rows is not None:
        bw_text += (f" It takes steps of up to {max_rows} row{'s' if max_rows > 1 else ''}; larger ones run the "
                    + (f"engine's GEMM, at {gemm:.0%} of the peak (before the device's scaling)." if gemm
                       else "engine's GEMM, at the format's share."))
    eng = table["runtimes"][runtime]
    # a GPU's fixed costs, where the runtime states its own for the device's backend (ROCm's kernels) those over them
    costs = eng.get(hw.kind, eng["default"]) | (eng.get(hw.features.backend, {}) if hw.kind == "gpu" else {})
    if kv is not None and paged_cache and costs.get("paged_kv_bandwidth_efficiency"):
        kv = costs["paged_kv_bandwidth_efficiency"]  # the runtime's paged decode-attention kernels, any cache format
    kv = min(kv * bw_factor, 1.0) if kv is not None else None
    stream = min(stream * bw_factor, 1.0) if stream is not None else None
    flop_src = kind["flop_source"]
    flop_src = flop_src.get(compute_dtype, "assumed") if isinstance(flop_src, dict) else flop_src
    source = (f"defaults ({hw.kind}, {weight_dtype} weights, {compute_dtype} compute, {runtime} runtime): "
              f"bandwidth: {bw_text} flops: {sources[flop_src]} overhead: {eng['source']}"
              + (f" scaled to {hw.id} by microbenchmarks ({scaled})" if scaled else ""))
    return EfficiencyFactors(flop_efficiency=flop, bandwidth_efficiency=bw, kv_bandwidth_efficiency=kv,
                             activation_bandwidth_efficiency=stream,
                             step_overhead_s=costs["step_overhead_s"], layer_overhead_s=costs["layer_overhead_s"],
                             moe_layer_overhead_s=costs.get("moe_layer_overhead_s", 0.0),
                             mla_layer_overhead_s=costs.get("mla_layer_overhead_s", 0.0),
                             state_layer_overhead_s=costs.get("state_layer_overhead_s", 0.0),
                             expert_bandwidth_ratio=costs.get("expert_bandwidth_ratio", 1.0),
                             attention_flop_efficiency=(min(attention * measured_factors(hw, "bf16")[1], 1.0)
                                                        if (attention := costs.get("prefill_attention_flop_efficiency"))
                                                        else None),
                             routing_skew=costs.get("routing_skew", 0.0),
                             weight_kernel_layer_s=weight_kernel_layer_s(weight_kernel),
                             weight_kernel_max_rows=max_rows,
                             gemm_bandwidth_efficiency=(min((gemm or format_bw) * bw_factor, 1.0)
                                                        if max_rows else None),
                             host_overlap=costs.get("host_overlap", False),
                             collective_latency_s=costs.get("collective_latency_s", 0.0),
                             allreduce_fusion_saving_s=costs.get("allreduce_fusion_saving_s", 0.0),
                             matmul_half_tokens=costs.get("matmul_half_tokens", 0.0),
                             source=" ".join(source.split()))


def calibrated_efficiency(hw: HardwareSpec, runtime: str, weight_dtype: str,
                          act_dtype: str | None = None) -> EfficiencyFactors | None:
    """The factors `optiplan calibrate` fitted on this machine for this runtime and weight dtype; the cache and the
    activations stream at the share fitted for the activation dtype where calibration fitted one."""
    if hw.id != "local":
        return None
    calibration = load_calibration()
    if not calibrated_here(calibration, hw):
        return None
    fitted_runtime = (calibration or {}).get("runtimes", {}).get(runtime, {})
    fitted = fitted_runtime.get(weight_dtype)
    if not fitted:
        return None
    f = fitted["factors"]
    stream = (fitted_runtime.get(act_dtype) or {}).get("factors", {}).get("bandwidth_efficiency") if act_dtype else None
    return EfficiencyFactors(flop_efficiency=f["flop_efficiency"], bandwidth_efficiency=f["bandwidth_efficiency"],
                             kv_bandwidth_efficiency=stream, activation_bandwidth_efficiency=stream,
                             step_overhead_s=f["step_overhead_s"], layer_overhead_s=f["layer_overhead_s"],
                             host_overlap=f.get("host_overlap", False),
                             matmul_half_tokens=f.get("matmul_half_tokens", 0.0),
                             source=f"calibrated on this machine ({calibration_path()}, {calibration['measured_at']}): "
                                    f"median error {fitted['median_abs_error_pct']:.1f}% over "
                                    f"{len(fitted['points'])} measured steps")


def prefill_chunk_tokens(runtime: str) -> int | None:
    """The most tokens the runtime prefills in one forward pass (None: all prompts at once)."""
    return profiles.efficiency_table()["runtimes"][runtime].get("prefill_chunk_tokens")


def attention_kernel_factor(kernel: str) -> float:
    """Share of the matmuls' flop efficiency an attention kernel reaches (profiles/efficiency.yaml)."""
    return profiles.efficiency_table()["attention_kernels"][kernel]


def attention_dtype(compute: str, kv_dtype: str, act: str) -> str:
    """The rate attention's matrix products (QK^T, PV) run at. They multiply activations by the cache, so W8A8 and
    fp4 linear layers leave attention at the 16-bit rate of the activations; fp8 layers over an fp8 cache run it at
    the fp8 rate (vllm-project/vllm docs/features/quantization/quantized_kvcache.md @11cdd70b: "When using the Flash
    Attention 3 backend with FP8 KV cache, attention operations are also performed in the quantized (FP8) domain";
    TensorRT-LLM's trtllm-bench on an FP8 checkpoint with an FP8 cache: "Set use_fp8_context_fmha to True.",
    docs/source/performance/perf-benchmarking.md @04276b44). An fp8 model over a 16-bit cache attends at half its
    linear layers' rate: DeepSeek's MLA decode, whose attention FLOPs rival its matmuls', ran at the fp8 rate before."""
    if compute in ("fp32", "tf32", "bf16", "fp16"):
        return compute
    return "fp8" if compute == "fp8" and canonical(kv_dtype) == "fp8" else act


def attention_flop_efficiency(hw: HardwareSpec, eff: EfficiencyFactors, compute: str, attend: str) -> float:
    """The share of its rate's peak attention reaches: the runtime's fused attention kernels' own share of the
    16-bit peak where it states one (`EfficiencyFactors.attention_flop_efficiency`: the serving engines' on a GPU,
    measured), else the linear layers' share; moved to `attend`'s rate by the ratio of the two rates' documented
    shares where they differ (a 16-bit attention beside fp8 layers reaches the 16-bit share, not fp8's; a calibrated
    or fitted share moves with it)."""
    own = eff.attention_flop_efficiency
    base, rate = (own, "bf16") if own else (eff.flop_efficiency, compute)
    if attend == rate:
        return base
    return min(base * default_flop_efficiency(hw, attend) / default_flop_efficiency(hw, rate), 1.0)
