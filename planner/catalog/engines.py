"""The engines optiplan predicts, one profile each in `profiles/engines/<name>.yaml` (`optiplan catalog engines`
lists them): the version the facts describe, the analytic runtime it runs ("serving": an optimized engine with CUDA
graphs and chunked prefill; "compiled": a torch.compile'd decode step, gpt-fast; "transformers": eager `generate`),
whether plans are made for it (gpt-fast is profiled only), how it schedules (continuous or static batches), its
default chunked-prefill budget, what it runs by default (the baseline of a plan for it includes those: a default is
never a plan step that gains), the kernel it runs and the file it stores per weight format, and the architectures
and memory it has beyond the model's (gpt-fast's square mask, llama.cpp's embedding on the host), each with its
source."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from ... import profiles
from ..errors import UnknownNameError
from ..schema import HardwareSpec, ModelSpec
from ..schema.releases import split_engine
from .engine_versions import pinned_profile, profile_range, release_holds
from .hardware import default_16bit, supports_dtype
from .prefill_budget import compute_optimal_tokens

# `profile --engine serving` predicts a generic serving engine of the "serving" runtime
GENERIC_SERVING = "serving"
ENGINES_DIR = profiles.ROOT / "engines"


@lru_cache(maxsize=1)
def engine_table() -> dict[str, Any]:
    """Every engine profile, by name."""
    table = {}
    for path in sorted(ENGINES_DIR.glob("*.yaml")):
        entry = profiles.read_yaml(path)
        if entry["name"] != path.stem:  # the CLI lists engines by file name (profiles.engine_names)
            raise ValueError(f"{path}: an engine profile's file is named after its engine, not '{entry['name']}'")
        table[entry["name"]] = entry
    return table


def engine_names() -> list[str]:
    return profiles.engine_names()


def engine_profile(engine: str) -> Mapping[str, Any]:
    """An engine's profile, or a release's where the engine is pinned to one (`sglang==0.5.6`: its `versions` rules
    applied, `engine_versions.pinned_profile`)."""
    name, release = split_engine(engine)
    if name not in engine_table():
        raise UnknownNameError("engine", name, [GENERIC_SERVING, *engine_table()])
    return engine_table()[name] if release is None else release_profile(name, release)


@lru_cache(maxsize=64)
def release_profile(name: str, release: str) -> Mapping[str, Any]:
    """The profile of engine `name` as `release` runs (built once per release)."""
    return pinned_profile(engine_table()[name], release)


def release_warning(engine: str | None) -> str | None:
    """Why a pinned release's facts may not hold: it lies outside the releases its profile describes (`version`),
    the `versions` rules applied to it named (what they set holds for it; the rest was stated for later releases)."""
    name, release = split_engine(engine or "")
    if release is None or name == GENERIC_SERVING or release_holds(release, profile_range(engine_table()[name])):
        return None
    rules = release_profile(name, release).get("version_rules") or []
    applied = f"; its rules for {', '.join(rules)} are applied, the other facts" if rules else ": its facts and rules"
    return (f"{name}'s profile describes {engine_table()[name]['version']}, not {release}{applied} may not hold for "
            "that release")


def engine_plans(engine: str) -> bool:
    """Whether advise, apply and configs plan for the engine (a generation script such as gpt-fast is profiled only:
    its profile's `plans: false`)."""
    return engine == GENERIC_SERVING or engine_profile(engine).get("plans", True)


def planned_engines() -> list[str]:
    """The engines a plan can be made for."""
    return [name for name in engine_table() if engine_plans(name)]


def engine_fact(engine: str | None, key: str) -> Any:
    """A fact of the engine's profile, or None where it has none (the generic `serving` engine, no engine)."""
    return None if engine is None or engine == GENERIC_SERVING else engine_profile(engine).get(key)


def engine_runtime(engine: str) -> str:
    """The analytic runtime an engine runs (its fixed costs per step and KV layout)."""
    return "serving" if engine == GENERIC_SERVING else engine_profile(engine)["runtime"]


def device_fact(engine: str | None, hw: HardwareSpec, key: str, devices: int = 1) -> Any:
    """A default the engine sets by the device: the first of its profile's `device_defaults` rules that `hw` matches
    and that sets `key` (`when`: its kind, at least `min_memory_gib`, a name or id containing one of `named` and none
    of `not_named`, case aside, as vLLM reads the device name: its larger budgets on GPUs of 70 GiB and more that are
    not A100s; a CUDA compute capability below `below_compute_capability`, or of `min_compute_capability` or more;
    the device's `backend`, rocm or cuda; the releases `versions` names holding the engine's, `engine_release`),
    times the `devices` of the deployment where the rule says `per_device` (vLLM on CPUs), else the profile's value."""
    ident = f"{hw.id} {hw.name}".lower()
    for rule in engine_fact(engine, "device_defaults") or []:
        when = rule["when"]
        if key in rule and hw.kind == when.get("kind", hw.kind) \
                and ("versions" not in when or release_holds(engine_release(engine), when["versions"])) \
                and hw.memory_bytes >= when.get("min_memory_gib", 0) * 2**30 \
                and (not when.get("named") or any(n in ident for n in when["named"])) \
                and not any(n in ident for n in when.get("not_named", [])) \
                and when.get("backend", hw.features.backend) == hw.features.backend \
                and below_compute_capability(hw, when.get("below_compute_capability")) \
                and ("min_compute_capability" not in when
                     or not below_compute_capability(hw, when["min_compute_capability"])):
            value = rule[key]  # None: the rule turns the default off (TGI's chunking on ROCm)
            return value * devices if value is not None and rule.get("per_device") else value
    return engine_fact(engine, key)


def deployed_engine(engine: str | None, hw: HardwareSpec) -> str | None:
    """The engine pinned to the release of the image its configs run on `hw`'s backend (its profile's
    `deployed_release`, the tag in planner/deploy/config.py); as named where it states none (llama.cpp on an Apple
    GPU, which runs no image) or pins already."""
    release = (engine_fact(engine, "deployed_release") or {}).get(hw.features.backend)
    return f"{engine}=={release}" if release and split_engine(engine)[1] is None else engine


def engine_release(engine: str | None) -> str | None:
    """The release the engine's facts are taken at: the one it is pinned to (`sglang==0.5.6`), else its profile's
    `release` (what its facts as written describe); None for the generic engine or a profile without one."""
    return engine_fact(engine, "release")


def below_compute_capability(hw: HardwareSpec, limit: float | None) -> bool:
    """Whether `hw` is a CUDA device of a compute capability below `limit` (True where no limit is set; a device
    without a numeric capability, ROCm's gfx names, is not below any)."""
    if limit is None:
        return True
    try:
        return float(hw.features.compute_capability or "") < limit
    except ValueError:
        return False


def engine_prefill_chunk(engine: str, runtime_default: int | None, hw: HardwareSpec,
                         devices: int = 1, spec: ModelSpec | None = None) -> int | None:
    """The engine's default chunked-prefill budget per step on `hw` (its profile; where it computes one from the
    device and the model, TGI's, that where `spec` is given and the device is one it knows), or the runtime's for
    `serving`."""
    if engine == GENERIC_SERVING:
        return runtime_default
    default = device_fact(engine, hw, "prefill_chunk_tokens", devices)
    rule = engine_fact(engine, "prefill_chunk_by_compute")
    computed = compute_optimal_tokens(rule, spec, hw, devices) if rule and spec is not None and default else None
    return computed or default


def engine_chunk_budget(engine: str | None, runtime_default: int, hw: HardwareSpec, devices: int = 1,
                        spec: ModelSpec | None = None) -> int:
    """The tokens one step takes with chunked prefill on, on `hw`: the engine's default chunk where it chunks by
    default (vLLM's max_num_batched_tokens by device), else the budget its chunking takes when turned on (TensorRT-LLM
    chunks at max_num_tokens: `chunked_prefill_tokens`; where the engine does not chunk, the whole prompts a prefill
    batch takes: TGI's --max-batch-prefill-tokens on ROCm), else the runtime's (`runtime_default`)."""
    if engine is None or engine == GENERIC_SERVING:
        return runtime_default
    return engine_prefill_chunk(engine, None, hw, devices, spec) or engine_fact(engine, "chunked_prefill_tokens") \
        or runtime_default


def engine_budget_per_group(engine: str | None) -> bool:
    """Whether each data-parallel attention group schedules its own step budget (vLLM: every data-parallel rank is an
    engine core of its own, with its own max_num_batched_tokens), so a step of `attention_dp` groups takes that many
    budgets; otherwise the budget is the whole deployment's, divided over the groups (SGLang divides
    --chunked-prefill-size by the dp size). `attention_dp_budget` in its profile: per_group or divided (default)."""
    return engine not in (None, GENERIC_SERVING) and engine_fact(engine, "attention_dp_budget") == "per_group"


def engine_dp_shares_experts(engine: str | None) -> bool:
    """Whether the engine's data-parallel ranks of a MoE model share its experts, one tensor-parallel group over every
    rank (vLLM; `data_parallel_experts: shared`), rather than copy the model (SGLang's --dp-size)."""
    return engine_fact(engine, "data_parallel_experts") == "shared"


def engine_gathers_experts(engine: str | None, hw: HardwareSpec) -> bool:
    """Whether the engine dispatches a MoE layer's tokens under data-parallel attention by gathering every token to every
    device (its default), having no top-k all-to-all kernel on `hw`'s backend in its release (its profile's
    `moe_all_to_all_backends`: DeepEP and pplx-kernels are CUDA's); False where the profile states none. The step
    model prices a top-k all-to-all either way (the configs say what the gather costs more)."""
    backends = engine_fact(engine, "moe_all_to_all_backends")
    return backends is not None and hw.features.backend not in backends


def engine_api_servers_option(engine: str | None) -> str | None:
    """The server option that starts a front-end process per data-parallel rank (vLLM's --api-server-count), which a
    plan's configs set, so each rank's requests cost its own server's host time; None where it has none."""
    return engine_fact(engine, "api_servers_option")


def engine_running_option(engine: str | None) -> str | None:
    """The server option that caps the sequences the engine runs at once (its profile's `options`: vLLM's
    --max-num-seqs, SGLang's --max-running-requests, TensorRT-LLM's --max_batch_size), None where it names none."""
    return ((engine_fact(engine, "options") or {}).get("max_running") or {}).get("option")


def engine_default_api_servers(engine: str | None, ranks: int) -> int:
    """The front-end processes a server of `ranks` data-parallel ranks starts where its deployment does not say: one
    per rank where the release does so by default (`api_servers_per_rank`: vLLM from 0.15), else one."""
    return ranks if engine_fact(engine, "api_servers_per_rank") else 1


def engine_host_layers(engine: str | None) -> dict | None:
    """How the engine computes the layers it keeps in host memory on the CPU (`host_layers`: its kernels' share of the
    host memory's peak, the step rows from which it runs them on the GPU instead); None: it streams them there."""
    fact = engine_fact(engine, "host_layers")
    return None if fact is None else {k: fact[k] for k in ("bandwidth_efficiency", "device_min_rows", "ubatch_rows",
                                                           "head_first") if k in fact}


def engine_max_running(engine: str | None, hw: HardwareSpec, devices: int = 1, schedulers: int = 1) -> int | None:
    """The most sequences the engine runs at once by default on `hw` (`engine_default_limit`'s count): its cap per
    scheduler (vLLM's max_num_seqs; a data-parallel deployment runs one scheduler per group) times `schedulers`, and
    no more than its `max_in_flight` (TGI's router); None where its profile states no cap (the cache's room is the
    limit). More requests wait."""
    limit = engine_default_limit(engine, hw, devices, schedulers)
    return limit[0] if limit else None


def engine_default_limit(engine: str | None, hw: HardwareSpec, devices: int = 1,
                         schedulers: int = 1) -> tuple[int, str, bool] | None:
    """(the most sequences one server of the engine takes at once by default on `hw`, the option that raises it,
    whether a request past it is refused rather than queued), or None where the profile states neither a running cap
    nor an in-flight limit. A scheduler's cap counts once per scheduler (vLLM's max_num_seqs per data-parallel
    attention rank); a router's in-flight limit (TGI) binds before it when it is lower."""
    cap = device_fact(engine, hw, "max_running", devices)
    per = cap * schedulers if cap else None
    in_flight = engine_max_in_flight(engine)
    if in_flight and (not per or in_flight <= per):
        return in_flight, engine_fact(engine, "max_in_flight_option"), True
    return (per, engine_fact(engine, "max_running_option"), False) if per else None


def engine_running_pool(engine: str | None) -> tuple[int, int, int] | None:
    """(requests per context length of cached tokens, least, most) of the request pool an engine sizes from its cache
    (SGLang: min(max(cache tokens / context length x 512, 2048), 4096) per data-parallel worker), or None."""
    pool = engine_fact(engine, "running_pool")
    return (pool["requests_per_context"], pool["min"], pool["max"]) if pool else None


def engine_starts_with_full_context(engine: str | None) -> bool:
    """Whether the engine refuses to start unless its cache holds one sequence of its whole context (`--max-model-len`,
    the model's own by default): vLLM's `starts_with: full-context`."""
    return engine_fact(engine, "starts_with") == "full-context"


def engine_max_in_flight(engine: str | None) -> int | None:
    """The most requests the engine accepts at once, running and waiting, by default: past it a client is refused,
    not queued (TGI's --max-concurrent-requests); None where its profile states no such limit."""
    return engine_fact(engine, "max_in_flight")


def continuous_scheduling(engine: str) -> bool:
    """Whether the engine batches continuously (sequences join and leave at every step) by default."""
    return engine == GENERIC_SERVING or engine_profile(engine)["scheduling"] == "continuous"


def engine_kernel(engine: str | None, weight_dtype: str) -> dict[str, Any]:
    """The engine's profile entry for the GEMM it runs on `weight_dtype` weights (empty where it states none); the
    generic `serving` engine runs what the serving runtime names in profiles/efficiency.yaml."""
    if engine is None or engine == GENERIC_SERVING:
        kernels = profiles.efficiency_table()["runtimes"]["serving"].get("weight_kernels") or {}
        kernel = engine and kernels.get(weight_dtype)
        return {"efficiency": kernel} if kernel else {}
    return (engine_profile(engine).get("kernels") or {}).get(weight_dtype) or {}


def engine_flop_share(engine: str | None, hw: HardwareSpec) -> float:
    """The share of the device's documented compute efficiency the engine's steps reach on a GPU (`flop_share` in its
    profile, or in its first `device_defaults` rule for the device that sets one: vLLM's and SGLang's, fitted to their
    published compute-bound runs on Hopper and MI300X, and on the A100 for CUDA devices before Hopper; 1 where a
    profile states none)."""
    share = device_fact(engine, hw, "flop_share") if hw.kind == "gpu" else None
    return float(share) if share is not None else 1.0


def engine_moe_flop_share(engine: str | None, hw: HardwareSpec, expert_dtype: str | None = None) -> float | None:
    """The share of the device's documented compute rate the engine's grouped GEMM over a MoE model's routed experts
    reaches on a GPU (`moe_flop_share` in its profile or device rules, or `moe_flop_share_<format>` for experts that a
    checkpoint alone stores in `expert_dtype`, gpt-oss's MXFP4), or None: the experts at the engine's `flop_share`."""
    keys = (f"moe_flop_share_{expert_dtype}",) * bool(expert_dtype) + ("moe_flop_share",) if hw.kind == "gpu" else ()
    share = next((v for k in keys if (v := device_fact(engine, hw, k)) is not None), None)
    return float(share) if share is not None else None


def engine_request_host_s(engine: str | None) -> float:
    """Seconds of host time the engine's front end spends on each request, one request after another
    (`request_host_s` in its profile; 0 where it states none): the server completes at most 1 / that per second."""
    return float(engine_fact(engine, "request_host_s") or 0.0)


def engine_first_token_latency_s(engine: str | None, devices: int = 1, in_process: bool = False) -> float:
    """Seconds a request served through the engine's HTTP server waits for its first token beyond the device's work
    and the front end's pacing (`request_host_s`), once per request at any load (`first_token_latency_s` in its
    profile; 0 where it states none); a profile may state one value for a server on one device and one for a server
    over several (`one_device`, `several_devices`), which `devices` picks. `in_process`: handed to the engine in the
    caller's process, where no server stands between (`in_process_first_token_latency_s`: a runtime's own per-call
    cost, 0 where it states none)."""
    value = engine_fact(engine, "in_process_first_token_latency_s" if in_process else "first_token_latency_s")
    if isinstance(value, dict):
        value = value["one_device" if devices <= 1 else "several_devices"]
    return float(value or 0.0)


def engine_request_admit_share(engine: str | None) -> float:
    """The share of `engine_request_host_s` the front end spends taking a request in (parsing, tokenizing, handing it
    to the engine), the rest returning its tokens (`request_admit_share` in its profile; 1 where it states none)."""
    share = engine_fact(engine, "request_admit_share")
    if share is None:
        return 1.0
    if not 0 <= share <= 1:
        raise ValueError(f"{engine}'s request_admit_share is {share}: a share of its host time, 0 to 1")
    return float(share)


def engine_group_size(engine: str | None, weight_dtype: str) -> int | None:
    """The quantization group the engine's tooling uses for `weight_dtype` weights when none is given (gpt-fast's
    quantize.py: int4 in groups of 32), or None: the format's usual group."""
    return engine_kernel(engine, weight_dtype).get("group_size")


def engine_storage(engine: str | None, weight_dtype: str) -> dict[str, Any] | None:
    """The file the engine stores `weight_dtype` weights in, where its profile names one (llama.cpp's GGUF file
    type: format, source; `analytic.gguf` gives its tensors' block types); None: the format's usual layout."""
    return engine_kernel(engine, weight_dtype).get("storage")


def engine_embedding_on_host(engine: str | None) -> bool:
    """Whether the engine keeps the token embedding in host memory, off a GPU (its profile's `input_embedding:
    host`: llama.cpp)."""
    return engine_fact(engine, "input_embedding") == "host"


def engine_activations(engine: str, weight_dtype: str, hw: HardwareSpec) -> str | None:
    """The activation format the engine's GEMM for `weight_dtype` weights runs on `hw` (e.g. NVFP4 W4A4), where the
    device has a tensor-core rate for it; 16-bit where the engine runs the format weight-only on a device without its
    rate (`engine_weight_only`: vLLM's FP8 Marlin on an A100); None: the format's own default (weight-only formats
    dequantize to 16-bit)."""
    if engine_weight_only(engine, weight_dtype, hw):
        return default_16bit(hw)
    kernel = engine_kernel(engine, weight_dtype)
    act = kernel.get("activations")
    if act and "activations_backends" in kernel and hw.features.backend not in kernel["activations_backends"]:
        act = None  # a GEMM that runs at the 16-bit rate on this backend (llama.cpp's MMQ on CUDA)
    if engine == GENERIC_SERVING and weight_dtype == "fp4":
        act = "fp4"  # NVFP4 as the engines with a profile run it: W4A4 where the device has the rate (Blackwell)
    return act if act and act in hw.peak_tflops else None


def engine_weight_only(engine: str | None, weight_dtype: str, hw: HardwareSpec) -> dict[str, Any] | None:
    """The kernel the engine reads `weight_dtype` weights with on a GPU that has no compute rate for the format,
    dequantizing them to 16-bit (`weight_only` under the format in its profile's kernels: vLLM runs FP8 checkpoints
    on Ampere through FP8 Marlin, W8A16; Turing from 0.14), or on a CUDA GPU below the compute capability the entry
    names even where it has the rate (`below_compute_capability`: TGI runs FP8-Marlin on Ada, which it finds faster), or
    None: the device has the rate, or the engine cannot (below the kernel's `min_compute_capability`, on CUDA)."""
    fallback = engine_kernel(engine, weight_dtype).get("weight_only")
    if not fallback or hw.kind != "gpu":
        return None
    if "min_compute_capability" in fallback and (hw.features.backend != "cuda" or below_compute_capability(
            hw, fallback["min_compute_capability"])):
        return None  # the kernel's own floor (vLLM 0.10-0.11's FP8 Marlin: Ampere on)
    preferred = "below_compute_capability" in fallback and hw.features.backend == "cuda" \
        and below_compute_capability(hw, fallback["below_compute_capability"])
    return fallback if preferred or not supports_dtype(hw, weight_dtype) else None


def fp8_weight_only_engines() -> list[str]:
    """The engines that run fp8 weights weight-only on a GPU without an fp8 rate (their profiles' `weight_only`)."""
    return [name for name in engine_names() if engine_kernel(name, "fp8").get("weight_only")]


def engine_kernel_efficiency(engine: str | None, weight_dtype: str, backend: str | None = None,
                             hw: HardwareSpec | None = None) -> str | None:
    """The weight kernel (`profiles/efficiency.yaml` weight_kernels) whose bandwidth share the engine's GEMM for
    `weight_dtype` weights reaches, where its profile names one: on `hw`, its weight-only kernel where the device has
    no rate for the format (`engine_weight_only`); on a device of `backend`, the one its profile names for that
    backend (`efficiency_by_backend`: vLLM's skinny FP8 GEMM on ROCm), else its kernel of any backend."""
    if hw is not None and (fallback := engine_weight_only(engine, weight_dtype, hw)):
        return fallback.get("efficiency")
    kernel = engine_kernel(engine, weight_dtype)
    return (kernel.get("efficiency_by_backend") or {}).get(backend) or kernel.get("efficiency")


def engine_fallback_kernel(engine: str | None, weight_dtype: str, hw: HardwareSpec,
                           method: str | None = None) -> dict[str, Any] | None:
    """The kernel the engine runs for `weight_dtype` weights on `hw` where the device refuses its own (`fallback`
    under the format in its profile's kernels: vLLM's GPTQ kernel, adapted from exllamav2, below Marlin's compute
    capability; its Marlin MXFP4 MoE before Hopper, below its Triton kernel's), for weights made by `method` where the
    fallback names its methods (None: unknown, taken as the fallback's), or None: none for the device's backend, or
    the device at or above the fallback's `below_compute_capability`."""
    fallback = engine_kernel(engine, weight_dtype).get("fallback")
    if not fallback or hw.features.backend not in fallback.get("backends", [hw.features.backend]) or \
            not below_compute_capability(hw, fallback.get("below_compute_capability")):
        return None
    return fallback if method is None or method in fallback.get("methods", [method]) else None


def engine_splits_layers(engine: str | None) -> bool:
    """Whether the engine spreads a model over several devices by default as consecutive layers run one device after
    another (its profile's `device_split: layers`: llama.cpp's `--split-mode layer`, transformers' `device_map="auto"`),
    rather than tensor-parallel shards."""
    return engine_fact(engine, "device_split") == "layers"


def engine_mixes_prefill(engine: str | None, attention_dp: int = 1, speculative: str | None = None) -> bool:
    """Whether a step of the engine carries prompt tokens beside the decoding sequences (vLLM, TensorRT-LLM: a mixed
    batch), or runs prompts in steps of their own first, the decoding waiting for them (`mixed_prefill: false`:
    SGLang, whose scheduler runs a prefill batch whenever it can form one and decodes only when it cannot); under
    data-parallel attention without speculative decoding `mixed_prefill_attention_dp` where the profile states it."""
    if attention_dp > 1 and not speculative and engine_fact(engine, "mixed_prefill_attention_dp") is not None:
        return bool(engine_fact(engine, "mixed_prefill_attention_dp"))
    return engine_fact(engine, "mixed_prefill") is not False


def engine_schedules_ahead(engine: str | None, speculative: str | None = None, pp: int = 1,
                           model_type: str | None = None) -> bool:
    """Whether the engine's scheduler runs one batch ahead of the device (its profile's `overlap_schedule`: SGLang's
    overlap scheduler, TensorRT-LLM's PyTorch executor), so a request that comes in while a batch runs joins the batch
    after the one already launched; not under pipeline parallelism, nor under speculative decoding but with the
    methods its profile keeps it with (`overlap_schedule_speculative`: TensorRT-LLM's MTP and one-model EAGLE-3; SGLang
    none), nor for the model types whose prefix cache turns it off (its `overlap_schedule_off`: SGLang's hybrid models
    with state layers)."""
    off = (engine_fact(engine, "overlap_schedule_off") or {}).get("model_types", [])
    kept = speculative is None or speculative in (engine_fact(engine, "overlap_schedule_speculative") or ())
    return bool(engine_fact(engine, "overlap_schedule")) and kept and pp == 1 and model_type not in off


def engine_decodes_first_token(engine: str | None) -> bool:
    """Whether the engine's prefill stops one prompt token short and its first decode step computes the first
    output token (its profile's `first_token: decode_step`: TurboMind up to LMDeploy 0.1.0a1), so a request's first
    token waits for a decode step after its prefill."""
    return engine_fact(engine, "first_token") == "decode_step"


def engine_square_mask(engine: str | None) -> bool:
    """Whether the engine materialises a boolean causal mask of the whole cache length squared (its profile's
    `causal_mask: square`, gpt-fast's setup_caches)."""
    return engine_fact(engine, "causal_mask") == "square"


def engine_math_decode_attention(engine: str | None) -> bool:
    """Whether the engine's decode step runs torch SDPA's math backend over K and V repeated to every query head
    (its profile's `decode_attention: math`, gpt-fast's decode_n_tokens), which materialises copies of the cache."""
    return engine_fact(engine, "decode_attention") == "math"


def engine_casts_whole_weight(engine: str | None, weight_dtype: str) -> bool:
    """Whether the engine's weight-only GEMM for `weight_dtype` casts each quantized matrix whole to the activations'
    dtype before the matmul in an eager pass (`casts_whole_weight` under the format in its profile's kernels: torchao's
    int8 weight-only tensor, gpt-fast's int8 linear in its uncompiled prefill), so that pass holds a 16-bit copy of the
    matrix beside its activations."""
    return bool(engine_kernel(engine, weight_dtype).get("casts_whole_weight"))


def engine_quantizes_head(engine: str | None, weight_dtype: str) -> bool:
    """Whether the engine's quantizer for `weight_dtype` converts the output head with the other linear layers (its
    kernel entry for the format and `output_head: quantized`, for the engine or under the format: gpt-fast's
    quantize.py, optiplan apply's torchao int8 for transformers); otherwise a quantized model keeps a 16-bit head."""
    kernel = engine_kernel(engine, weight_dtype)
    return bool(kernel) and "quantized" in (engine_fact(engine, "output_head"), kernel.get("output_head"))


def reserves_whole_length(engine: str | None) -> bool:
    """Whether the engine admits a request only with room for its whole length (its profile's `admission: reserve`,
    TensorRT-LLM's GUARANTEED_NO_EVICT). Otherwise a paged cache grows as sequences do and holds what the running
    requests have used (`on-demand`: vLLM preempts when its blocks run out)."""
    return engine_fact(engine, "admission") == "reserve"


def holds_used_cache(engine: str | None, paged: bool) -> bool:
    """Whether a running request's cache holds only what it has used so far (`analytic.kvcache.cache_tokens_held`):
    a paged cache that grows with the sequence, unless the engine admits a request only with room for its whole
    length. A contiguous cache reserves the whole length: a static batch, gpt-fast's buffers, and llama.cpp as
    optiplan's configs run it (each of the `--parallel` slots sized for the whole context)."""
    return paged and not reserves_whole_length(engine)


def engine_pages_cache(engine: str) -> bool:
    """Whether the engine runs a paged KV cache by default (the generic `serving` engine does)."""
    return engine == GENERIC_SERVING or "paged-kv" in engine_defaults(engine)


def engine_defaults(engine: str) -> dict[str, str]:
    """Technique id -> source, for what the engine runs by default (none for the generic `serving`)."""
    if engine == GENERIC_SERVING:
        return {}
    return {d["technique"]: d["source"] for d in engine_profile(engine).get("defaults") or []}


def kv_fp8_storage(engine: str) -> dict[str, Any] | None:
    """How the engine stores an fp8 KV cache where its default kernels do not (its profile's `kv_fp8_storage`: the
    oldest compute capability, environment it needs there, source), or None where it does not."""
    return engine_fact(engine, "kv_fp8_storage")
