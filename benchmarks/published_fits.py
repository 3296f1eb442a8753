"""The fits of issue 14's validation set (`python benchmarks/bench_published.py --fit-...`): each searches one group
of the model's factors on two thirds of the published points and reports the errors on both parts, the fixed third
held out (`published_points.held_out`), for the documented factors and the fitted ones. A fit tries its candidates
on the loaded tables in place and leaves them as it found them."""

from __future__ import annotations

import itertools
import statistics
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from optiplan import profiles  # noqa: E402
from optiplan.planner.analytic.efficiency import weight_kernel_max_rows, weight_kernel_refusal  # noqa: E402
from optiplan.planner.analytic.offload import host_repeating_layers  # noqa: E402
from optiplan.planner.analytic.setup import checkpoint_experts_only  # noqa: E402
from optiplan.planner.catalog.engines import (  # noqa: E402
    below_compute_capability,
    engine_fact,
    engine_kernel_efficiency,
    engine_runtime,
    engine_storage,
    engine_table,
    release_profile,
)
from optiplan.planner.catalog.hardware import resolve_hardware  # noqa: E402
from optiplan.planner.catalog.models import resolve_model  # noqa: E402
from published_points import (  # noqa: E402
    DTYPES,
    best_fit,
    catalog_model,
    part_errors,
    parts_text,
    point_dtype,
    point_engine,
    point_gguf_type,
    rounded_stats,
    table_overrides,
)

# the runtimes whose fixed costs are fitted to published points (profiles/efficiency.yaml records each fit)
FITTED_RUNTIMES = ("serving", "compiled")
# the runtime's factors the fit searches (EfficiencyFactors fields), every combination
FIT_GRID = {
    "step_overhead_s": (0.0, 0.0005, 0.001),
    "layer_overhead_s": (0.0, 0.00001, 0.00002, 0.00003, 0.00004),
    "collective_latency_s": (0.0, 0.000004, 0.000008, 0.000016),
    "matmul_half_tokens": (0.0, 32.0, 64.0, 128.0, 256.0),
}


def fit_overheads(points: list[dict], runtime: str = "serving") -> dict:
    """A runtime's fixed costs (per step, layer, collective) and small-matmul rows (`matmul_half_tokens`) on GPUs that
    minimise the median error of the latency and throughput points of the engines running it in the fitted two
    thirds; errors reported on both parts, for the factors in profiles/efficiency.yaml and the fitted ones."""
    points = [p for p in points if engine_runtime(point_engine(p)) == runtime]

    def errors(overrides, part):  # on the runtime's GPU costs in the table: every other factor stays as profile has it
        with table_overrides(profiles.efficiency_table()["runtimes"][runtime]["gpu"], overrides):
            return part_errors(points, part)

    grid = [dict(zip(FIT_GRID, values)) for values in itertools.product(*FIT_GRID.values())]
    best = min(grid, key=lambda o: statistics.median(errors(o, "fitted")))
    costs = profiles.efficiency_table()["runtimes"][runtime]["gpu"]
    default = {name: costs.get(name, 0.0) for name in FIT_GRID}
    report = {name: {part: rounded_stats(errors(o, part)) for part in ("fitted", "held-out")} | {"factors": o}
              for name, o in (("default", default), ("fitted", best))}
    for name in ("default", "fitted"):
        r = report[name]
        print(f"{name:8s} fitted third x2: median {r['fitted']['median_pct']:5.1f}% p90 {r['fitted']['p90_pct']:6.1f}% "
              f"({r['fitted']['points']} points); held-out third: median {r['held-out']['median_pct']:5.1f}% "
              f"p90 {r['held-out']['p90_pct']:6.1f}% ({r['held-out']['points']} points)")
    print(f"fitted {runtime} factors: " + ", ".join(f"{k} {v:g}" for k, v in best.items()))
    return report


# the GPU flop efficiencies (profiles/efficiency.yaml device_kinds.gpu.flop_efficiency) a fit may search
FLOP_GRID = tuple(round(0.20 + 0.01 * i, 2) for i in range(51))


def gpu_flop_share(dtype: str, share: float):
    """profiles/efficiency.yaml's GPU flop share of `dtype` set to `share` while the block runs (a 16-bit attention
    beside fp8 layers keeps its own share, as it does in use)."""
    return table_overrides(profiles.efficiency_table()["device_kinds"]["gpu"]["flop_efficiency"], {dtype: share})


def fit_flop_efficiency(points: list[dict], dtype: str = "fp8") -> dict:
    """The GPU flop efficiency of one compute dtype (the tensor-core rate the linear layers run at) that minimises
    the median error, then the p90, of the latency and throughput points whose linear layers run at that rate, in
    the fitted two thirds; the device's measured share scales it as it scales the documented one. Errors reported
    on both parts and, over every point, for the documented value and the fitted one."""
    documented = profiles.efficiency_table()["device_kinds"]["gpu"]["flop_efficiency"][dtype]

    own = [p for p in points if DTYPES.get(p["dtype"]) == dtype]

    def errors(x, part, only_dtype=True):
        with gpu_flop_share(dtype, x):
            return part_errors(own if only_dtype else points, part)

    # bf16's batch-1 decode, bound by bandwidth, does not move the share: it stays at the documented one
    best = best_fit(FLOP_GRID, errors, lambda x: abs(x - documented))
    report = {name: {f"{part}{suffix}": rounded_stats(errors(x, part, only)) for part in ("fitted", "held-out")
                     for suffix, only in (("", True), ("-all-points", False))} | {"flop_efficiency": x}
              for name, x in (("documented", documented), ("fitted", best))}
    for name in ("documented", "fitted"):
        r = report[name]
        print(f"{name:10s} {dtype} {r['flop_efficiency']:.2f}: "
              + parts_text(r, ("fitted", "held-out", "fitted-all-points", "held-out-all-points")))
    return report


# what a weight kernel's fit searches: its bandwidth share, its own device time per layer (the launches and ramps of a
# layer's five to seven dequantizing GEMVs: up to 120 us, some 20 us each) and its bytes per second per SM (a kernel
# with few bytes in flight per SM reads at most the SM count times that: 4 to 16 GB/s, Little's law over some 8 KB in
# flight and half a microsecond of latency)
SHARE_GRID = tuple(round(0.30 + 0.01 * i, 2) for i in range(66))
KERNEL_LAYER_GRID = (0.0, 0.00001, 0.00002, 0.00003, 0.00004, 0.00006, 0.00008, 0.0001, 0.00012)
UNIT_GBPS_GRID = tuple(float(g) for g in range(4, 17))


def kernel_entry(kernel: str, facts: dict[str, float | None]):
    """Weight kernel `kernel`'s entry in profiles/efficiency.yaml with each of `facts` set (None: removed) while the
    block runs, restored after."""
    return table_overrides(profiles.efficiency_table()["weight_kernels"][kernel], facts)


def kernel_factors(kernel: str, share: float, layer_s: float | None = None, unit_gbps: float | None = None):
    """Weight kernel `kernel` with its bandwidth share set to `share` (its device time per layer to `layer_s` and its
    GB/s per compute unit to `unit_gbps`, where given; 0 GB/s: no such bound) while the block runs."""
    facts: dict[str, float | None] = {"bandwidth_efficiency": share}
    if layer_s is not None:
        facts["layer_device_s"] = layer_s
    if unit_gbps is not None:
        facts["unit_bandwidth_gbps"] = unit_gbps or None
    return kernel_entry(kernel, facts)


def keeps_host_layers(p: dict) -> bool:
    """Whether the point's run keeps layers in host memory (llama.cpp's --n-gpu-layers below all its layer slots)."""
    layers = p.get("gpu_layers")
    return layers is not None and host_repeating_layers(resolve_model(catalog_model(p["model"])).num_layers,
                                                        layers)[0] > 0


def kernel_points(points: list[dict], kernel: str) -> list[dict]:
    """The points whose engine reads their weights with `kernel` on their device, from the file its profile stores
    the format in (llama.cpp's Q4_K_M: a Q4_0 file's points check the factors out of the fit), and those that state
    they ran it (`weight_kernel`: exllamav2's own runs). A run with layers in host memory (llama.cpp's --n-gpu-layers
    below all) is the host's to fit (`fit_host_layers`), not the kernel's, and one of a checkpoint that stores only its
    routed experts in the format (gpt-oss's MXFP4) reads its other layers with the 16-bit kernel."""
    out = []
    for p in points:
        dtype, gguf = point_dtype(p), point_gguf_type(p)
        if dtype is None or (gguf and gguf != (engine_storage(point_engine(p), dtype) or {}).get("format")):
            continue
        model = catalog_model(p["model"])
        if keeps_host_layers(p) or (model and checkpoint_experts_only(resolve_model(model), dtype)):
            continue
        if p["metric"] == "prefill_tokens_per_s" and weight_kernel_max_rows(kernel):
            continue  # a prompt's rows go to the engine's GEMM, not to a mat-vec of a few rows (gemm_unit_tflops)
        hw = resolve_hardware(p["hardware"])
        runs = p.get("weight_kernel") or engine_kernel_efficiency(point_engine(p), dtype, hw.features.backend)
        if runs == kernel and weight_kernel_refusal(hw, kernel, dtype) is None:
            out.append(p)
    return out


def kernel_errors(points: list[dict], kernel: str, factors: tuple[float, float, float], part: str) -> list[float]:
    """Absolute errors (%) of one part of the points read by `kernel`, with its (share, device time per layer, GB/s
    per SM) set to `factors`."""
    with kernel_factors(kernel, *factors):
        return part_errors(points, part)


def documented_kernel_factors(kernel: str) -> tuple[float, float, float]:
    """(share, device time per layer, GB/s per SM) of a weight kernel as profiles/efficiency.yaml has them (0: none)."""
    entry = profiles.efficiency_table()["weight_kernels"][kernel]
    return entry["bandwidth_efficiency"], entry.get("layer_device_s", 0.0), entry.get("unit_bandwidth_gbps", 0.0)


def fit_kernel_factors(points: list[dict], kernel: str) -> dict:
    """The factors of one weight kernel (profiles/efficiency.yaml weight_kernels, one that states a share) that
    minimise the median error, then the p90, of the points whose engine reads their weights with it, in the fitted
    two thirds, over every point of the grids: its share alone, with a device time per layer, with a bound per SM,
    and with both; errors reported on both parts for the documented factors and each fit."""
    own = kernel_points(points, kernel)
    documented = documented_kernel_factors(kernel)

    def errors(x, part):
        return kernel_errors(own, kernel, x, part)

    def distance(x):
        return tuple(abs(a - b) for a, b in zip(x, documented))

    # four candidates beside the documented factors; the table takes what its held-out third favours: a choice made
    # on those points, which are the less held out for it
    none = (0.0,)
    axes = {"share": (SHARE_GRID, none, none), "per-layer": (SHARE_GRID, KERNEL_LAYER_GRID, none),
            "per-sm": (SHARE_GRID, none, UNIT_GBPS_GRID), "both": (SHARE_GRID, KERNEL_LAYER_GRID, UNIT_GBPS_GRID)}
    fits = {"documented": documented}
    for name, grids in axes.items():
        grid = list(itertools.product(*grids))
        print(f"{kernel}: searching {name}, {len(grid)} candidates on {len(own)} points", file=sys.stderr, flush=True)
        fits[name] = best_fit(grid, errors, distance)
    report = {name: {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")}
              | {"share": x[0], "layer_device_s": x[1], "unit_bandwidth_gbps": x[2]} for name, x in fits.items()}
    for name, r in report.items():
        print(f"{name:10s} {kernel} {r['share']:.2f}, {r['layer_device_s'] * 1e6:3.0f} us/layer, "
              f"{r['unit_bandwidth_gbps']:4.1f} GB/s per SM: " + parts_text(r, ("fitted", "held-out")))
    return report


def gemm_share_errors(points: list[dict], kernel: str, share: float, part: str) -> list[float]:
    """Absolute errors (%) of one part of the points read by `kernel`, with the share of the GEMM that takes its
    larger steps (`gemm_bandwidth_efficiency`) set to `share`."""
    with kernel_entry(kernel, {"gemm_bandwidth_efficiency": share}):
        return part_errors(points, part)


def fit_kernel_gemm_share(points: list[dict], kernel: str) -> dict:
    """The share at which the GEMM behind a few-rows weight kernel (`max_rows`, `gemm_bandwidth_efficiency`: vLLM's
    hipBLASLt above its skinny FP8 GEMV on MI3xx) reads the weights that minimises the median error, then the p90, of
    the points whose engine runs the kernel, in the fitted two thirds; errors on both parts for the documented share
    and the fitted one."""
    own = kernel_points(points, kernel)
    documented = profiles.efficiency_table()["weight_kernels"][kernel]["gemm_bandwidth_efficiency"]
    best = best_fit(SHARE_GRID, lambda x, part: gemm_share_errors(own, kernel, x, part), lambda x: abs(x - documented))
    report = {name: {part: rounded_stats(gemm_share_errors(own, kernel, x, part)) for part in ("fitted", "held-out")}
              | {"gemm_share": x} for name, x in (("documented", documented), ("fitted", best))}
    for name, r in report.items():
        print(f"{name:10s} {kernel} GEMM share {r['gemm_share']:.2f}: " + parts_text(r, ("fitted", "held-out")))
    return report


# the share of the peak bandwidth a serving runtime's decode-attention kernels read the KV cache at (a fit searches it)
KV_SHARE_GRID = tuple(round(0.50 + 0.01 * i, 2) for i in range(46))


def runtime_kv_share(runtime: str, share: float | None):
    """profiles/efficiency.yaml's KV-cache share of `runtime` on GPUs set to `share` (None: removed, the cache format's
    share applies) while the block runs, restored after."""
    return table_overrides(profiles.efficiency_table()["runtimes"][runtime]["gpu"],
                           {"paged_kv_bandwidth_efficiency": share})


def fit_kv_share(points: list[dict], runtime: str = "serving") -> dict:
    """The share of the peak at which the decode attention of the engines running `runtime` reads the KV cache that
    minimises the median error, then the p90, of their latency and throughput points in the fitted two thirds (the
    device's measured share scales it); errors on both parts for the cache formats' shares (none stated), the
    documented share and the fitted one."""
    own = [p for p in points if engine_runtime(point_engine(p)) == runtime]
    documented = profiles.efficiency_table()["runtimes"][runtime]["gpu"].get("paged_kv_bandwidth_efficiency")

    def errors(x, part):
        with runtime_kv_share(runtime, x):
            return part_errors(own, part)

    best = best_fit(KV_SHARE_GRID, errors, lambda x: abs(x - (documented or 0.70)))
    report = {name: {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")} | {"kv_share": x}
              for name, x in (("formats", None), ("documented", documented), ("fitted", best))}
    for name, r in report.items():
        share = "the formats'" if r["kv_share"] is None else f"{r['kv_share']:.2f}"
        print(f"{name:10s} {runtime} KV share {share}: " + parts_text(r, ("fitted", "held-out")))
    return report


# the engines whose compute share (`flop_share` in their profiles) is fitted together: both schedule from Python and
# run the same libraries' GEMM and attention kernels (cuBLAS/CUTLASS, FlashInfer/FlashAttention, Triton MoE)
SHARED_FLOP_ENGINES = ("vllm", "sglang")


@contextmanager
def engine_flop_shares(share: float | None):
    """The engines' `flop_share` set to `share` (None: removed, the device's documented rate) while the block runs."""
    with ExitStack() as stack:
        for engine in SHARED_FLOP_ENGINES:
            stack.enter_context(table_overrides(engine_table()[engine], {"flop_share": share}))
        yield


def fit_engine_flop_share(points: list[dict]) -> dict:
    """The share of the device's documented compute efficiency that vLLM's and SGLang's steps reach, one for both,
    minimising the median error, then the p90, of their latency and throughput points in the fitted two thirds;
    errors on both parts without a share, with the documented one and with the fitted one."""
    own = [p for p in points if p["engine"] in SHARED_FLOP_ENGINES]
    documented = engine_table()[SHARED_FLOP_ENGINES[0]].get("flop_share")

    def errors(x, part):
        with engine_flop_shares(x):
            return part_errors(own, part)

    best = best_fit(SHARE_GRID + tuple(round(0.96 + 0.01 * i, 2) for i in range(5)), errors,
                    lambda x: abs(x - (documented or 1.0)))
    report = {name: {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")} | {"flop_share": x}
              for name, x in (("none", None), ("documented", documented), ("fitted", best))}
    for name, r in report.items():
        share = "1 (none)" if r["flop_share"] is None else f"{r['flop_share']:.2f}"
        print(f"{name:10s} {'/'.join(SHARED_FLOP_ENGINES)} flop share {share}: "
              + parts_text(r, ("fitted", "held-out")))
    return report


def flop_share_rule(engine: str) -> dict:
    """The engine profile's `device_defaults` rule that sets its compute share for CUDA GPUs before Hopper."""
    return next(r for r in engine_table()[engine]["device_defaults"]
                if "below_compute_capability" in r["when"] and "flop_share" in r)


def before_hopper(point: dict) -> bool:
    """A point on a device that rule covers: the engines' other compute share."""
    limit = flop_share_rule(SHARED_FLOP_ENGINES[0])["when"]["below_compute_capability"]
    return below_compute_capability(resolve_hardware(point["hardware"]), limit)


@contextmanager
def engine_flop_shares_before_hopper(share: float, moe_share: float | None):
    """The engines' rule for CUDA GPUs before Hopper with its `flop_share` set to `share` and its `moe_flop_share` (the
    routed experts' grouped GEMM) to `moe_share` (None: removed, the experts at `share`) while the block runs."""
    with ExitStack() as stack:
        for engine in SHARED_FLOP_ENGINES:
            stack.enter_context(table_overrides(flop_share_rule(engine),
                                                {"flop_share": share, "moe_flop_share": moe_share}))
        yield


# the MoE grouped GEMM's shares a fit searches (of the device's documented compute rate)
MOE_SHARE_GRID = tuple(round(0.10 + 0.02 * i, 2) for i in range(21))


def fit_engine_flop_share_before_hopper(points: list[dict]) -> dict:
    """The shares for CUDA GPUs before Hopper alone, the dense layers' and the routed experts' together, fitted like
    `fit_engine_flop_share` on two thirds of vLLM's and SGLang's points on such GPUs (GPUStack's A100 runs), the
    others' share as documented; errors on both parts at the Hopper share carried over (as before the rule), at the
    rule's dense share alone (the experts at it, as before `moe_flop_share`), at the documented rule and at the fitted
    one."""
    own = [p for p in points if p["engine"] in SHARED_FLOP_ENGINES and before_hopper(p)]
    rule = flop_share_rule(SHARED_FLOP_ENGINES[0])
    documented = (rule["flop_share"], rule.get("moe_flop_share"))
    hopper = engine_table()[SHARED_FLOP_ENGINES[0]]["flop_share"]

    def errors(x, part):
        with engine_flop_shares_before_hopper(*x):
            return part_errors(own, part)

    dense_grid = tuple(round(0.80 + 0.02 * i, 2) for i in range(16))
    print(f"searching {len(dense_grid) * len(MOE_SHARE_GRID)} candidates on {len(own)} points", file=sys.stderr,
          flush=True)
    best = best_fit(list(itertools.product(dense_grid, MOE_SHARE_GRID)), errors,
                    lambda x: (abs(x[0] - documented[0]), abs(x[1] - (documented[1] or x[0]))))
    report = {name: {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")}
              | {"flop_share": x[0], "moe_flop_share": x[1]}
              for name, x in (("hopper's", (hopper, None)), ("dense only", (documented[0], None)),
                              ("documented", documented), ("fitted", best))}
    for name, r in report.items():
        moe = "the same" if r["moe_flop_share"] is None else f"{r['moe_flop_share']:.2f}"
        print(f"{name:10s} {'/'.join(SHARED_FLOP_ENGINES)} before Hopper: flop share {r['flop_share']:.2f}, MoE "
              f"experts {moe}: " + parts_text(r, ("fitted", "held-out")))
    return report


# an engine's front end: the host time per request and the share of it spent taking a request in (a fit searches both)
HOST_GRID = tuple(round(0.001 * i, 3) for i in range(2, 31))
ADMIT_GRID = (0.5, 0.625, 0.75, 0.875, 1.0)


@contextmanager
def front_end(engine: str, host_s: float, admit_share: float | None):
    """The engine's `request_host_s` (0: removed, no such bound) and `request_admit_share` (None: removed, all of it
    taking requests in) set while the block runs."""
    with table_overrides(engine_table()[engine], {"request_host_s": host_s or None, "request_admit_share": admit_share}):
        yield


def fit_front_end(points: list[dict], engine: str = "vllm") -> dict:
    """The host time the engine's front end spends on each request and the share of it spent taking requests in,
    fitted together on two thirds of the engine's bursts (points that state how many requests were sent at once),
    minimising the median error, then the p90; errors on both parts for the documented host time taking requests in
    only (as before the share), the documented pair and the fitted one."""
    own = [p for p in points if p["engine"] == engine and p.get("num_requests") and p.get("batch") is None]
    entry = engine_table()[engine]
    documented = (entry.get("request_host_s", 0.0), entry.get("request_admit_share"))

    def errors(x, part):
        with front_end(engine, *x):
            return part_errors(own, part)

    grid = list(itertools.product(HOST_GRID, ADMIT_GRID))
    print(f"searching {len(grid)} candidates on {len(own)} points", file=sys.stderr, flush=True)
    best = best_fit(grid, errors, lambda x: (abs(x[0] - documented[0]), abs(x[1] - (documented[1] or 1.0))))
    report = {name: {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")}
              | {"request_host_s": x[0], "request_admit_share": x[1]}
              for name, x in (("none", (0.0, None)), ("taken in", (documented[0], None)), ("documented", documented),
                              ("fitted", best))}
    for name, r in report.items():
        share = 1.0 if r["request_admit_share"] is None else r["request_admit_share"]
        print(f"{name:10s} {engine} front end {r['request_host_s'] * 1e3:.0f} ms a request, {share:.0%} taking it in: "
              + parts_text(r, ("fitted", "held-out")))
    return report


# the fixed latency a request served over HTTP waits for its first token beyond the device's work: 0-150 ms by 5 ms
FIRST_TOKEN_GRID = tuple(round(0.005 * i, 3) for i in range(31))


def stats_or_none(errs: list[float]) -> dict:
    """`rounded_stats` of a part that may hold no point (its median and p90 then not a number)."""
    return rounded_stats(errs) if errs else {"points": 0, "median_pct": float("nan"), "p90_pct": float("nan")}


def fit_first_token_latency(points: list[dict], engine: str = "vllm") -> dict:
    """The engine's fixed first-token latency over HTTP (`first_token_latency_s`), minimising the median, then the
    p90, error of its latency and throughput points served through its server (not `harness: in-process`) in the
    fitted two thirds; errors on both parts without it, with the documented one and with the fitted one, and on its
    TTFT points alone (where it shows: short prompts at low load). A profile that states one value per server on one
    device and one over several has each fitted on its own points."""
    own = [p for p in points if p["engine"] == engine and p.get("harness") != "in-process"]
    entry = engine_table()[engine]
    documented = entry.get("first_token_latency_s", 0.0)
    parts = {"one_device": lambda p: (p.get("num_devices") or 1) == 1,
             "several_devices": lambda p: (p.get("num_devices") or 1) > 1} if isinstance(documented, dict) else \
        {None: lambda p: True}
    report = {}
    for key, chosen in parts.items():
        among = [p for p in own if chosen(p)]
        ttfts = [p for p in among if p["category"] == "ttft"]
        was = documented[key] if key else documented

        def value(x):
            return {**documented, key: x} if key else (x or None)

        def errors(x, part, group=among):
            with table_overrides(entry, {"first_token_latency_s": value(x)}):
                return part_errors(group, part)

        print(f"searching {len(FIRST_TOKEN_GRID)} candidates on {len(among)} points" + (f" ({key})" if key else ""),
              file=sys.stderr, flush=True)
        best = best_fit(list(FIRST_TOKEN_GRID), errors, lambda x: abs(x - was))
        for name, x in (("none", 0.0), ("documented", was), ("fitted", best)):
            r = {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")} \
                | {f"ttft {part}": stats_or_none(errors(x, part, ttfts)) for part in ("fitted", "held-out")} \
                | {"first_token_latency_s": x}
            report[f"{name} {key}" if key else name] = r
            print(f"{name:10s} {engine}{' ' + key if key else ''} first token {x * 1e3:.0f} ms later: "
                  + parts_text(r, ("fitted", "held-out", "ttft fitted", "ttft held-out")))
    return report


# TensorRT-LLM's C++ runtime (v0.5-v0.6): its per-call first-token cost in the caller's process, 0-10 ms by 0.5 ms
CALL_GRID = tuple(round(0.0005 * i, 4) for i in range(21))


def fit_in_process_first_token(points: list[dict], engine: str = "trtllm") -> dict:
    """The fixed first-token cost in the caller's process (`in_process_first_token_latency_s`) of the first of the
    engine's `versions` rules that sets it, minimising the median, then the p90, error of the engine's in-process
    points of those releases in the fitted two thirds; errors on both parts without it, documented and fitted."""
    rule = next(r for r in engine_table()[engine]["versions"] if "in_process_first_token_latency_s" in r)
    own = [p for p in points if p["engine"] == engine and p.get("harness") == "in-process"
           and engine_fact(point_engine(p), "in_process_first_token_latency_s") is not None]
    was = rule["in_process_first_token_latency_s"]

    def errors(x, part, group=own):
        with table_overrides(rule, {"in_process_first_token_latency_s": x}):
            release_profile.cache_clear()  # a pinned release copies its rules' facts once
            try:
                return part_errors(group, part)
            finally:
                release_profile.cache_clear()

    best = best_fit(list(CALL_GRID), errors, lambda x: abs(x - was))
    report = {}
    for name, x in (("none", 0.0), ("documented", was), ("fitted", best)):
        report[name] = {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")} \
            | {"in_process_first_token_latency_s": x}
        print(f"{name:10s} {engine} {rule['range']} first token {x * 1e3:g} ms later in process: "
              + parts_text(report[name], ("fitted", "held-out")))
    return report


# the share of the host memory's peak at which llama.cpp's CPU kernels read the layers it keeps there (a fit searches)
HOST_SHARE_GRID = tuple(round(0.30 + 0.01 * i, 2) for i in range(66))


def fit_host_layers(points: list[dict], engine: str = "llama.cpp") -> dict:
    """The share of the host memory's peak at which `engine` reads the layers it keeps in host memory
    (`host_layers.bandwidth_efficiency` in its profile) that minimises the median error, then the p90, of its points
    with layers there (`gpu_layers` below all) in the fitted two thirds; errors on both parts for the documented
    share and the fitted one."""
    own = [p for p in points if p["engine"] == engine and keeps_host_layers(p)]
    entry = engine_table()[engine]["host_layers"]
    documented = entry["bandwidth_efficiency"]

    def errors(x, part):
        with table_overrides(entry, {"bandwidth_efficiency": x}):
            return part_errors(own, part)

    best = best_fit(list(HOST_SHARE_GRID), errors, lambda x: abs(x - documented))
    report = {name: {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")}
              | {"bandwidth_efficiency": x} for name, x in (("documented", documented), ("fitted", best))}
    for name, r in report.items():
        print(f"{name:10s} {engine} host layers at {r['bandwidth_efficiency']:.2f} of the host memory's peak: "
              + parts_text(r, ("fitted", "held-out")))
    return report
