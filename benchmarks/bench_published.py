"""How close `optiplan profile` comes to published measurements of real engines (issue 14's validation set in
benchmarks/published/). Each point is predicted with the same request a user would make (catalog model of the
same architecture, device, count, tensor parallel, weight dtype, batch, prompt and output lengths, engine), and
the ratio predicted/published is printed with the median and p90 absolute error per category, per engine and
per dtype. Writes benchmarks/results/published.json.

Two predictions per point, side by side: the *step view* (before issue 14: throughput is batch / decode step time,
a request's latency TTFT plus output tokens x TPOT, TTFT the prefill of the whole batch's prompts at once) and the
*request view* (`profile --input-tokens I --output-tokens O --concurrency C|max`: prefill included, the engine's
scheduling, TTFT under load). An offline run with no batch given is served at `--concurrency max`, or, where the
source states how many prompts it sent at once (`num_requests`), as that burst (`--concurrency N --at-once`). Points the
catalog cannot express (a model of an architecture it lacks, a GGUF format) are listed as skipped with the reason.

    python benchmarks/bench_published.py [--show-points] [--write-accuracy] [--fit-overheads [serving|compiled]]
                                         [--fit-flops [fp8|fp4|bf16|fp16]] [--fit-kv [serving]]
                                         [--fit-kernel KERNEL]

`--write-accuracy` stores the request view's errors by figure in profiles/accuracy.yaml: the bands reports show
beside each predicted figure (`optiplan.planner.analytic.accuracy`).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import zlib
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import error_stats, write_results  # noqa: E402
from optiplan import profiles  # noqa: E402
from optiplan.planner.analytic.efficiency import weight_kernel_refusal  # noqa: E402
from optiplan.planner.analytic.profile import profile  # noqa: E402
from optiplan.planner.catalog.engines import (  # noqa: E402
    below_compute_capability,
    engine_kernel_efficiency,
    engine_runtime,
    engine_square_mask,
    engine_storage,
    engine_table,
)
from optiplan.planner.catalog.hardware import resolve_hardware, supports_dtype  # noqa: E402
from optiplan.planner.errors import OptiplanError  # noqa: E402
from optiplan.planner.schema import ProfileRequest  # noqa: E402

PUBLISHED = Path(__file__).resolve().parent / "published"

# Published checkpoints -> the catalog model of the same architecture (instruct, chat and re-quantized releases
# share their base model's shapes). Listed one by one: never matched fuzzily.
ARCHITECTURE = {
    "meta-llama/Llama-2-7b-chat-hf": "llama-2-7b", "meta-llama/Llama-2-7b-hf": "llama-2-7b",
    "meta-llama/Llama-2-13b-chat-hf": "llama-2-13b", "meta-llama/Llama-2-13b-hf": "llama-2-13b",
    "meta-llama/Llama-2-70b-chat-hf": "llama-2-70b", "meta-llama/Llama-2-70b-hf": "llama-2-70b",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b", "nvidia/Llama-3.1-8B-Instruct-FP8": "llama-3.1-8b",
    "meta-llama/Meta-Llama-3-8B-Instruct": "llama-3.1-8b", "meta-llama/Meta-Llama-3-8B": "llama-3.1-8b",
    "meta-llama/Llama-3.3-70B-Instruct": "llama-3.1-70b", "nvidia/Llama-3.3-70B-Instruct-FP8": "llama-3.1-70b",
    "nvidia/Llama-3.3-70B-Instruct-FP4": "llama-3.1-70b", "meta-llama/Meta-Llama-3-70B-Instruct": "llama-3.1-70b",
    "meta-llama/Meta-Llama-3-70B": "llama-3.1-70b", "amd/Llama-3.1-70B-Instruct-FP8-KV": "llama-3.1-70b",
    "meta-llama/Llama-3.1-405B-Instruct": "llama-3.1-405b", "nvidia/Llama-3.1-405B-Instruct-FP8": "llama-3.1-405b",
    "mistralai/Mixtral-8x7B-Instruct-v0.1": "mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1": "mixtral-8x7b",
    "deepseek-ai/DeepSeek-R1": "deepseek-v3", "deepseek-ai/DeepSeek-V3": "deepseek-v3",
    "nvidia/DeepSeek-R1-FP4": "deepseek-v3", "nvidia/DeepSeek-R1-0528-FP4": "deepseek-v3",
    "deepseek-ai/DeepSeek-R1-0528": "deepseek-v3", "Qwen/Qwen3-14B-FP8": "qwen3-14b",
    "nvidia/Qwen3-30B-A3B-FP4": "qwen3-30b-a3b",
    "nvidia/Qwen3-235B-A22B-FP4": "qwen3-235b-a22b", "nvidia/Qwen3-235B-A22B-FP8": "qwen3-235b-a22b",
    # the 2507 instruct release keeps the architecture (its longer native context aside)
    "Qwen/Qwen3-235B-A22B-Instruct-2507": "qwen3-235b-a22b",
    "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8": "qwen3-235b-a22b",
}
DTYPES = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "int8": "int8", "int4": "int4", "fp4": "fp4",
          "fp8 (assumed; DeepSeek native FP8)": "fp8"}
SECONDS = {"s": 1e3, "ms": 1.0}


def catalog_model(hub_id: str) -> str | None:
    return ARCHITECTURE.get(hub_id) or profiles.resolve_model_name(hub_id)


def fitted_efficiency(request: ProfileRequest, overrides: dict[str, float]):
    """The factors `profile` resolves for the request (device, kernel and cache shares included), with some of its
    runtime's fitted factors (fixed costs per step, layer and collective, small-matmul rows) replaced: what the fit
    tries."""
    from optiplan.planner.analytic.profile import setup_for_request
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model

    eff = setup_for_request(request, resolve_model(request.model), resolve_hardware(request.hardware)).eff
    return eff.model_copy(update=overrides)


def point_engine(p: dict) -> str:
    """The engine a point is predicted with: its own profile where the catalog has one (its runtime, scheduling,
    prefill chunk and weight kernels), a generic serving engine for the others (MLC, lmdeploy, ...)."""
    return p["engine"] if p["engine"] in engine_table() else "serving"


def point_dtype(p: dict) -> str | None:
    """The weight format a point is predicted in (a GGUF type as the format its engine stores in it)."""
    if p["dtype"].startswith("gguf-"):
        gguf = p["dtype"].removeprefix("gguf-").upper()
        return next((d for d in ("int4", "int8") if (engine_storage(point_engine(p), d) or {}).get("format") == gguf),
                    None)
    return DTYPES.get(p["dtype"])


def predict(p: dict, view: str = "requests", tune: Callable[[ProfileRequest], Any] | None = None
            ) -> tuple[float | None, str]:
    """(predicted value in the published unit, or None, and why not), in the step or the request view; `tune` gives
    the factors a fit tries for a request (None: the documented ones)."""
    model = catalog_model(p["model"])
    if model is None:
        return None, f"{p['model']}: no catalog model of its architecture"
    engine = point_engine(p)
    # a GGUF type is predicted where the engine's profile stores a format in it (llama.cpp: int4 as Q4_K_M)
    dtype = point_dtype(p)
    if dtype is None and p["dtype"].startswith("gguf-"):
        gguf = p["dtype"].removeprefix("gguf-").upper()
        return None, f"GGUF {gguf} is not the type {p['engine']}'s profile stores a weight format in"
    if dtype is None:
        return None, f"weight format {p['dtype']} has no analytic counterpart"
    unit = p["unit"]
    # a rate per GPU of a deployment whose device count is stated is its total over that count
    per_gpu = p["metric"] == "output_tokens_per_s" and ("per GPU" in unit or "/GPU" in unit)
    if (per_gpu and not p.get("num_devices")) or (p["metric"] == "output_tokens_per_s" and (
            "per node" in unit or "not stated" in unit)):
        return None, f"throughput unit '{unit}' is not the deployment's total and names no device count"
    share = p["num_devices"] if per_gpu else 1
    if p["category"] in ("request-throughput", "e2e-latency") and None in (p.get("input_tokens"),
                                                                           p.get("output_tokens")):
        return None, "request lengths not stated (a rate depends on them)"
    batch = p.get("batch") or 1
    # an unstated prompt is taken as 128 tokens; llama-bench's tg runs start from an empty one (0: one token)
    prompt = p["input_tokens"] if p.get("input_tokens") is not None else 128
    output = p.get("output_tokens") or 128
    # a run whose cache is set up for a stated length (gpt-fast's --cache_size) holds that context
    context = p.get("context_tokens") or prompt + output
    prompt = max(min(prompt, context - 1), 1)
    if dtype in ("fp8", "fp4") and not supports_dtype(resolve_hardware(p["hardware"]), dtype):
        return None, (f"{dtype} weights on a GPU without {dtype} compute (vLLM runs them weight-only through Marlin) "
                      "are not modelled")
    if p.get("speculative"):
        return None, f"speculative decoding ({p['speculative']}) on: profile predicts plain decoding"
    if p.get("causal_mask") == "linear" and engine_square_mask(engine):
        return None, f"a linear causal mask (torchao's --linear_causal_mask) is not {engine}'s square one"
    # an offline load whose prompts were all sent at once (`num_requests` of them) is predicted as that burst
    burst = p.get("num_requests")
    offline = p.get("batch") is None and p["metric"] == "output_tokens_per_s"
    # the KV-cache format where the source states one ("fp16 (not stated)" is the engine's default, kept as such);
    # an unstated bit width ("quantized (...)") has no counterpart
    kv_dtype = DTYPES.get(str(p.get("kv_dtype") or "").split(" ")[0])
    # TensorRT-LLM's `--tp 8` with attention DP runs attention data-parallel: the point's layout says so
    adp = p.get("attention_data_parallel") or 1
    if adp > 1 and (p.get("expert_parallel") or 1) == 1:
        return None, "attention data parallel beside tensor-parallel experts (no expert parallelism) is not modelled"
    # a batch-1 decode figure is the step's, whatever the view: no request section to compute for it
    requests = {} if p["metric"] in ("tpot_ms", "decode_tokens_per_s") and batch == 1 and not burst else {
        "input_tokens": prompt, "output_tokens": output, "concurrency": burst or ("max" if offline else batch),
        "at_once": bool(burst)}
    request = ProfileRequest(model=model, hardware=p["hardware"], num_devices=p.get("num_devices") or 1,
                             tensor_parallel=None if adp > 1 else p.get("tensor_parallel"),
                             attention_data_parallel=adp, expert_parallel=p.get("expert_parallel") or 1,
                             dtype=dtype, group_size=p.get("group_size"), kv_dtype=kv_dtype, batch=batch,
                             context=context, prompt_tokens=prompt, engine=engine,
                             prefill_chunk_tokens=p.get("prefill_chunk_tokens"),  # a run's own step budget
                             scheduling=p.get("scheduling") if requests else None,  # request figures only
                             **requests)
    try:
        eff = tune(request) if tune else None
        r = profile(request, eff)
        if view == "step" and offline and r.throughput.max_batch > 1:
            # an offline run with every request at once: as many sequences as the memory holds
            r = profile(request.model_copy(update={"batch": min(r.throughput.max_batch, 4096)}), eff)
    except OptiplanError as exc:
        return None, f"profile refuses it: {exc}"
    metric = p["metric"]
    if view == "requests" and r.requests is not None:
        q = r.requests
        if metric == "ttft_ms":
            return q.ttft_ms / SECONDS[unit], ""
        if metric == "request_latency_ms":
            return q.request_latency_ms / SECONDS[unit], ""
        if metric == "output_tokens_per_s":
            return q.output_tokens_per_s / share, ""
        if metric in ("tpot_ms", "decode_tokens_per_s") and (batch > 1 or burst):
            return (q.itl_ms, "") if metric == "tpot_ms" else (1e3 / q.itl_ms, "")
    if metric == "tpot_ms":
        return r.latency.tpot_ms, ""
    if metric == "decode_tokens_per_s":
        return 1e3 / r.latency.tpot_ms, ""
    if metric == "ttft_ms":
        return r.latency.ttft_ms / SECONDS[unit], ""
    if metric == "request_latency_ms":
        return (r.latency.ttft_ms + output * r.latency.tpot_ms) / SECONDS[unit], ""
    if metric == "output_tokens_per_s":
        return r.throughput.tokens_per_s / share, ""
    if metric == "memory_gib":
        held = r.memory.per_device_bytes
        if p.get("memory_scope") == "allocator":
            # torch's caching allocator counts what it holds: the CUDA context and what else the runtime takes
            # before any weight is outside it
            held -= r.memory.runtime_overhead_bytes
        return held / (1e9 if unit == "GB" else 2**30), ""
    return None, f"metric {metric} is not predicted"


def summary(rows: list[dict], key: str) -> dict[str, dict[str, float]]:
    groups: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r["abs_error_pct"])
    out = {}
    for name, errors in sorted(groups.items()):
        out[name] = error_stats(errors)
    return out


def held_out(point_id: str) -> bool:
    """A fixed third of the points, never fitted on (by a hash of the id, so adding points moves none)."""
    return zlib.crc32(point_id.encode()) % 3 == 0


def published_points() -> list[dict]:
    return [p for path in sorted(PUBLISHED.glob("*.yaml")) for p in yaml.safe_load(path.read_text())["points"]]


def part_errors(points: list[dict], part: str, tune: Callable[[ProfileRequest], Any] | None = None) -> list[float]:
    """Absolute errors (%) of the latency and throughput points of one part ("fitted" or "held-out"), sorted."""
    out = []
    for p in points:
        if p["category"] == "memory" or held_out(p["id"]) != (part == "held-out"):
            continue
        value, _ = predict(p, "requests", tune)
        if value is not None:
            out.append(abs(value / p["value"] - 1) * 100)
    return sorted(out)


def rounded_stats(errs: list[float]) -> dict:
    return {k: round(v, 1) if k != "points" else v for k, v in error_stats(errs).items()}


def best_fit(grid: list, errors: Callable[[Any, str], list[float]], distance: Callable[[Any], Any]):
    """The candidate of `grid` with the lowest median error, then p90, on the fitted two thirds (`errors(x, part)`);
    a tie goes to the one `distance` puts nearest the documented factors (points a factor does not move leave it
    where it was instead of at the grid's end)."""
    def key(x):
        e = rounded_stats(errors(x, "fitted"))
        return e["median_pct"], e["p90_pct"], distance(x)
    return min(grid, key=key)


def parts_text(r: dict, parts: tuple[str, ...]) -> str:
    """One fit report row's errors, part by part."""
    return "; ".join(f"{part} median {r[part]['median_pct']:5.1f}% p90 {r[part]['p90_pct']:6.1f}% ({r[part]['points']})"
                     for part in parts)


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
    """A runtime's fixed costs (per step, layer, collective) and small-matmul rows (`matmul_half_tokens`) that
    minimise the median error of the latency and throughput points of the engines running it in the fitted two
    thirds; errors reported on both parts, for the factors in profiles/efficiency.yaml and the fitted ones."""
    points = [p for p in points if engine_runtime(point_engine(p)) == runtime]

    def errors(overrides, part):
        return part_errors(points, part, lambda request: fitted_efficiency(request, overrides))

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


@contextmanager
def table_overrides(entry: dict, facts: dict[str, float | None]):
    """A mapping of profiles/efficiency.yaml with each of `facts` set (None: removed) while the block runs, restored
    after: every prediction reads the table afresh, so a fit tries its candidates on it in place."""
    documented = dict(entry)
    for key, value in facts.items():
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
    try:
        yield
    finally:
        entry.clear()
        entry.update(documented)


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


def kernel_points(points: list[dict], kernel: str) -> list[dict]:
    """The points whose engine reads their weights with `kernel` on their device."""
    out = []
    for p in points:
        dtype = point_dtype(p)
        if dtype is None:
            continue
        hw = resolve_hardware(p["hardware"])
        if engine_kernel_efficiency(point_engine(p), dtype, hw.features.backend) == kernel and \
                weight_kernel_refusal(hw, kernel, dtype) is None:
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
def engine_flop_shares_before_hopper(share: float):
    """The engines' `flop_share` rule for CUDA GPUs before Hopper set to `share` while the block runs."""
    with ExitStack() as stack:
        for engine in SHARED_FLOP_ENGINES:
            stack.enter_context(table_overrides(flop_share_rule(engine), {"flop_share": share}))
        yield


def fit_engine_flop_share_before_hopper(points: list[dict]) -> dict:
    """The share for CUDA GPUs before Hopper alone, fitted like `fit_engine_flop_share` on two thirds of vLLM's and
    SGLang's points on such GPUs (GPUStack's A100 runs), the others' share as documented; errors on both parts at the
    Hopper share carried over (as before the rule), at the documented rule and at the fitted one."""
    own = [p for p in points if p["engine"] in SHARED_FLOP_ENGINES and before_hopper(p)]
    documented = flop_share_rule(SHARED_FLOP_ENGINES[0])["flop_share"]
    hopper = engine_table()[SHARED_FLOP_ENGINES[0]]["flop_share"]

    def errors(x, part):
        with engine_flop_shares_before_hopper(x):
            return part_errors(own, part)

    best = best_fit(SHARE_GRID + tuple(round(0.96 + 0.01 * i, 2) for i in range(15)), errors,
                    lambda x: abs(x - documented))
    report = {name: {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")} | {"flop_share": x}
              for name, x in (("hopper's", hopper), ("documented", documented), ("fitted", best))}
    for name, r in report.items():
        print(f"{name:10s} {'/'.join(SHARED_FLOP_ENGINES)} flop share before Hopper {r['flop_share']:.2f}: "
              + parts_text(r, ("fitted", "held-out")))
    return report


# validation category -> the predicted figure its error bands
FIGURE_OF = {"batch1-decode": "tpot_ms", "ttft": "ttft_ms", "request-throughput": "throughput_tokens_per_s",
             "e2e-latency": "request_latency_ms", "memory": "memory_bytes"}


# an engine's own band for a figure where it has at least this many points of that figure
ENGINE_BAND_POINTS = 8


def write_accuracy(rows: list[dict], sources: int) -> None:
    import datetime

    def bands(rows: list[dict]) -> dict[str, dict]:
        return {FIGURE_OF[c]: {"category": c, "points": v["points"], "median_pct": round(v["median_pct"], 1),
                               "p90_pct": round(v["p90_pct"], 1)}
                for c, v in summary(rows, "category").items() if c in FIGURE_OF}

    engines = {}
    for engine in sorted({r["engine"] for r in rows} & set(engine_table())):
        own = {f: b for f, b in bands([r for r in rows if r["engine"] == engine]).items()
               if b["points"] >= ENGINE_BAND_POINTS}
        if own:
            engines[engine] = own
    data = {"source": f"benchmarks/bench_published.py on {datetime.date.today().isoformat()}: {len(rows)} published "
                      f"points from {sources} sources, request view",
            "figures": bands(rows), "engines": engines}
    header = ("# The analytic model's absolute error against published measurements of real engines, by predicted\n"
              "# figure: reports show the median as the band, an engine's own where it has at least\n"
              f"# {ENGINE_BAND_POINTS} points of the figure (`engines`). Written by "
              "`python benchmarks/bench_published.py\n"
              "# --write-accuracy`; do not edit by hand.\n")
    target = Path(profiles.ROOT) / "accuracy.yaml"
    target.write_text(header + yaml.safe_dump(data, sort_keys=False))
    print(f"wrote {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show-points", action="store_true")
    parser.add_argument("--write-accuracy", action="store_true", help="store the bands in profiles/accuracy.yaml")
    parser.add_argument("--fit-overheads", nargs="?", const="serving", default=None, choices=FITTED_RUNTIMES,
                        help="fit a runtime's fixed costs and small-matmul rows (serving, the default, or compiled) on "
                             "two thirds of the points of the engines that run it")
    parser.add_argument("--fit-flops", nargs="?", const="fp8", default=None, choices=("fp8", "fp4", "bf16", "fp16"),
                        help="fit the GPU flop efficiency of one compute dtype (fp8, the default) on two thirds of the "
                             "points whose linear layers run at its rate")
    parser.add_argument("--fit-kv", nargs="?", const="serving", default=None, choices=("serving",),
                        help="fit the share of the peak at which the serving engines' paged decode attention reads "
                             "the KV cache on two thirds of the points of the engines that page it")
    parser.add_argument("--fit-engine-flops-before-hopper", action="store_true",
                        help="fit vLLM's and SGLang's share on CUDA GPUs before Hopper (the A100's runs) on two "
                             "thirds of their points there")
    parser.add_argument("--fit-engine-flops", action="store_true",
                        help="fit the share of the device's compute rate vLLM's and SGLang's steps reach (one for "
                             "both) on two thirds of their points")
    parser.add_argument("--fit-kernel", default=None, metavar="KERNEL",
                        help="fit one weight kernel of profiles/efficiency.yaml (ggml-mmvq, ggml-mmvf: llama.cpp's "
                             "GGUF and 16-bit mat-vecs; torchao-int8, tinygemm: gpt-fast's) on two thirds of the "
                             "points whose engine runs it: its bandwidth share alone, with a device time per layer, "
                             "with a bound per SM and with both (minutes)")
    args = parser.parse_args()
    kernels = profiles.efficiency_table()["weight_kernels"]
    if args.fit_kernel:
        if "bandwidth_efficiency" not in kernels.get(args.fit_kernel, {}):
            parser.error(f"--fit-kernel: choose a kernel with a bandwidth share of its own: "
                         f"{', '.join(k for k, v in kernels.items() if 'bandwidth_efficiency' in v)}")
        fit = fit_kernel_gemm_share if "gemm_bandwidth_efficiency" in kernels[args.fit_kernel] else fit_kernel_factors
        write_results(f"published_kernel_fit_{args.fit_kernel}", fit(published_points(), args.fit_kernel))
        return
    if args.fit_engine_flops:
        write_results("published_engine_flop_fit", fit_engine_flop_share(published_points()))
        return
    if args.fit_engine_flops_before_hopper:
        write_results("published_engine_flop_fit_before_hopper",
                      fit_engine_flop_share_before_hopper(published_points()))
        return
    if args.fit_kv:
        write_results(f"published_kv_fit_{args.fit_kv}", fit_kv_share(published_points(), args.fit_kv))
        return
    if args.fit_flops:
        write_results(f"published_flop_fit_{args.fit_flops}", fit_flop_efficiency(published_points(), args.fit_flops))
        return
    if args.fit_overheads:
        write_results(f"published_overhead_fit_{args.fit_overheads}",
                      fit_overheads(published_points(), args.fit_overheads))
        return
    views: dict[str, list[dict]] = {"step": [], "requests": []}
    skipped = []
    for path in sorted(PUBLISHED.glob("*.yaml")):
        for p in yaml.safe_load(path.read_text())["points"]:
            for view, rows in views.items():
                value, why = predict(p, view)
                if value is None:
                    if view == "requests":
                        skipped.append({"id": p["id"], "reason": why})
                    continue
                ratio = value / p["value"]
                rows.append({"id": p["id"], "source": path.stem, "category": p["category"], "engine": p["engine"],
                             "dtype": p["dtype"], "hardware": p["hardware"], "published": p["value"],
                             "predicted": value, "ratio": ratio, "abs_error_pct": abs(ratio - 1) * 100})
    if args.show_points:
        for r, before in zip(views["requests"], views["step"]):
            print(f"  {r['id']:48s} {r['category']:18s} published {r['published']:>10.4g} predicted "
                  f"{r['predicted']:>10.4g}  ratio {r['ratio']:.2f} (step view {before['ratio']:.2f})")
    print(f"{len(views['requests'])} points predicted, {len(skipped)} skipped (no catalog architecture, a per-GPU "
          f"throughput without a device count, unstated request lengths, a GGUF type the engine's profile does not "
          f"store in, a causal mask the engine does not build, speculative decoding, FP8 or FP4 weights on a GPU "
          f"without that rate)")
    tables = {view: {key: summary(rows, key) for key in ("category", "engine", "dtype")}
              for view, rows in views.items()}
    for key in ("category", "engine", "dtype"):
        print(f"\nabsolute error by {key}: step view (before) -> request view")
        for name, after in tables["requests"][key].items():
            before = tables["step"][key].get(name, {"median_pct": float("nan"), "p90_pct": float("nan")})
            print(f"  {name:20s} {after['points']:3d} points  median {before['median_pct']:6.1f}% -> "
                  f"{after['median_pct']:6.1f}%  p90 {before['p90_pct']:6.1f}% -> {after['p90_pct']:6.1f}%")
    if args.write_accuracy:
        write_accuracy(views["requests"], len({r["source"] for r in views["requests"]}))
    write_results("published", {"points": views["requests"], "step_view_points": views["step"], "skipped": skipped,
                                "summary": tables["requests"], "step_view_summary": tables["step"]})


if __name__ == "__main__":
    main()
