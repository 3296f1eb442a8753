"""What an engine's own configuration is predicted to do where it cannot run every step of the plan: the plan's
figures assume steps the engine has no option for (llama.cpp has neither fp8 weights nor tensor parallelism), so
its README gives the figures of the configuration it renders instead, and says where that does not fit."""

from __future__ import annotations

import shlex

from ..analytic.profile import GEMM_WEIGHTS, profile
from ..analytic.requests import cached_tokens
from ..catalog.engine_memory import engine_image_sampler
from ..catalog.engines import (
    deployed_engine,
    engine_api_servers_option,
    engine_fact,
    engine_pages_cache,
    engine_running_option,
    engine_runtime,
)
from ..catalog.hardware import resolve_hardware
from ..errors import OptiplanError
from ..schema import Profile, ProfileRequest
from ..schema.advice import Advice
from .checkpoints import checkpoint_dtype
from .config import EngineConfig, advice_model_ref, max_seqs


# the options a rendered configuration sets the engine's memory share with, where the engine sizes its cache from it
# (vLLM, SGLang, TensorRT-LLM: `profile --memory-share`)
MEMORY_SHARE_OPTIONS = ("gpu-memory-utilization", "mem-fraction-static", "kv_cache_free_gpu_memory_fraction")
# ... and the environment that sets it where no option does (TGI's share: 1.0 x TGI_WIGGLE_ROOM)
MEMORY_SHARE_ENV = ("TGI_WIGGLE_ROOM",)


def configuration_request(advice: Advice, cfg: EngineConfig) -> ProfileRequest | None:
    """The profile request of the configuration `cfg` renders, where it leaves steps of the plan out
    (`served_request`); None: every step applies (the plan's figures are the configuration's)."""
    missing = {t for t, _ in cfg.not_applied}
    return served_request(advice, cfg, missing) if missing else None


def served_request(advice: Advice, cfg: EngineConfig, missing: set[str]) -> ProfileRequest:
    """The profile request of what the configuration `cfg` serves without the plan's steps `missing`: the weights as
    the engine serves them (its own file where it names one, else the checkpoint's format where the plan's weight
    step is left out, with the plan's quantized activations where it is not), the cache in its default format where
    the plan's cache step is left out, the engine's own way over several devices where tensor parallelism is; each
    server's sequences under the running cap, step budget, memory share and front-end processes the configuration
    sets (SGLang's prompt chunks in the decode steps among them), the weights it keeps in host memory, its prefill and
    decode instances where it runs them apart, the workload's lengths, the share of each prompt the plan's prefix cache
    finds (every serving engine's default), and the plan's speculative decoding where the configuration runs it."""
    p, w = advice.plan.predicted, advice.workload
    hw = resolve_hardware(advice.hardware.id)
    dtype, activations = cfg.served.get("dtype"), None
    if dtype is None:
        native = checkpoint_dtype(advice) or ("bf16" if hw.features.bf16 else "fp16")
        dtype = native if any(t.startswith("weight-") for t in missing) else p.weight_dtype or native
        # the plan's quantized activations where the engine serves the plan's weights (W8A8: int8 matrix products,
        # not int8 weights read into 16-bit ones)
        if dtype == p.weight_dtype and dtype in GEMM_WEIGHTS.get(p.compute_dtype, ()):
            activations = p.compute_dtype
    # one server: a replica of the plan, or all the devices where the engine runs no replicas
    replicas = 1 if "data-parallel" in missing else max(p.data_parallel, 1)
    devices = max(advice.hardware.count // replicas, 1)
    split = not missing & {"tensor-parallel", "pipeline-parallel", "data-parallel", "expert-parallel",
                           "expert-parallel-tp-attention"}
    adp = p.attention_data_parallel if split else 1
    sequences = max_seqs(advice)  # each server's, as its options set them (--max-num-seqs, --parallel)
    # prefill and decode instances apart (serve.sh's roles): all of them, the workload's requests among them
    pd = cfg.pd if "pd-disaggregation" not in missing else None
    if pd:
        devices = (pd[0] + pd[1]) * pd[2]
    # llama.cpp's layers left in host memory where the config offloads (--n-gpu-layers below the model's layers)
    on_gpu = cfg.options.get("n-gpu-layers") if cfg.engine == "llama.cpp" and hw.kind == "gpu" and devices == 1 \
        else None
    release = deployed_engine(cfg.engine, hw)  # the release of the image the configs run, as the plan was priced
    # the step budget the plan chunks prompts at, where the configuration turns chunking on (TensorRT-LLM's
    # enable_chunked_prefill with max_num_tokens; the others' own budget, which they chunk at by default)
    chunked = next((s.params.get("prefill_chunk_tokens") for s in advice.plan.steps if s.technique == "chunked-prefill"
                    and s.technique not in missing), None)
    # the workload's shared prefix, found in the cache where the plan keeps one (as the plan prices it)
    applied = {s.technique for s in advice.plan.steps} - missing
    # the plan's speculation where the configuration runs it, at the plan's acceptance
    spec = next((s for s in advice.plan.steps if s.technique.startswith("spec-") and s.technique in applied), None)
    speculation = {} if spec is None else {
        "speculative": spec.technique.removeprefix("spec-"), "spec_tokens": spec.params["num_speculative_tokens"],
        "acceptance": spec.params["expected_acceptance"],
        "draft_model": spec.params.get("draft_model") if spec.technique == "spec-draft" else None}
    cached = cached_tokens(w.prompt_tokens_mean, w.shared_prefix_fraction) if "prefix-caching" in applied else 0
    servers = adp * (p.api_servers_per_rank if "api-server-scale-out" in applied else 1)
    return ProfileRequest(
        model=advice_model_ref(advice), hardware=hw.id, num_devices=devices, engine=release,
        sampler=engine_image_sampler(release, hw),  # the image's (vLLM's before 0.12: FlashInfer's)
        dtype=dtype, activations=activations,
        gguf_type=cfg.served.get("gguf_type"),
        kv_dtype=None if any(t.startswith("kv-") for t in missing) or p.kv_dtype in ("", "bf16", "fp16", "fp32")
        else p.kv_dtype,
        tensor_parallel=p.tensor_parallel if split and adp == 1 else None, attention_data_parallel=adp,
        expert_parallel=p.expert_parallel if split else 1, pipeline_parallel=p.pipeline_parallel if split else 1,
        batch=sequences, context=w.context_needed, input_tokens=w.prompt_tokens_mean,
        output_tokens=w.output_tokens_mean, concurrency=w.concurrency if pd else sequences,
        prefill_instances=pd[0] if pd else None,
        max_running=configured_running_cap(cfg, sequences, adp), prefill_chunk_tokens=chunked,
        # SGLang's --enable-mixed-chunk
        mixed_chunk="mixed-chunk" in applied, cached_tokens=cached, **speculation,
        # a server of data-parallel attention ranks started with a front-end process per rank (--api-server-count), or
        # with the plan's more per rank where the configuration starts them (its api-server-scale-out)
        api_servers=servers if servers > 1 and cfg.sets(engine_api_servers_option(cfg.engine)) else None,
        gpu_layers=on_gpu if on_gpu is not None and on_gpu <= advice.model.num_layers else None,
        # the weights vLLM and SGLang keep in host memory (--cpu-offload-gb), as the configuration rounds them
        cpu_offload_gb=float(gib) if (gib := cfg.sets(engine_fact(cfg.engine, "cpu_offload_option"))) else None,
        # the share the configuration sets (raised where the plan needs more than the engine's default)
        memory_share=next((float(cfg.options[k]) for k in MEMORY_SHARE_OPTIONS if k in cfg.options),
                          next((float(cfg.env[k]) for k in MEMORY_SHARE_ENV if k in cfg.env), None))
        if hw.kind == "gpu" else None)


def configured_running_cap(cfg: EngineConfig, sequences: int, groups: int) -> int | None:
    """The running cap the configuration sets, as `profile --max-running` takes it: a serving engine's option for it
    (vLLM's --max-num-seqs, SGLang's --max-running-requests, TensorRT-LLM's max_batch_size: each server's sequences,
    per data-parallel attention group), or the in-flight limit of a router that refuses past it (TGI's
    --max-concurrent-requests, as rendered). None where the configuration sets neither (the engine's default holds)
    or the engine runs the batch it is given (llama.cpp's slots are the profile's batch)."""
    if engine_runtime(cfg.engine) != "serving":
        return None
    in_flight = cfg.sets(engine_fact(cfg.engine, "max_in_flight_option"))
    if in_flight is not None:
        return int(in_flight)
    return -(-sequences // groups) if cfg.sets(engine_running_option(cfg.engine)) is not None else None


def configuration_profile(advice: Advice, cfg: EngineConfig) -> tuple[ProfileRequest, Profile | str] | None:
    """The request of the configuration `cfg` renders and its profile (or why none could be made), where the
    configuration leaves steps of the plan out; None where it runs them all."""
    request = configuration_request(advice, cfg)
    if request is None:
        return None
    try:
        return request, profile(request)
    except OptiplanError as exc:
        return request, str(exc)


def configured(advice: Advice, cfg: EngineConfig) -> dict | None:
    """What a README and `configs` say of the configuration `cfg` renders where it leaves steps of the plan out (None
    where it runs them all): the profile command, the profile (or why none could be made), whether it holds the
    workload, and the warning where it does not."""
    found = configuration_profile(advice, cfg)
    if found is None:
        return None
    request, result = found
    fits = not isinstance(result, str) and configuration_fits(result)
    warning = None
    if not fits and not isinstance(result, str):
        mem = result.memory
        warning = (f"{cfg.engine}: its configuration does not fit ({mem.per_device_bytes / 1e9:.1f} GB per device of "
                   f"{mem.device_memory_bytes / 1e9:.1f} GB) without the steps it cannot run; see its README")
    return {"command": profile_command(request), "profile": result, "fits": fits, "warning": warning}


def configuration_fits(profile_: Profile) -> bool:
    """Whether the configuration holds its sequences: each at the workload's longest where the engine reserves its
    cache whole at start-up (llama.cpp's --ctx-size), their mean use where it pages it."""
    requests_fit = profile_.requests is None or profile_.requests.fits
    return requests_fit and (profile_.fits or engine_pages_cache(profile_.request.engine))


def profile_command(request: ProfileRequest) -> str:
    """The `optiplan profile` command that predicts `request`."""
    parts = [f"optiplan profile {shlex.quote(request.model)} -H {request.hardware} --gpus {request.num_devices}",
             f"--engine {request.engine} --dtype {request.dtype}"]
    if request.activations:
        parts.append(f"--activations {request.activations}")
    if request.gguf_type:
        parts.append(f"--gguf-type {request.gguf_type}")
    if request.kv_dtype:
        parts.append(f"--kv-dtype {request.kv_dtype}")
    if request.tensor_parallel:
        parts.append(f"--tp {request.tensor_parallel}")
    if request.pipeline_parallel > 1:
        parts.append(f"--pp {request.pipeline_parallel}")
    if request.attention_data_parallel > 1:
        parts.append(f"--attention-dp {request.attention_data_parallel}")
    if request.expert_parallel > 1:
        parts.append(f"--ep {request.expert_parallel}")
    if request.gpu_layers is not None:
        parts.append(f"--gpu-layers {request.gpu_layers}")
    if request.prefill_instances is not None:
        parts.append(f"--prefill-instances {request.prefill_instances}")
    if request.cpu_offload_gb is not None:
        parts.append(f"--cpu-offload-gb {request.cpu_offload_gb:g}")
    if request.memory_share is not None:
        parts.append(f"--memory-share {request.memory_share:g}")
    if request.sampler is not None:
        parts.append(f"--sampler {request.sampler}")
    if request.prefill_chunk_tokens is not None:
        parts.append(f"--prefill-chunk {request.prefill_chunk_tokens}")
    if request.mixed_chunk:
        parts.append("--mixed-chunk")
    if request.max_running is not None:
        parts.append(f"--max-running {request.max_running}")
    if request.api_servers is not None:
        parts.append(f"--api-servers {request.api_servers}")
    parts.append(f"--context {request.context} --input-tokens {request.input_tokens} --output-tokens "
                 f"{request.output_tokens} --concurrency {request.concurrency}")
    if request.cached_tokens:
        parts.append(f"--cached-tokens {request.cached_tokens}")
    if request.speculative:
        parts.append(f"--speculative {request.speculative}" + (f" --draft {request.draft_model}" if request.draft_model
                                                               else "")
                     + f" --spec-tokens {request.spec_tokens} --acceptance {request.acceptance:g}")
    return " ".join(parts)
