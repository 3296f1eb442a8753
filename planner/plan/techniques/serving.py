"""Attention kernels and serving-engine features: lossless, so the search adds them whenever they
are valid (`always_on`; the leading stacks are tried without those the engine does not run by default), and the
step-by-step prediction still shows what each one gains."""

from __future__ import annotations

import math

from ...analytic.efficiency import prefill_chunk_tokens
from ...catalog.engines import (
    below_compute_capability,
    device_fact,
    engine_api_servers_option,
    engine_chunk_budget,
    engine_fact,
    engine_mixes_prefill,
)
from ...catalog.engine_refusals import pipeline_refusal
from ...catalog.kernels import triton_attention
from ..bottleneck import FRONT_END_MARGIN, front_end_bind
from ..predict import evaluate
from ..state import PlanState, to_setup
from . import Applied, Combines, Context, Option, Technique, register


def _prefills_apart(ctx: Context) -> str | None:
    """Refused where the engine already puts prompt chunks in its decode steps."""
    if engine_mixes_prefill(ctx.workload.engine):
        return f"{ctx.workload.engine} already puts prompt chunks in its decode steps"
    return None


def _no_shared_prefix(ctx: Context) -> str | None:
    if ctx.workload.shared_prefix_fraction <= 0:
        return "the workload's prompts share no prefix (shared_prefix_fraction is 0)"
    return None


def _compiles_once(ctx: Context) -> str | None:
    """Refused where transformers' static cache holds some layers as windows: the decode step it compiles would
    recompile at every token (`optimizers.compile.WINDOW_RECOMPILES`)."""
    if kind := ctx.spec.windowed_cache_layers:
        return (f"transformers' static cache keeps a window layer's length as a Python int, which torch.compile "
                f"specialises on, so the compiled decode step recompiles at every token; {ctx.spec.name} has {kind}")
    return None


# llama.cpp's flash attention (`--flash-attn`) has kernels for each of its backends, Metal and CPU included
# (ggml's FLASH_ATTN_EXT op: ggml-org/llama.cpp PR #5021 and the Metal, CUDA and CPU kernels that followed)
LLAMA_CPP_FA_BACKENDS = ("cuda", "rocm", "metal", "cpu")


def _attends(ctx: Context) -> str | None:
    """Refused for a pure state-space model (Mamba, RWKV): it has no attention layer; and where the engine has no
    FlashAttention kernel for the device (FlashAttention-2 needs an Ampere-class GPU; llama.cpp's runs everywhere)."""
    if ctx.spec.layer_mixers and not ctx.spec.attention_layers:
        return (f"{ctx.spec.name} has no attention layer: "
                "there is no attention for a FlashAttention kernel to run")
    hw = ctx.hw
    if ctx.workload.engine == "llama.cpp":
        if hw.features.backend in LLAMA_CPP_FA_BACKENDS:
            return None
        return f"llama.cpp has no flash-attention kernel for {hw.id} ({hw.features.backend})"
    if hw.kind != "gpu":
        return f"{hw.id} is not a GPU"
    if hw.features.flash_attention < 2:
        return (f"FlashAttention-2 needs compute capability 8.0 or newer; {hw.id} has compute capability "
                f"{hw.features.compute_capability or '?'}")
    return None


def _ours(ctx: Context):
    """optiplan's Triton attention where it measured at least as fast as flash-attn on this GPU (transformers)."""
    return triton_attention(ctx.hw, ctx.workload.engine)


def _mla_kernel(ctx: Context) -> str:
    """The MLA attention kernel the engine runs on this device. vLLM's choice by device (vllm/platforms/cuda.py, the
    0.10-era stored copy: "if selected_backend == _Backend.CUTLASS_MLA or (cls.is_device_capability(100) ... and
    block_size == 128)" / "if selected_backend == _Backend.TRITON_MLA or block_size != 64: ... Using Triton MLA
    backend" / "is_flashmla_supported()", FlashMLA being Hopper's; vllm/platforms/rocm.py: "ROCM_AITER_MLA if
    rocm_aiter_ops.is_mla_enabled() ... else TRITON_MLA"); SGLang's on Blackwell (python/sglang/srt/server_args.py,
    stored copies: "self.attention_backend = \"trtllm_mla\"" / "Use trtllm_mla as attention backend on sm100 for
    DeepseekV3ForCausalLM"), elsewhere among the same families; TensorRT-LLM runs its own."""
    hw, engine = ctx.hw, ctx.workload.engine
    if engine == "trtllm":
        return "TensorRT-LLM's own MLA attention kernels"
    if hw.features.backend == "rocm":
        return "the engine's MLA attention on ROCm (AITER MLA, or Triton MLA)"
    if below_compute_capability(hw, 9.0):
        return (f"the engine's MLA attention in Triton{' (TRITON_MLA)' if engine == 'vllm' else ' or FlashInfer'}: "
                f"FlashMLA needs Hopper and {hw.id} has compute capability {hw.features.compute_capability}")
    if below_compute_capability(hw, 10.0):
        return "FlashMLA, vLLM's MLA attention on Hopper" if engine == "vllm" else \
            "the engine's MLA attention on Hopper (FlashAttention-3 or FlashMLA)"
    if not below_compute_capability(hw, 11.0):  # SM120 (RTX 50, RTX PRO 6000): neither Hopper's nor SM100's kernels
        return (f"the engine's MLA attention in Triton or FlashInfer: FlashMLA is Hopper's and CUTLASS MLA SM100's, and "
                f"{hw.id} has compute capability {hw.features.compute_capability}")
    if engine == "sglang" and ctx.spec.model_type == "deepseek_v3":
        return "trtllm_mla, SGLang's MLA attention on Blackwell for DeepSeek-V3/R1 (TensorRT-LLM's kernels through FlashInfer)"
    return "the engine's MLA attention on Blackwell (CUTLASS MLA or FlashInfer MLA)"


def _scale_out(state: PlanState, ctx: Context) -> PlanState:
    """The fewest front-end processes per data-parallel rank, up to the engine's `api_servers_scale_out_max`, with
    which its front end no longer bounds the requests a server completes (`bottleneck.front_end_bind`: within
    FRONT_END_MARGIN of what its device alone serves): the cap they put on a server grows with their count, what its
    device alone serves does not; unchanged where the front end does not bind (the step comes after every step that
    speeds the device: its family's place in the plan order)."""
    most = engine_fact(state.engine, "api_servers_scale_out_max") or 1
    if not engine_api_servers_option(state.engine) or state.api_servers_per_rank >= most:
        return state
    # the workload's own batch (`fill=False`): front_end_bind searches the batch the device alone serves best
    bind = front_end_bind(state, to_setup(state), evaluate(state, ctx.workload, full=False, fill=False), ctx.workload)
    if bind is None:
        return state
    paced, device, _ = bind
    needed = math.ceil(state.api_servers_per_rank * device * (1 - FRONT_END_MARGIN) / paced - 1e-9)
    return state.with_(api_servers_per_rank=min(max(needed, state.api_servers_per_rank + 1), most))


def _flash_params(ctx: Context) -> dict:
    if ctx.workload.engine == "llama.cpp":
        return {"kernel": f"llama.cpp --flash-attn on {ctx.hw.features.backend}"}
    if ctx.spec.mla is not None and ctx.workload.engine != "transformers":
        # latent attention runs the engines' MLA kernels, not FlashAttention's (profiles/engines/vllm.yaml)
        return {"kernel": _mla_kernel(ctx)}
    if shares := _ours(ctx):
        return {"implementation": "triton", "measured": f"{shares.prefill_attention:.0%} of bf16 peak in prefill, "
                                                         f"{shares.decode_attention:.0%} of HBM in decode: {shares.source}"}
    # the engine's own kernel where it is not FlashAttention: by backend (vLLM's Triton attention on ROCm), or for
    # attention sinks on older GPUs (vLLM's Triton attention for gpt-oss before Hopper)
    if kernel := (engine_fact(ctx.workload.engine, "attention_kernel_by_backend") or {}).get(ctx.hw.features.backend):
        return {"kernel": kernel}
    sinks = engine_fact(ctx.workload.engine, "attention_kernel_sinks")
    if sinks and ctx.spec.attention_sinks and ctx.hw.features.backend == "cuda" and \
            below_compute_capability(ctx.hw, sinks["below_compute_capability"]):
        return {"kernel": sinks["kernel"]}
    # a device rule's kernel where it is not FlashAttention (SGLang's FlashInfer before Hopper)
    if kernel := device_fact(ctx.workload.engine, ctx.hw, "attention_kernel"):
        return {"kernel": kernel}
    blackwell = ctx.hw.features.backend == "cuda" and not below_compute_capability(ctx.hw, 10.0)
    if ctx.hw.features.flash_attention >= 3 and blackwell:
        # FlashAttention-3 is Hopper's; on Blackwell vLLM puts FlashInfer first (profiles/engines/vllm.yaml) and
        # SGLang and TensorRT-LLM run their own kernels
        return {"kernel": "the engine's Blackwell attention (FlashInfer or TensorRT-LLM's kernels; FlashAttention-3 "
                          "is Hopper's)"}
    return {"version": 3 if ctx.hw.features.flash_attention >= 3 else 2}


register(
    Technique(
        id="flash-attention", engines=("vllm", "sglang", "tgi", "trtllm", "transformers", "llama.cpp"),
        name="FlashAttention kernels", family="attention", group="attention-kernel",
        summary="Tiled, fused attention: no score matrix in memory and most of the tensor cores' peak "
                "(FlashAttention-2 reaches 50-73% of A100 peak, FlashAttention-3 75% of H100).",
        transform=lambda s, c: s.with_(attention="triton" if _ours(c) else "flash"), check=_attends,
        always_on=True,  # serving engines bundle their kernels; transformers needs flash-attn for FlashAttention-2
        params=_flash_params,
        apply=Applied("attention:swap_attention", changes_model=True,  # the kernel is set on the model itself
                      options=(("implementation", Option(str, "attention kernel", choices=(
            "auto", "sdpa", "eager", "flex", "flex_attention", "flash", "flash_attention_2", "custom", "optiplan",
            "triton"))),))),  # triton: optiplan's kernels, CUDA (CPU only under TRITON_INTERPRET=1, for tests)
    Technique(
        id="paged-kv", engines=("vllm", "sglang", "tgi", "trtllm", "transformers"),
        name="Paged KV cache with continuous batching", family="serving", group=None,
        summary="Cache blocks allocated as sequences grow (under 4% waste instead of reserving the longest "
                "sequence per slot), and sequences join and leave the batch at every step.",
        transform=lambda s, c: s.with_(paged_kv=True, continuous_batching=True), always_on=True,
        quality_source="lossless; vLLM (arXiv 2309.06180): earlier systems used 20-38% of KV memory for tokens",
        # the engine's own names for its parameters are in its profile (`options`); the page size stays the engine's
        params=lambda c: {"max_running": c.workload.concurrency},
        apply=Applied("batching:continuous_batching", aim=("batched_tokens_per_s", "higher"),
                      options=(("concurrency", Option(int, "requests served together", low=1, high=4096)),
                               ("max_running", Option(int, "the same, as the plan names it", low=1, high=4096)),
                               # a plan saved before the neutral names (vLLM's): its sequences still apply
                               ("max_num_seqs", Option(int, "the same, as older plans name it", low=1, high=4096)),
                               ("max_tokens", Option(int, "prompt + output tokens per request", low=1, high=1 << 20)),
                               ("block_size", Option(int, "tokens per cache block", low=1, high=4096)))),
        combines={"transformers": Combines(cache="paged")}),  # generate_batch's own paged cache
    Technique(
        id="chunked-prefill", engines=("vllm", "sglang", "tgi", "trtllm"),
        name="Chunked prefill", family="serving", requires=("paged-kv",), after=("paged-kv",),
        summary="Long prompts prefilled in chunks mixed with decode steps: activation memory bounded and decode "
                "steps not stalled by a long prefill.",
        transform=lambda s, c: s.with_(chunked_prefill=True), always_on=True,
        # the budget of a server, over the devices it runs on (TGI computes its own from them), as the plan prices it
        predicted_params=lambda c, p: {"prefill_chunk_tokens": engine_chunk_budget(
            c.workload.engine, prefill_chunk_tokens("serving"), c.hw, p.tensor_parallel * p.pipeline_parallel,
            c.spec)}),
    Technique(
        id="mixed-chunk", engines=("sglang",),
        name="Prompt chunks in the decode steps", family="serving", requires=("chunked-prefill",),
        after=("chunked-prefill",),
        # SGLang turns it off under every speculative method: python/sglang/srt/server_args.py (stored copies of the
        # 0.5 series) — "if self.enable_mixed_chunk: self.enable_mixed_chunk = False logger.warning("Mixed chunked
        # prefill is disabled because of using eagle speculative decoding.")" (EAGLE, EAGLE3, STANDALONE; NGRAM: "The
        # overlap scheduler and mixed chunked prefill are disabled because of using ngram speculative decoding.")
        conflicts=("spec-draft", "spec-eagle3", "spec-mtp", "spec-ngram"),
        summary="SGLang runs a waiting prompt first, in steps of its own, and every running sequence waits for them; "
                "with --enable-mixed-chunk the chunks ride in the decode steps instead: one pass reads the weights "
                "for both, at the cost of the prompt's first token sharing its steps with the decoding.",
        # with pipeline stages SGLang refuses it (pipeline_refusal): the step changes nothing there
        transform=lambda s, c: s if pipeline_refusal(c.release_engine, s.pp, "mixed_chunk") else s.with_(
            mixed_prefill=True), check=_prefills_apart,
        unchanged="the plan runs pipeline stages, with which SGLang starts no mixed chunks",
        effect_source="rule: the analytic model's steps; SGLang's scheduler (python/sglang/srt/managers/scheduler.py, "
                      "get_next_batch_to_run: 'Run prefill first if possible'), its GPUStack bursts' TPOTs "
                      "(profiles/engines/sglang.yaml: mixed_prefill)",
        params=lambda c: {"enable_mixed_chunk": True}),
    Technique(
        id="prefix-caching", engines=("vllm", "sglang", "tgi", "trtllm", "llama.cpp"),
        name="Prefix caching", family="serving", requires=("paged-kv",), after=("paged-kv",),
        summary="Cache blocks of shared prompt prefixes (system prompts, conversation history) reused across "
                "requests: only the new part of a prompt is prefilled.",
        transform=lambda s, c: s.with_(prefix_caching=True), always_on=True, check=_no_shared_prefix,
        params=lambda c: {"expected_hit_rate": c.workload.shared_prefix_fraction}),
    Technique(
        id="api-server-scale-out", engines=("vllm",),
        name="More API server processes", family="front end",
        summary="Several API server processes take the requests of each engine core (vLLM's --api-server-count, one "
                "HTTP port still): the tokenising, detokenising and streaming each request costs on the host is "
                "spread over them, where one process caps the requests a server completes below what its device "
                "serves. Each process wants a physical core of its own.",
        transform=_scale_out,
        unchanged="the engine's front end does not bound the requests a server completes: its device does",
        effect_source="rule: the analytic model's front end (profiles/engines/vllm.yaml request_host_s, fitted to "
                      "GPUStack's vLLM bursts) shared over the processes; vLLM's docs/configuration/optimization.md: "
                      "'You can run input processing in parallel via API server scale-out ... useful when input "
                      "processing ... becomes a bottleneck compared to model execution'",
        predicted_params=lambda c, p: {"api_servers_per_rank": p.api_servers_per_rank}),
    Technique(
        id="cuda-graphs", engines=("vllm", "sglang", "tgi", "trtllm"),
        name="CUDA graphs", family="compilation", group="compilation",
        summary="Decode steps captured once and replayed: Python and kernel-launch cost per layer removed.",
        transform=lambda s, c: s.with_(graphs=True), hardware=("cuda-or-rocm",), always_on=True),
    Technique(
        id="torch-compile", engines=("transformers",),
        name="torch.compile of the forward pass", family="compilation", group="compilation",
        summary="The forward pass compiled with a static cache: fused kernels, no per-layer Python overhead.",
        transform=lambda s, c: s.with_(graphs=True), after=("spec-draft", "spec-ngram"),
        packages=("torch",), check=_compiles_once,
        quality_source="lossless up to floating-point reassociation",
        params=lambda c: {"mode": "reduce-overhead" if c.hw.kind == "gpu" else "default",
                          "cache_implementation": "static"},
        apply=Applied("compile:compile_forward",
                      options=(("mode", Option(str, "torch.compile mode", choices=("default", "reduce-overhead", "max-autotune"))),
                               ("cache_implementation", Option(str, "the cache compiled over", choices=("static",))))),
        combines={"transformers": Combines(cache="static")}),
    family="serving")
