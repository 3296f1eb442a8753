"""The published points of issue 14's validation set (benchmarks/published/) and the prediction `optiplan profile` makes
for each: the request a user would make (catalog model of the same architecture, device, count, tensor parallel,
weight dtype, batch, prompt and output lengths, engine), in the step view or the request view; the fixed third of
the points every fit holds out, and the errors and table overrides the fits (`published_fits`) share."""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import error_stats  # noqa: E402
from optiplan import profiles  # noqa: E402
from optiplan.planner.analytic.accuracy import architecture_kind  # noqa: E402
from optiplan.planner.analytic.gguf import FILE_TYPES  # noqa: E402
from optiplan.planner.analytic.profile import profile  # noqa: E402
from optiplan.planner.catalog.engines import (  # noqa: E402
    engine_square_mask,
    engine_table,
    engine_weight_only,
)
from optiplan.planner.catalog.hardware import resolve_hardware, supports_dtype  # noqa: E402
from optiplan.planner.catalog.models import resolve_model  # noqa: E402
from optiplan.planner.errors import OptiplanError  # noqa: E402
from optiplan.planner.schema import ProfileRequest  # noqa: E402
from optiplan.planner.schema.releases import pinned_engine  # noqa: E402
from trtllm_bench import trtllm_bench_max_batch  # noqa: E402

PUBLISHED = Path(__file__).resolve().parent / "published"

# Published checkpoints -> the catalog model of the same architecture (instruct, chat and re-quantized releases
# share their base model's shapes). Listed one by one: never matched fuzzily.
ARCHITECTURE = {
    "meta-llama/Llama-2-7b-chat-hf": "llama-2-7b", "meta-llama/Llama-2-7b-hf": "llama-2-7b",
    "meta-llama/Llama-2-13b-chat-hf": "llama-2-13b", "meta-llama/Llama-2-13b-hf": "llama-2-13b",
    "meta-llama/Llama-2-70b-chat-hf": "llama-2-70b", "meta-llama/Llama-2-70b-hf": "llama-2-70b",
    # LLaMA (v1) 7B and 13B have Llama-2's shapes (a 2,048-token context aside)
    "huggyllama/llama-7b": "llama-2-7b", "huggyllama/llama-13b": "llama-2-13b",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b", "nvidia/Llama-3.1-8B-Instruct-FP8": "llama-3.1-8b",
    "meta-llama/Meta-Llama-3-8B-Instruct": "llama-3.1-8b", "meta-llama/Meta-Llama-3-8B": "llama-3.1-8b",
    "meta-llama/Llama-3.3-70B-Instruct": "llama-3.1-70b", "nvidia/Llama-3.3-70B-Instruct-FP8": "llama-3.1-70b",
    "nvidia/Llama-3.3-70B-Instruct-FP4": "llama-3.1-70b", "meta-llama/Meta-Llama-3-70B-Instruct": "llama-3.1-70b",
    "meta-llama/Meta-Llama-3-70B": "llama-3.1-70b", "amd/Llama-3.1-70B-Instruct-FP8-KV": "llama-3.1-70b",
    "meta-llama/Llama-3.1-405B-Instruct": "llama-3.1-405b", "nvidia/Llama-3.1-405B-Instruct-FP8": "llama-3.1-405b",
    "mistralai/Mixtral-8x7B-Instruct-v0.1": "mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1": "mixtral-8x7b",
    "deepseek-ai/DeepSeek-R1": "deepseek-v3", "deepseek-ai/DeepSeek-V3": "deepseek-v3",
    "nvidia/DeepSeek-R1-FP4": "deepseek-v3", "nvidia/DeepSeek-R1-0528-FP4": "deepseek-v3",
    "deepseek-ai/DeepSeek-R1-0528": "deepseek-v3", "Qwen/Qwen3-14B-FP8": "qwen3-14b", "Qwen/Qwen3-8B-FP8": "qwen3-8b",
    "deepseek-ai/DeepSeek-V3.1": "deepseek-v3", "deepseek-ai/DeepSeek-V3.1-Terminus": "deepseek-v3",
    "meta-llama/Llama-3.1-70B": "llama-3.1-70b",
    "nvidia/Qwen3-30B-A3B-FP4": "qwen3-30b-a3b",
    "nvidia/Qwen3-235B-A22B-FP4": "qwen3-235b-a22b", "nvidia/Qwen3-235B-A22B-FP8": "qwen3-235b-a22b",
    # the 2507 instruct release keeps the architecture (its longer native context aside)
    "Qwen/Qwen3-235B-A22B-Instruct-2507": "qwen3-235b-a22b",
    "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8": "qwen3-235b-a22b",
    # the coder release has the 14B base's shapes (its native context aside)
    "Qwen/Qwen2.5-Coder-14B-Instruct": "qwen2.5-14b",
    # NVIDIA's ModelOpt FP8 and NVFP4 releases keep the architecture
    "nvidia/Llama-4-Scout-17B-16E-Instruct-FP8": "llama-4-scout",
    "nvidia/Llama-4-Scout-17B-16E-Instruct-FP4": "llama-4-scout",
    "nvidia/Llama-4-Maverick-17B-128E-Instruct-FP8": "llama-4-maverick",
    "nvidia/Llama-4-Maverick-17B-128E-Instruct-FP4": "llama-4-maverick",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": "llama-4-scout",
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct": "llama-4-maverick",
    "Qwen/Qwen2.5-7B-Instruct": "qwen2.5-7b", "Qwen/Qwen2.5-72B-Instruct": "qwen2.5-72b",
    # Red Hat's re-quantized releases (llm-compressor) keep the architecture
    "RedHatAI/Llama-3.3-70B-Instruct-fp8-dynamic": "llama-3.1-70b",
    "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8": "llama-3.1-8b",
    "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16": "llama-3.1-8b",
    "RedHatAI/Qwen2.5-7B-Instruct-fp8-dynamic": "qwen2.5-7b",
    # Qwen2-7B and QwQ-32B have the shapes of the Qwen2.5 models of their size (layers, heads, vocabulary)
    "Qwen/Qwen2-7B-Instruct": "qwen2.5-7b", "Qwen/QwQ-32B": "qwen2.5-32b",
    "Qwen/Qwen2.5-0.5B-Instruct": "qwen2.5-0.5b",
    "Qwen/Qwen3-30B-A3B-Instruct-2507-FP8": "qwen3-30b-a3b", "Qwen/Qwen3-235B-A22B-FP8": "qwen3-235b-a22b",
}
DTYPES = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "int8": "int8", "int4": "int4", "fp4": "fp4", "mxfp4": "mxfp4",
          "fp8 (assumed; DeepSeek native FP8)": "fp8"}
SECONDS = {"s": 1e3, "ms": 1.0}
# the categories that measure memory, not time: no fit of a time or rate takes them
MEMORY_CATEGORIES = ("memory", "kv-cache")
# the metrics of one sequence's step whatever the view: a batch-1 decode, a prompt's processing (llama-bench's pp)
STEP_METRICS = ("tpot_ms", "decode_tokens_per_s", "prefill_tokens_per_s")
# a point's `memory_setup` values: its server's cache was not what the stated command gives
MEMORY_SETUPS = ("not-as-stated",)


def catalog_model(hub_id: str) -> str | None:
    return ARCHITECTURE.get(hub_id) or profiles.resolve_model_name(hub_id)


def point_kind(p: dict) -> str | None:
    """The kind of model a point measures (`accuracy.architecture_kind`: dense, moe or hybrid), None without a catalog
    model of its architecture."""
    model = catalog_model(p["model"])
    return architecture_kind(resolve_model(model)) if model else None


def point_engine(p: dict) -> str:
    """The engine a point is predicted with: its own profile where the catalog has one (its runtime, scheduling,
    prefill chunk and weight kernels), pinned to the release the point ran where its `engine_version` starts with a
    release number (`v0.5.3.post3`, `0.10.2 (ROCm 7.0.0 container ...)`; not `main, September 2025` or a commit), so
    the profile's `versions` rules for that release apply; a generic serving engine for the others (MLC, ...)."""
    if p["engine"] not in engine_table():
        return "serving"
    try:  # the schema's own check of a pin
        return pinned_engine(f"{p['engine']}=={str(p.get('engine_version') or '').split(' ')[0]}")
    except ValueError:  # no release number to pin
        return p["engine"]


def point_gguf_type(p: dict) -> str | None:
    """The GGUF file type a point's weights were read from (`gguf-q4_0`: Q4_0), None for other formats."""
    return p["dtype"].removeprefix("gguf-").upper() if p["dtype"].startswith("gguf-") else None


def point_dtype(p: dict) -> str | None:
    """The weight format a point is predicted in (a GGUF file type's: Q4_0 and Q4_K_M hold int4 weights)."""
    gguf = point_gguf_type(p)
    if gguf is None:
        return DTYPES.get(p["dtype"])
    return FILE_TYPES[gguf].format if gguf in FILE_TYPES else None


def predict(p: dict, view: str = "requests", tune: Callable[[ProfileRequest], Any] | None = None
            ) -> tuple[float | None, str]:
    """(predicted value in the published unit, or None, and why not), in the step or the request view; `tune` gives
    the factors a fit tries for a request (None: the documented ones)."""
    model = catalog_model(p["model"])
    if model is None:
        return None, f"{p['model']}: no catalog model of its architecture"
    if (setup := p.get("memory_setup")) is not None:
        if setup not in MEMORY_SETUPS:
            raise ValueError(f"{p['id']}: memory_setup {setup!r} is none of {', '.join(MEMORY_SETUPS)}")
        # its source's own runs show a cache the stated command cannot give (its file's header says why): its batches
        # are no test of the engine's stock memory sizing
        return None, "the run's memory setup is not the stated one (its source's runs show it)"
    engine = point_engine(p)
    # a GGUF file is read as the one it was (`--gguf-type`), of the types optiplan models
    dtype, gguf = point_dtype(p), point_gguf_type(p)
    if dtype is None and gguf:
        return None, f"GGUF {gguf} is not a file type optiplan models"
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
    hw = resolve_hardware(p["hardware"])
    if dtype in ("fp8", "fp4") and not supports_dtype(hw, dtype) and not engine_weight_only(engine, dtype, hw):
        return None, f"{dtype} weights on a GPU without {dtype} compute, on an engine that does not read them weight-only"
    if p.get("speculative"):
        # profile --speculative prices it at a given acceptance, which these sources do not state
        return None, f"speculative decoding ({p['speculative']}) at an acceptance the source does not state"
    if p.get("causal_mask") == "linear" and engine_square_mask(engine):
        return None, f"a linear causal mask (torchao's --linear_causal_mask) is not {engine}'s square one"
    # an offline load whose prompts were all sent at once (`num_requests` of them) is predicted as that burst; a run of
    # `num_requests` at most `batch` at a time (a client's --max-concurrency) as that run, its output lengths spread
    # as its client draws them (`length_spread`)
    burst = p.get("num_requests") if p.get("batch") is None else None
    run = p.get("num_requests") if p.get("batch") else None
    # a burst whose requests were free to stop early (no --ignore-eos) made fewer tokens than it asked for
    # (`generated_tokens`): a request that stopped early left its slot and its cache to the next one, so the run is
    # predicted with requests of the mean length made, every figure of it alike
    if (burst or run) and p.get("generated_tokens"):
        output = max(round(p["generated_tokens"] / (burst or run)), 1)
        context = p.get("context_tokens") or prompt + output
    offline = p.get("batch") is None and p["metric"] == "output_tokens_per_s"
    # the KV-cache format where the source states one ("fp16 (not stated)" is the engine's default, kept as such);
    # an unstated bit width ("quantized (...)") has no counterpart
    kv_dtype = DTYPES.get(str(p.get("kv_dtype") or "").split(" ")[0])
    # TensorRT-LLM's `--tp 8` with attention DP runs attention data-parallel: the point's layout says so
    adp = p.get("attention_data_parallel") or 1
    # trtllm-bench's throughput runs (in-process bursts) take the batch limit the tool sets, not the LLM API's default
    bench_cap = trtllm_bench_max_batch(
        model, p["hardware"], dtype, kv_dtype, p.get("tensor_parallel") or p.get("num_devices") or 1, prompt,
        output) if engine.startswith("trtllm") and p.get("harness") == "in-process" and burst else None
    # a batch-1 decode figure, or a prompt's processing rate at batch 1 (llama-bench's pp), is the step's, whatever
    # the view: no request section to compute for it
    requests = {} if p["metric"] in STEP_METRICS and batch == 1 and not burst else {
        "input_tokens": prompt, "output_tokens": output, "concurrency": burst or ("max" if offline else batch),
        "at_once": bool(burst), "in_process": p.get("harness") == "in-process", "num_requests": run,
        "length_spread": p.get("length_spread", 0.0) if run else 0.0,
        "prompt_spread": p.get("prompt_spread", 0.0) if run else 0.0, "warm_requests": p.get("warm_requests", 0),
        "cached_tokens": p.get("cached_tokens", 0)}
    request = ProfileRequest(model=model, hardware=p["hardware"], num_devices=p.get("num_devices") or 1,
                             tensor_parallel=None if adp > 1 else p.get("tensor_parallel"),
                             pipeline_parallel=p.get("pipeline_parallel") or 1,
                             attention_data_parallel=adp, expert_parallel=p.get("expert_parallel") or 1,
                             dtype=dtype, group_size=p.get("group_size"), gguf_type=gguf, kv_dtype=kv_dtype, batch=batch,
                             context=context, prompt_tokens=prompt, engine=engine,
                             weight_kernel=p.get("weight_kernel"),  # a kernel the point states it ran (exllamav2's)
                             prefill_chunk_tokens=p.get("prefill_chunk_tokens"),  # a run's own step budget
                             max_running=bench_cap or p.get("max_running"),  # a run's own running cap
                             memory_share=p.get("memory_share"),  # a run's own memory option (its KV cache's size)
                             sampler=p.get("sampler"),  # the sampler a vLLM run's start-up profiling peaked with
                             graph_padding=p.get("graph_padding"),  # the CUDA-graph sizes the run's options pad to
                             scheduling=p.get("scheduling") if requests else None,  # request figures only
                             # llama.cpp's --n-gpu-layers, and the host that computes the rest (its memory, its link)
                             gpu_layers=p.get("gpu_layers"), host_memory_gbps=p.get("host_memory_gbps"),
                             host_link_gbps=p.get("host_link_gbps"),
                             **requests)
    try:
        eff = tune(request) if tune else None
        r = profile(request, eff)
        if view == "step" and offline and r.throughput.max_batch > 1:
            # an offline run with every request at once: as many sequences as the memory holds
            r = profile(request.model_copy(update={"batch": min(r.throughput.max_batch, 4096)}), eff)
    except OptiplanError as exc:
        return None, f"profile refuses it: {exc}"
    if view == "requests" and r.requests is not None and r.requests.max_concurrency < 1:
        # the engine, as modelled, cannot hold one of the point's requests (vLLM would refuse to start at the model's
        # context): the run's memory setup is not the one stated, and its figures are no test of the model
        return None, (f"not one request of {prompt + output:,} tokens fits in {engine}'s cache on {p['hardware']} as "
                      "modelled: the run's memory setup is not the stated one")
    metric = p["metric"]
    if view == "requests" and r.requests is not None:
        q = r.requests
        if metric == "ttft_ms":
            return q.ttft_ms / SECONDS[unit], ""
        if metric == "ttft_median_ms":
            return q.ttft_median_ms / SECONDS[unit], ""
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
    if metric == "prefill_tokens_per_s":
        return prompt * 1e3 / r.latency.ttft_ms, ""
    if metric in ("ttft_ms", "ttft_median_ms"):
        return r.latency.ttft_ms / SECONDS[unit], ""
    if metric == "request_latency_ms":
        return (r.latency.ttft_ms + output * r.latency.tpot_ms) / SECONDS[unit], ""
    if metric == "output_tokens_per_s":
        return r.throughput.tokens_per_s / share, ""
    if metric == "kv_cache_tokens":
        # the engine's start-up log of its cache: vLLM's "GPU KV cache size: N tokens", SGLang's "#tokens: N"
        tokens = r.memory.kv_cache_capacity_tokens
        return (tokens, "") if tokens is not None else (None, f"{engine} sizes no cache at start-up as modelled")
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
        if p["category"] in MEMORY_CATEGORIES or held_out(p["id"]) != (part == "held-out"):
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
