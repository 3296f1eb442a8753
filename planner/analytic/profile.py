"""`optiplan profile`: validate a ProfileRequest, resolve model and device, run the analytic model,
and return a versioned `Profile`. Pure Python: importing this never imports torch."""

from __future__ import annotations

from dataclasses import replace

from ..catalog.dtypes import QUANTIZED, DtypeError, canonical, compute_dtype
from ..catalog.engine_devices import backend_refusal
from ..catalog.engine_memory import stated_kv_memory
from ..catalog.engine_refusals import (engine_format_refusal, engine_step_refusal, kv_heads_refusal,
                                       runs_eager_attention, sdpa_refused)
from ..catalog.engine_state_models import serving_refusal
from ..catalog.engines import (
    GENERIC_SERVING,
    engine_activations,
    engine_default_api_servers,
    engine_defaults,
    engine_fact,
    engine_max_in_flight,
    engine_names,
    engine_prefill_chunk,
    engine_runtime,
    engine_splits_layers,
    engine_starts_with_full_context,
    engine_weight_only,
    fp8_weight_only_engines,
    release_warning,
)
from ..catalog.hardware import default_16bit, resolve_hardware, supports_dtype
from ..catalog.models import context_extension_hint, resolve_model
from ..catalog.served import served_checkpoint_dtype
from ..errors import HardwareError, RequestError
from ..schema import (
    ComputeProfile,
    EfficiencyFactors,
    HardwareSpec,
    HardwareSummary,
    LatencyProfile,
    MemoryBreakdown,
    ModelSpec,
    Profile,
    ProfileRequest,
    ThroughputPoint,
    ThroughputProfile,
)
from ..schema.releases import split_engine
from .accuracy import accuracy_bands, architecture_kind, fitting_bands, missing_bands_reason
from .chunked_attention import with_chunked_decode
from .efficiency import prefill_chunk_tokens, weight_kernel_refusal
from .engine_rates import kernel_rate_caveat
from .finite_run import run_lengths
from .gguf import gguf_file_type
from .kvcache import elements_per_token, kv_cache_elements, kv_groups, layout_for_runtime
from .memory import (
    cache_bytes_per_device,
    cache_capacity_tokens,
    cache_room,
    fits,
    max_context,
    per_device_bytes,
    pooled_max_batch,
    sizes_cache_ahead,
    whole_sequences,
)
from .model_summary import model_summary
from .offload import gpu_layers_fraction, host_layer_share, host_weight_bytes, streamed_offload_fraction
from .request_section import instance_request, request_section
from .requests import prompts_prefill_s
from .serving_options import serving_option_refusal
from .setup import Setup, build_setup, total_weight_bytes
from .speculation import (
    Speculating,
    draft_refusal,
    draft_request,
    speculation_bytes,
    speculation_note,
    speculative_tpot_s,
)
from .startup import startup_refusal
from .steps import (
    decode_attention_flops,
    decode_step,
    first_token_step_s,
    kv_bytes_per_device,
    matmul_flops,
    prefill_attention_flops,
    prefill_step,
    state_bytes,
)

# The attention kernel a profile request names -> the analytic model's kernel. "memory-efficient" is a fused
# kernel that never materialises the score matrix (FlashAttention class).
ATTENTION_KERNELS = {"memory-efficient": "flash", "flash": "flash", "sdpa": "sdpa", "eager": "eager"}

CURVE_MAX_BATCH = 1024


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise RequestError(f"{name} must be at least 1, got {value}")


def _dtype(value: str, what: str) -> str:
    try:
        return canonical(value)
    except DtypeError as exc:
        raise RequestError(f"{what}: {exc}") from exc


# The weight formats a GEMM over quantized activations takes: W8A8 int8 (and W4A8 with int4 weights unpacked to int8,
# QServe's and LMDeploy's), W8A8 fp8 (and TensorRT-LLM's W4A8 AWQ, int4 weights over fp8 activations), NVFP4 W4A4.
GEMM_WEIGHTS = {"int8": ("int8", "int4"), "fp8": ("fp8", "int4"), "fp4": ("fp4",)}


DEFAULT_CONTEXT = 4096  # tokens in each sequence's cache where the request names none


def with_context(request: ProfileRequest, spec: ModelSpec) -> ProfileRequest:
    """The request with its context resolved: as given; else, where it names request lengths, a request's whole
    sequence (`input_tokens` + `output_tokens`) with its prompt (`input_tokens`) for TTFT, so the step view and the
    memory describe the requests the report is about; else 4,096 tokens or the model's maximum where it is shorter
    (GPT-2: 1,024)."""
    lengths = (request.input_tokens or 0) >= 1 and (request.output_tokens or 0) >= 1  # else refused as given
    if request.context is not None:
        if request.prompt_tokens is None and lengths and request.context >= 1:  # the requests' prompt, as it fits
            return request.model_copy(update={"prompt_tokens": min(request.input_tokens, request.context)})
        return request
    if lengths:
        context = min(request.input_tokens + request.output_tokens, spec.max_position_embeddings)
        prompt = request.prompt_tokens if request.prompt_tokens is not None else min(request.input_tokens, context)
        return request.model_copy(update={"context": context, "prompt_tokens": prompt})
    return request.model_copy(update={"context": min(DEFAULT_CONTEXT, spec.max_position_embeddings)})


def with_weights(request: ProfileRequest, spec: ModelSpec, hw: HardwareSpec) -> ProfileRequest:
    """The request with its weight format resolved: as given; else the model's published checkpoint's where the device
    and the engine run it as it is (`served_checkpoint_dtype`: gpt-oss's MXFP4 experts, DeepSeek-V3's fp8), else the
    device's 16-bit format (bf16; fp16 where it has no bf16 rate, a T4). Its attention kernel too, where it names
    none: eager under transformers for a model it has no SDPA attention for (`runs_eager_attention`), as it runs it."""
    if request.attention is None:
        eager = runs_eager_attention(request.engine, spec.model_type)
        request = request.model_copy(update={"attention": "eager" if eager else "memory-efficient"})
    if request.dtype is not None:
        return request
    return request.model_copy(update={"dtype": served_checkpoint_dtype(spec, hw, request.engine) or default_16bit(hw)})


def setup_for_request(request: ProfileRequest, spec: ModelSpec, hw: HardwareSpec,
                efficiency: EfficiencyFactors | None = None) -> Setup:
    """Check a request against the model and device and resolve everything the analytic model needs."""
    request = with_weights(with_context(request, spec), spec, hw)
    for name in ("num_devices", "pipeline_parallel", "tensor_parallel", "batch", "context", "prompt_tokens"):
        _positive(name.replace("_", " "), getattr(request, name))
    runtime, kind = engine_runtime(request.engine), architecture_kind(spec)
    refusal = (backend_refusal(request.engine, hw, [GENERIC_SERVING, *engine_names()])
               or serving_refusal(request.engine, spec.model_type)
               or engine_format_refusal(request.engine, hw, spec.model_type, request.dtype, request.kv_dtype, kind)
               or (request.cpu_offload_gb and engine_step_refusal(request.engine, hw, spec.model_type, "cpu-offload",
                                                                  kind)))
    if refusal:
        raise RequestError(refusal)
    if request.context > spec.max_position_embeddings:
        raise RequestError(f"context {request.context} exceeds {spec.name}'s maximum of "
                           f"{spec.max_position_embeddings} tokens (max_position_embeddings)"
                           + context_extension_hint(spec.name))
    for name in ("input_tokens", "output_tokens", "prefill_chunk_tokens"):
        _positive(name.replace("_", " "), getattr(request, name))
    if refusal := serving_option_refusal(request, runtime, hw):
        raise RequestError(refusal)
    if runtime == "transformers" and request.attention == "sdpa" and sdpa_refused(spec.model_type):
        raise RequestError(f"transformers has no SDPA attention for {spec.model_type}: it runs it eagerly (the "
                           "default), or with flash attention where the model is loaded with it (--attention flash)")
    if (request.input_tokens is None) != (request.output_tokens is None):
        raise RequestError("request-level figures need both --input-tokens and --output-tokens")
    for option, value in (("--concurrency", request.concurrency), ("--scheduling", request.scheduling),
                          ("--at-once", request.at_once or None), ("--in-process", request.in_process or None),
                          ("--num-requests", request.num_requests), ("--length-spread", request.length_spread or None),
                          ("--prompt-spread", request.prompt_spread or None),
                          ("--cached-tokens", request.cached_tokens or None),
                          ("--slo-ttft-ms", request.ttft_slo_ms), ("--slo-itl-ms", request.itl_slo_ms)):
        if value is not None and request.input_tokens is None:
            raise RequestError(f"{option} is for request-level figures: give --input-tokens and --output-tokens too")
    if request.concurrency != "max":
        _positive("concurrency", request.concurrency)
    _positive("num requests", request.num_requests)
    if request.num_requests is not None and request.at_once:
        raise RequestError("--at-once sends --concurrency requests together; --num-requests runs them --concurrency at "
                           "a time: give one")
    for option, value in (("--length-spread", request.length_spread), ("--prompt-spread", request.prompt_spread),
                          ("--warm-requests", request.warm_requests)):
        if value and request.num_requests is None:
            raise RequestError(f"{option} describes a run of requests: give --num-requests too")
    for option, value in (("--warm-requests", request.warm_requests), ("--cached-tokens", request.cached_tokens)):
        if value and request.engine != GENERIC_SERVING and "prefix-caching" not in engine_defaults(request.engine):
            raise RequestError(f"{option}: {request.engine} keeps no prefix cache by default, so no prompt is found "
                               "in one")
    if request.cached_tokens and request.cached_tokens >= request.input_tokens:
        raise RequestError(f"--cached-tokens {request.cached_tokens:,} leaves nothing of the {request.input_tokens:,}-"
                           "token prompt to compute: at least its last token is (give fewer)")
    if request.num_requests is not None and request.warm_requests > request.num_requests:
        raise RequestError(f"--warm-requests {request.warm_requests:,} is more than the run's {request.num_requests:,}")
    if request.input_tokens and request.input_tokens + request.output_tokens > spec.max_position_embeddings:
        raise RequestError(f"requests of {request.input_tokens} + {request.output_tokens} tokens exceed {spec.name}'s "
                           f"maximum of {spec.max_position_embeddings} tokens (max_position_embeddings)"
                           + context_extension_hint(spec.name))
    if request.num_requests and (request.prompt_spread or request.length_spread):
        # a run's spread lengths reach about twice their means: its longest prompt and reply must fit too
        longest = (max(run_lengths(request.num_requests, request.input_tokens, request.prompt_spread))
                   + max(run_lengths(request.num_requests, request.output_tokens, request.length_spread)))
        if longest > spec.max_position_embeddings:
            raise RequestError(f"the run's longest prompt and reply, {longest:,} tokens with their lengths spread, "
                               f"exceed {spec.name}'s maximum of {spec.max_position_embeddings:,} tokens "
                               "(max_position_embeddings): give shorter means or a narrower spread")
    if request.prompt_tokens is not None and request.prompt_tokens > request.context:
        raise RequestError(f"prompt of {request.prompt_tokens} tokens is longer than the context ({request.context})")
    pp, adp, ep = request.pipeline_parallel, request.attention_data_parallel, request.expert_parallel
    _positive("attention data parallel", adp)
    _positive("expert parallel", ep)
    if request.tensor_parallel is None and pp == adp == ep == 1 and engine_splits_layers(request.engine):
        pp = request.num_devices  # the engine's own multi-device default: a stage of consecutive layers per device
        if pp > spec.num_layers:
            raise RequestError(f"{request.engine} splits a model's layers over the devices by default: "
                               f"{request.num_devices} devices exceed {spec.name}'s {spec.num_layers} layers; use "
                               "fewer devices, or give --tp and --pp whose product is the device count")
    tp = request.tensor_parallel or max(request.num_devices // (pp * adp), 1)
    if tp * adp * pp != request.num_devices:
        raise RequestError(f"tensor parallel {tp} x attention data parallel {adp} x pipeline parallel {pp} must equal "
                           f"the device count {request.num_devices}")
    if ep > 1 and (spec.moe is None or ep != tp * adp):
        raise RequestError(f"expert parallel {ep} splits a MoE model's experts whole over all {tp * adp} devices of a "
                           f"stage" + ("" if spec.moe else f"; {spec.name} has no experts"))
    if adp > 1 and spec.moe is None:
        raise RequestError("attention data parallel serves a MoE model, its experts split over every device (by "
                           "--ep, or tensor-parallel without it); a dense model's copies are replicas, each profiled "
                           "alone")
    if adp > 1 and ep == 1 and hw.interconnect is not None and tp * adp > hw.interconnect.max_devices_per_node:
        raise RequestError(f"experts sliced over {tp * adp} devices (data-parallel attention without --ep) span more "
                           f"than the {hw.interconnect.max_devices_per_node} devices of one {hw.id} node: their "
                           "gather and scatter across nodes is not modelled; split them whole with --ep")
    if pp > spec.num_layers:
        raise RequestError(f"pipeline parallel {pp} exceeds the model's {spec.num_layers} layers")
    if tp > 1:
        link = hw.interconnect
        if link is None:
            raise HardwareError(f"{hw.id} has no device interconnect: tensor parallel needs one (use 1 device)")
        if tp > link.max_devices_per_node:
            raise RequestError(f"tensor parallel {tp} exceeds the {link.max_devices_per_node} devices of one "
                               f"{hw.id} node ({link.name}); use --pp for more devices")
        if spec.attention_layers and spec.num_heads % tp:  # a pure state-space model splits its mixer heads
            raise RequestError(f"{spec.name} has {spec.num_heads} attention heads, not divisible by "
                               f"tensor parallel {tp}")
        if spec.attention_layers and (why := kv_heads_refusal(request.engine, spec.num_kv_heads, tp)):
            raise RequestError(why)

    ceiling = engine_fact(request.engine, "max_running_ceiling")
    if request.max_running and ceiling and request.max_running > ceiling:
        raise RequestError(f"{request.engine} runs at most {ceiling} sequences at once, whatever its options: "
                           f"--max-running {request.max_running} fails at start-up (source: "
                           f"{engine_fact(request.engine, 'max_running_ceiling_source').split(' — ')[0]})")
    weight_dtype = _dtype(request.dtype, "--dtype")
    act = (_dtype(request.activations, "--activations") if request.activations
           else engine_activations(request.engine, weight_dtype, hw))
    if request.activations and act in GEMM_WEIGHTS and weight_dtype not in GEMM_WEIGHTS[act]:
        raise RequestError(f"{act} activations run {act} matrix products, which take "
                           f"{' or '.join(GEMM_WEIGHTS[act])} weights; --dtype is {weight_dtype}")
    compute = compute_dtype(weight_dtype, act, default_16bit(hw))
    # an engine that reads the format weight-only on a device without its rate (vLLM's FP8 Marlin on an A100)
    weight_only = engine_weight_only(request.engine, weight_dtype, hw) if not request.activations else None
    if weight_only and (why := weight_kernel_refusal(hw, weight_only["efficiency"], weight_dtype)):
        raise HardwareError(f"{hw.id} has no {weight_dtype} rate, and {request.engine} reads {weight_dtype} weights "
                            f"weight-only with {weight_only['kernel']}: {why}")
    for label, d in (("weights", weight_dtype), ("compute", compute)):
        supported = supports_dtype(hw, d) and (label == "weights" or d in hw.peak_tflops)
        if supported or (label == "weights" and weight_only):
            continue
        have = ", ".join(hw.peak_tflops)
        hint = (f" (fp8 needs compute capability 8.9 or newer, or an engine that reads fp8 weights weight-only: "
                f"{', '.join(fp8_weight_only_engines())})" if d == "fp8" and hw.kind == "gpu" else "")
        raise HardwareError(f"{hw.id} has no {d} support for the {label}{hint}; it runs {have}")
    kv_dtype = _dtype(request.kv_dtype, "--kv-dtype") if request.kv_dtype else None
    if request.group_size is not None and request.group_size < 0:
        raise RequestError(f"group size must be 0 (per channel) or positive, got {request.group_size}")
    if request.group_size not in (None, 32) and weight_dtype == "mxfp4":
        raise RequestError(f"MXFP4 scales blocks of 32 values (the OCP microscaling format); --group-size "
                           f"{request.group_size} is another format")
    if request.group_size is not None and weight_dtype not in QUANTIZED:
        raise RequestError(f"--group-size sets a quantized format's scale groups; {weight_dtype} weights have none "
                           "(give --dtype int4, int8, nf4, fp8 or fp4)")
    gguf = gguf_file_type(request.gguf_type, weight_dtype, request.engine)
    if gguf and request.group_size is not None:
        raise RequestError(f"a GGUF {gguf} file sets its own blocks; --group-size is for other formats")
    s = build_setup(spec, hw, weight_dtype=weight_dtype, group_size=request.group_size, activations=act,
                    kv_dtype=kv_dtype, tp=tp, pp=pp, ep=ep, attention_dp=adp, runtime=runtime,
                    layout=layout_for_runtime(runtime),
                    attention=ATTENTION_KERNELS[request.attention],
                    prefill_chunk_tokens=request.prefill_chunk_tokens
                    or engine_prefill_chunk(request.engine, prefill_chunk_tokens(runtime), hw, tp * pp, spec),
                    efficiency=efficiency, weight_kernel=request.weight_kernel, engine=request.engine,
                    gguf_type=gguf, max_running=request.max_running, sampler=request.sampler,
                    api_servers=request.api_servers or engine_default_api_servers(request.engine, adp),
                    mixed_prefill=True if request.mixed_chunk else None, speculative=request.speculative)
    if request.memory_share is not None:
        if s.kv_memory is None:
            raise RequestError(f"--memory-share sets a serving engine's memory option; {request.engine or runtime} "
                               f"sizes no cache at start-up on {hw.name}")
        s = replace(s, kv_memory=stated_kv_memory(s.kv_memory, request.memory_share, hw))
    if request.sampler is not None and not s.sampler_row_bytes:
        raise RequestError(f"--sampler picks the sampler vLLM profiles its memory with; {request.engine or runtime} "
                           f"on {hw.name} holds no sampler's peak out of its cache")
    s = with_chunked_decode(s, request.engine, request.context)
    return with_host(replace(s, graph_padding=request.graph_padding or ()), request)


def with_host(s: Setup, request: ProfileRequest) -> Setup:
    """The setup with the request's host: its memory and link where given, the layers llama.cpp keeps there at
    --gpu-layers (`offload.gpu_layers_fraction`), and the weights vLLM and SGLang stream from it (--cpu-offload-gb)."""
    if request.gpu_layers is not None:
        if s.host_layers is None:
            raise RequestError(f"--gpu-layers is llama.cpp's --n-gpu-layers on a GPU; {request.engine} on "
                               f"{s.hw.id} keeps no layers in host memory to compute there")
        if request.num_devices != 1:
            raise RequestError("--gpu-layers splits a model between one GPU and the host: give one device")
    # the link also carries the weights streamed from host memory (--cpu-offload-gb)
    link = request.host_link_gbps and not request.cpu_offload_gb
    if (request.host_memory_gbps or link) and request.gpu_layers is None and not s.embedding_on_host:
        raise RequestError(f"--host-memory-gbps and --host-link-gbps describe the host of the layers llama.cpp keeps "
                           f"there (--gpu-layers) or of its embedding; {request.engine} on {s.hw.id} keeps nothing "
                           "in host memory")
    host = {"host_memory_bytes_per_s": request.host_memory_gbps * 1e9} if request.host_memory_gbps else {}
    if request.host_link_gbps:
        host["host_link_bytes_per_s"] = request.host_link_gbps * 1e9
    if request.cpu_offload_gb:  # vLLM's and SGLang's weights streamed from host memory
        host["offload_fraction"] = streamed_offload_fraction(s, request.cpu_offload_gb)
    if request.gpu_layers is not None:
        host["offload_fraction"] = gpu_layers_fraction(s, request.gpu_layers)
        host["host_layer_share"] = host_layer_share(s, request.gpu_layers)
    return replace(s, **host) if host else s


def _curve_batches(batch: int, limit: int) -> list[int]:
    top = min(max(batch, limit), CURVE_MAX_BATCH)
    points = {1 << i for i in range(11) if (1 << i) <= top} | {batch}
    if 0 < limit <= CURVE_MAX_BATCH:
        points.add(limit)
    return sorted(points)


def profile_setup(request: ProfileRequest, s: Setup, sp: Speculating | None = None) -> Profile:
    """The full analytic profile of a resolved setup, decoding speculatively as `sp` says."""
    spec, counts, hw = s.spec, s.counts, s.hw
    batch, context = request.batch, request.context
    prompt = request.prompt_tokens or context

    prefill = prefill_step(s, batch, prompt)
    prefill_s = prompts_prefill_s(s, batch, prompt)  # in the engine's chunks, one pass each
    decode = decode_step(s, batch, context)
    tpot_s = speculative_tpot_s(s, sp, batch, context)  # the decode step's, or a speculative step's per token
    first_step_s = first_token_step_s(s, batch, prompt)
    draft = speculation_bytes(s, sp, context)  # a draft's weights and cache per sequence beside the model's
    w_dev, kv_dev, act_dev = per_device_bytes(s, whole_sequences(s, batch), context, prompt)
    w_dev, kv_dev = w_dev + draft[0], kv_dev + whole_sequences(s, batch) / s.attention_dp * draft[1]
    per_device = w_dev + kv_dev + act_dev + s.runtime_bytes
    largest_batch = pooled_max_batch(s, context, prompt, draft=draft)
    curve = []
    for b in _curve_batches(batch, largest_batch):
        step_s = tpot_s if b == batch else speculative_tpot_s(s, sp, b, context)
        curve.append(ThroughputPoint(batch=b, tpot_ms=step_s * 1e3, tokens_per_s=b / step_s, fits=b <= largest_batch))

    attention_kv = kv_cache_elements(kv_groups(spec, s.layout), context, s.layout) * s.kv_bits / 8
    state = state_bytes(s)
    kv_one = attention_kv + state
    # the room a sequence takes in an engine's window pools, where more than it holds (`cache_bytes_per_device`)
    pooled = cache_bytes_per_device(s, context) / max(kv_bytes_per_device(s, context), 1e-9)
    warnings = list(spec.warnings) + ([outside] if (outside := release_warning(request.engine)) else []) + (
        [speculation_note(sp)] if sp else []) + (
        [caveat] if (caveat := kernel_rate_caveat(request.engine, s.weights.dtype, hw)) else [])
    concurrency = request.concurrency or 1
    # an engine whose router refuses requests past its in-flight limit (TGI) takes --max-running as that limit
    in_flight = engine_max_in_flight(request.engine)
    set_here = bool(in_flight and request.max_running)
    in_flight = request.max_running if set_here else in_flight
    if request.input_tokens and in_flight and concurrency != "max" and int(concurrency) > in_flight:
        warnings.append(f"{request.engine} refuses requests beyond {in_flight} in flight "
                        f"{'as set' if set_here else 'by default'} (--max-concurrent-requests): "
                        f"{int(concurrency) - in_flight} of the {concurrency} are refused; the request figures are "
                        f"those of the {in_flight} it serves")
        concurrency = in_flight
    fit = fits(s, batch, context, prompt, draft=draft)
    # what the engine may use of a device: all of it, or its share (vLLM runs within 0.9 of it)
    usable = w_dev + act_dev + s.runtime_bytes + cache_room(s, w_dev, act_dev + s.runtime_bytes)
    if fit and batch > largest_batch and sizes_cache_ahead(s):
        # the batch fits beside its own prompts' activations, not beside a whole prefill chunk's, which the engine sizes
        # its cache around (TGI's warm-up prefill of its token budget, vLLM's profiling run), nor in the cache an engine
        # sizes at start-up (TensorRT-LLM's, after its profiling run): as the curve counts it
        fit = False
        beside = (f"a {s.prefill_chunk_tokens:,}-token prefill chunk's activations" if s.prefill_chunk_tokens
                  else "its start-up profiling run")
        warnings.append(f"does not fit: beside the weights and {beside} the engine's cache holds {largest_batch:,} "
                        f"sequences of {context:,} tokens, not {batch:,}")
    elif not fit:
        which = "the share set" if request.memory_share is not None else "default share"
        share = "" if s.kv_memory is None else f" ({request.engine}'s {which} of {hw.memory_bytes / 1e9:.1f} GB)"
        warnings.append(f"does not fit: {per_device / 1e9:.1f} GB needed per device, {usable / 1e9:.1f} GB available"
                        f"{share}; " + (f"the weights alone take {w_dev / 1e9:.1f} GB: more devices (--gpus), fewer "
                                        "bits a weight (--dtype)" if w_dev > usable - act_dev - s.runtime_bytes else
                                        "the caches do not fit beside the weights: a smaller --batch or a shorter "
                                        "--context") + ", or `optiplan advise` to plan it")
    if s.tp > 1 and engine_splits_layers(request.engine):
        warnings.append(f"{request.engine} splits a model's layers over its devices by default; --tp {s.tp} predicts "
                        "its tensor-splitting mode (llama.cpp's --split-mode row, transformers' tp_plan) as "
                        "tensor-parallel shards with a serving engine's all-reduce costs, which no published point of "
                        "it checks")
    if engine_starts_with_full_context(request.engine) and s.kv_memory is not None:
        warnings.extend(startup_refusal(s, request.engine, context, prompt))
    comm = decode.comm_s / decode.time_s if decode.time_s else 0.0
    peak = s.peak_flops / 1e12  # the linear layers' peak (the engine's GEMM's own where it has one)
    kind = architecture_kind(spec)
    weights = canonical(request.dtype) if request.dtype else s.compute_dtype  # the format a calibration fitted
    bands = fitting_bands(accuracy_bands(hw, engine_runtime(request.engine), split_engine(request.engine)[0], kind,
                                         weights), fit)
    return Profile(
        request=request,
        model=model_summary(spec),
        hardware=HardwareSummary(
            id=hw.id, name=hw.name, num_devices=request.num_devices, tensor_parallel=s.tp, pipeline_parallel=s.pp,
            memory_per_device_bytes=hw.memory_bytes, unified_memory_bytes=hw.unified_memory_bytes,
            bandwidth_bytes_per_s=hw.memory_bandwidth_bytes_per_s,
            compute_dtype=s.compute_dtype, peak_tflops=peak, ridge_flops_per_byte=s.ridge,
        ),
        memory=MemoryBreakdown(
            weights_bytes=int(total_weight_bytes(s)), weights_bits_per_param=total_weight_bytes(s) * 8 / counts.total,
            kv_cache_bytes=int(kv_one),
            attention_kv_bytes=int(attention_kv) if spec.state is not None else None,
            state_bytes=int(state) if spec.state is not None else None,
            kv_cache_pool_bytes=int(kv_one * pooled) if pooled > 1 + 1e-9 else None,
            kv_cache_bytes_per_token=elements_per_token(spec, s.layout) * spec.attention_layers * s.kv_bits / 8,
            kv_cache_batch_bytes=int(kv_one * batch), activation_peak_bytes=int(act_dev),
            runtime_overhead_bytes=int(s.runtime_bytes), workspace_bytes=int(s.workspace_bytes),
            host_weights_bytes=int(host_weight_bytes(s)), draft_bytes=int(draft[0]),
            per_device_bytes=int(per_device),
            device_memory_bytes=hw.memory_bytes, headroom_bytes=int(usable - per_device),
            kv_cache_capacity_tokens=cache_capacity_tokens(s, context, draft=draft),
        ),
        compute=ComputeProfile(
            prefill_matmul_flops_per_token=matmul_flops(s, prompt, 1) / prompt,
            prefill_attention_flops_per_token=prefill_attention_flops(s, 1, prompt) / prompt,
            decode_matmul_flops_per_token=matmul_flops(s, 1, 1),
            decode_attention_flops_per_token=decode_attention_flops(s, 1, context),
            decode_bytes_per_step=decode.bytes_per_device,
            decode_arithmetic_intensity=decode.intensity(s.shards),
            prefill_arithmetic_intensity=prefill.intensity(s.shards),
            ridge_flops_per_byte=s.ridge, decode_bound=decode.bound, prefill_bound=prefill.bound,
        ),
        latency=LatencyProfile(
            # the prompts go in the engine's chunks where it chunks (as the request view's lone request does)
            ttft_ms=(prefill_s + first_step_s) * 1e3, tpot_ms=tpot_s * 1e3, prefill_tokens=prompt,
            first_token_step_ms=first_step_s * 1e3,
            allreduce_ms_per_layer=decode.comm_s / spec.num_layers * 1e3 if s.tp > 1 else 0.0,
            communication_share=comm,
        ),
        throughput=ThroughputProfile(
            tokens_per_s=batch / tpot_s, prefill_tokens_per_s=batch * prompt / prefill_s, curve=curve,
            max_batch=largest_batch, max_context=max_context(s, batch),
        ),
        efficiency=s.eff, fits=fit, warnings=warnings + ([] if bands else [missing_bands_reason(hw, kind, dtype=weights)]),
        requests=request_section(request, s, concurrency, sp),
        accuracy=bands,
    )


def profile(request: ProfileRequest, efficiency: EfficiencyFactors | None = None) -> Profile:
    """Predict memory, FLOPs, bytes and roofline latency for a model on a device. The Python API of
    `optiplan profile`."""
    spec = resolve_model(request.model)
    hw = resolve_hardware(request.hardware)
    request = with_weights(with_context(request, spec), spec, hw)
    s = setup_for_request(instance_request(request), spec, hw, efficiency)  # one instance's, where disaggregated
    draft = None
    if request.speculative == "draft":  # the draft model on the same devices, checked as its own request
        d = draft_request(request, s)
        draft = setup_for_request(d, resolve_model(d.model), hw, efficiency)
        if why := draft_refusal(s, draft):
            raise RequestError(why)
    sp = (Speculating(request.speculative, request.spec_tokens, request.acceptance, draft) if request.speculative
          else None)
    return profile_setup(request, s, sp)
