"""vLLM: each plan step mapped to its server option for the version in
`profiles/engine_options/`, or the reason it has none."""

from __future__ import annotations

import math
from typing import Any

from ..analytic.kvcache import kv_cache_bytes
from ..catalog.engines import engine_fact, kv_fp8_storage
from ..catalog.expert_dispatch import dispatch_note
from ..schema import HardwareSpec
from ..schema.advice import Advice, Prediction
from .checkpoints import eagle_head, experts_whole_option
from .config import (
    PORT,
    DeployError,
    EngineConfig,
    advice_spec,
    context_note,
    data_parallel_ranks,
    dtype16,
    engine_memory_share,
    held_memory,
    max_seqs,
    memory_fraction,
    memory_note,
    model_reference,
    no_option,
    offload_gib,
    plan_steps,
    served_context,
)


# the cache a CPU server is given holds this much more than the plan's sequences need
CPU_CACHE_SPARE = 1.1


def _cpu_cache(cfg: EngineConfig, advice: Advice) -> None:
    """vLLM's CPU backend reads no --gpu-memory-utilization: its cache is VLLM_CPU_KVCACHE_SPACE GiB
    (`cpu_cache_space` in its profile). Sized, with a tenth to spare, for the longer of one sequence of
    --max-model-len (the server refuses to start without room for it) and the plan's sequences at the workload's
    mean context."""
    p, w = advice.plan.predicted, advice.workload
    spec, shards = advice_spec(advice), p.tensor_parallel * p.pipeline_parallel
    one = kv_cache_bytes(spec, w.mean_context, p.kv_dtype) / shards
    need = max(kv_cache_bytes(spec, served_context(advice, "vllm"), p.kv_dtype) / shards, max_seqs(advice) * one)
    gib = max(1, math.ceil(need * CPU_CACHE_SPARE / 2**30))
    env = engine_fact("vllm", "cpu_cache_space")["env"]
    cfg.options.pop("gpu-memory-utilization")
    cfg.env[env] = str(gib)
    cfg.cache_holds = int(gib * 2**30 // one)
    cfg.notes.append(f"{env}={gib}: the cache's GiB on a CPU, where vLLM reads no --gpu-memory-utilization (unset, "
                     f"it takes 4 GiB, or half a NUMA node's RAM in later releases; source: "
                     f"{engine_fact('vllm', 'cpu_cache_space_source').split(' — ')[0]}): one --max-model-len sequence "
                     f"or the plan's {max_seqs(advice)} at the mean context, with a tenth to spare")


# Model types vLLM refuses to run in float16 (vllm/config/model.py _FLOAT16_NOT_SUPPORTED_MODELS: "gemma2",
# "gemma3", "gemma3_text": "Numerical instability. Please use bfloat16 or float32.")
FLOAT16_REFUSED = ("gemma2", "gemma3", "gemma3_text")


def engine_config(advice: Advice, hw: HardwareSpec) -> EngineConfig:
    p = advice.plan.predicted
    if dtype16(hw) == "float16" and advice.model.model_type in FLOAT16_REFUSED:
        raise DeployError(f"vLLM refuses to run {advice.model.model_type} models in float16 (numerical instability), "
                          f"and {hw.id} has no bfloat16: float32 would hold twice the weights the plan priced; serve "
                          "it with another engine, or on a GPU with bfloat16")
    cfg = EngineConfig("vllm", model_reference(advice), ["vllm", "serve"], positional_model=True)
    o = cfg.options
    o.update({"host": "0.0.0.0", "port": PORT, "served-model-name": advice.model.name, "dtype": dtype16(hw),
              "tensor-parallel-size": p.tensor_parallel, "pipeline-parallel-size": p.pipeline_parallel,
              # --max-num-seqs holds per data-parallel rank (docs/serving/data_parallel_deployment.md)
              "max-model-len": served_context(advice, "vllm"),
              "max-num-seqs": -(-max_seqs(advice) // p.attention_data_parallel),
              "gpu-memory-utilization": memory_fraction(advice, "vllm", engine_memory_share(advice, "vllm", hw))})
    cfg.notes.append(context_note(advice, "vllm", "--max-model-len"))
    if hw.kind == "cpu":
        _cpu_cache(cfg, advice)
    elif note := memory_note(advice, "vllm", "--gpu-memory-utilization"):
        cfg.notes.append(note)
    else:
        held_memory(cfg, advice, "--gpu-memory-utilization", "device", hw)
    # AWQ and GPTQ run on the Marlin kernels from Ampere on; naming plain `awq`/`gptq` forces vLLM's slow path
    # ("Use quantization=awq_marlin for faster inference", profiles/engines/vllm.yaml)
    marlin = hw.features.backend == "cuda" and float(hw.features.compute_capability or 0) >= 8.0
    quant = {"weight-fp8": "fp8", "weight-int4-awq": "awq_marlin" if marlin else "awq",
             "weight-int4-gptq": "gptq_marlin" if marlin else "gptq", "weight-nf4": "bitsandbytes",
             "weight-fp4": "modelopt_fp4", "weight-w8a8-int8": "compressed-tensors", "weight-int8": "compressed-tensors"}
    for t_id, step in plan_steps(advice).items():
        if t_id in quant:
            o["quantization"] = quant[t_id]
            how = f"--quantization {quant[t_id]}"
            cfg.applied.append((t_id, how))
        elif t_id == "kv-fp8":
            o["kv-cache-dtype"] = "fp8"
            cfg.applied.append((t_id, "--kv-cache-dtype fp8"))
            if env := _kv_fp8_env(hw):  # FlashInfer's kernel reads it (the default FlashAttention 2 refuses it)
                cfg.env.update(env)
                cfg.notes.append(f"kv-fp8 on {hw.id} (compute capability {hw.features.compute_capability}): "
                                 "VLLM_ATTENTION_BACKEND=FLASHINFER, whose kernel reads an fp8 cache; vLLM's default "
                                 "FlashAttention backend takes one only on Hopper (FlashAttention 3) and SM100, and without it "
                                 "the server falls back to its V0 engine")
        elif t_id == "tensor-parallel":
            cfg.applied.append((t_id, f"--tensor-parallel-size {p.tensor_parallel} --pipeline-parallel-size "
                                      f"{p.pipeline_parallel}" + experts_whole_option("vllm", o, p)))
        elif t_id == "pipeline-parallel":
            cfg.applied.append((t_id, f"--pipeline-parallel-size {p.pipeline_parallel}"))
        elif t_id == "data-parallel":
            # a MoE model's data-parallel ranks share its experts (one tensor-parallel group of them over all ranks):
            # the plan holds them as data-parallel attention groups
            ranks = data_parallel_ranks(p)
            o.update({"data-parallel-size": ranks, "api-server-count": ranks * p.api_servers_per_rank})
            cfg.applied.append((t_id, f"--data-parallel-size {ranks} with --tensor-parallel-size {p.tensor_parallel} "
                                      f"--api-server-count {ranks * p.api_servers_per_rank} (each rank schedules its "
                                      f"own --max-num-seqs and takes its requests through {own_servers(p)}" +
                                ("; the experts one tensor-parallel group over all "
                                 f"{ranks * p.tensor_parallel} GPUs)" if p.attention_data_parallel > 1
                                 and p.expert_parallel == 1 else ")") + experts_whole_option("vllm", o, p)))
        elif t_id in ("expert-parallel", "expert-parallel-tp-attention"):
            # vLLM's expert-parallel group is tensor x data parallel: the experts split over every device
            o.update({"tensor-parallel-size": p.tensor_parallel, "enable-expert-parallel": True})
            servers = p.attention_data_parallel * p.api_servers_per_rank
            if p.attention_data_parallel > 1:
                o.update({"data-parallel-size": p.attention_data_parallel, "api-server-count": servers})
                cfg.notes.append(dispatch_note("vllm", hw))
            cfg.applied.append((t_id, f"--enable-expert-parallel with --tensor-parallel-size {p.tensor_parallel}"
                                + (f" --data-parallel-size {p.attention_data_parallel} --api-server-count "
                                   f"{servers}" if p.attention_data_parallel > 1 else "")))
        elif t_id == "pd-disaggregation":  # the plan's instances, each prefilling and decoding its own requests
            o["data-parallel-size"] = p.data_parallel
            cfg.not_applied.append((t_id, no_option("vLLM", t_id) + f"; serves {p.data_parallel} replicas of "
                                          f"{p.tensor_parallel} GPU(s) that prefill and decode (--data-parallel-size)"))
        elif t_id == "paged-kv":  # the page size stays vLLM's own: its MLA and hybrid backends pick theirs
            cfg.applied.append((t_id, "always on in vLLM (PagedAttention); --max-num-seqs sized from the KV capacity"
                                if advice.model.attention != "none" else
                                "no attention KV to page: vLLM's cache holds each sequence's fixed state; "
                                "--max-num-seqs sized from the states it holds"))
        elif t_id == "chunked-prefill":
            o["enable-chunked-prefill"] = True
            o["max-num-batched-tokens"] = step.params.get("prefill_chunk_tokens", 2048)
            cfg.applied.append((t_id, "--enable-chunked-prefill --max-num-batched-tokens"))
        elif t_id == "prefix-caching":
            o["enable-prefix-caching"] = True
            cfg.applied.append((t_id, "--enable-prefix-caching"))
        elif t_id == "cuda-graphs":
            cfg.applied.append((t_id, "CUDA graphs are vLLM's default (no --enforce-eager)"))
        elif t_id == "flash-attention":
            # an fp8 cache off Hopper and SM100 pins FlashInfer (kv-fp8 above); else vLLM's own pick by device
            fp8_cache = "kv-fp8" in plan_steps(advice) and _kv_fp8_env(hw) is not None
            cfg.applied.append((t_id, "VLLM_ATTENTION_BACKEND=FLASHINFER, set for the fp8 cache (its kernels run the "
                                      "attention)" if fp8_cache else
                                f"vLLM picks its attention backend on this GPU by default: {step.params['kernel']}"
                                if step.params.get("kernel") else
                                "vLLM picks its attention backend on this GPU by default (FlashAttention, or "
                                "FlashInfer first on Blackwell)"))
        elif t_id == "spec-eagle3" and not eagle_head(advice, "vllm"):
            cfg.not_applied.append((t_id, "no published EAGLE-3 head of this model that vLLM loads is known"))
        elif t_id in ("spec-ngram", "spec-mtp", "spec-eagle3"):
            o["speculative-config"] = vllm_spec(step, eagle_head(advice, "vllm"), advice.model.model_type)
            cfg.applied.append((t_id, "--speculative-config"))
        elif t_id == "api-server-scale-out":  # for each engine core of the server (its data-parallel ranks)
            cfg.applied.append((t_id, ""))
            scale_api_servers(cfg, o.get("data-parallel-size", 1), p.api_servers_per_rank,
                              p.tensor_parallel * p.pipeline_parallel)
        elif t_id == "cpu-offload":
            gb = offload_gib(p)
            o["cpu-offload-gb"] = gb
            cfg.applied.append((t_id, f"--cpu-offload-gb {gb} (the weights the plan keeps in host memory)"))
        else:
            cfg.not_applied.append((t_id, no_option("vLLM", t_id)))
    if "cuda-graphs" not in plan_steps(advice):
        o["enforce-eager"] = True
    return cfg


API_SERVERS_NOTE = "--api-server-count "


def own_servers(p: Prediction) -> str:
    """The API server processes each data-parallel rank takes its requests through, in words."""
    n = p.api_servers_per_rank
    return "its own server process" if n == 1 else f"{n} server processes of its own"


def scale_api_servers(cfg: EngineConfig, ranks: int, per_rank: int, gpus_per_rank: int) -> None:
    """Start `per_rank` API servers for each of the `ranks` engine cores a server runs (the plan's api-server-scale-out,
    set again where the replicas are laid out over servers), with the host cores they want (vLLM's
    docs/configuration/optimization.md: "Minimum physical cores = A + DP + N + (1 if DP > 1 else 0)")."""
    servers, gpus = ranks * per_rank, ranks * gpus_per_rank
    cores = servers + ranks + gpus + (ranks > 1)
    cfg.options["api-server-count"] = servers
    cfg.applied = [(t, f"--api-server-count {servers} ({per_rank} per engine core)" if t == "api-server-scale-out"
                    else text) for t, text in cfg.applied]
    cfg.notes = [n for n in cfg.notes if not n.startswith(API_SERVERS_NOTE)] + [
        f"{API_SERVERS_NOTE}{servers}: {per_rank} API server processes per engine core share the host time each "
        f"request takes; vLLM wants at least {cores} physical cores for this server ({servers} API servers + {ranks} "
        f"engine core{'s' if ranks > 1 else ''} + {gpus} GPU worker{'s' if gpus > 1 else ''}"
        + (" + the data-parallel coordinator" if ranks > 1 else "") + ", docs/configuration/optimization.md), "
        "twice as many vCPUs with hyperthreading: fewer, and the processes contend and the gain is lost"]


def vllm_spec(step, head: str | None = None, model_type: str = "") -> dict[str, Any]:
    params = step.params
    if step.technique == "spec-ngram":
        return {"method": "ngram", "num_speculative_tokens": params["num_speculative_tokens"],
                "prompt_lookup_max": params.get("prompt_lookup_max", 4)}
    if step.technique == "spec-eagle3":  # vllm-project/recipes Llama-3.1-8B-Instruct: method eagle3 with the head
        return {"method": "eagle3", "model": head,
                "num_speculative_tokens": params["num_speculative_tokens"]}
    # the checkpoint's own MTP module, by model: vLLM's Qwen3-Next recipe names qwen3_next_mtp, DeepSeek's deepseek_mtp
    method = "qwen3_next_mtp" if model_type == "qwen3_next" else "deepseek_mtp"
    return {"method": method, "num_speculative_tokens": params["num_speculative_tokens"]}


def _kv_fp8_env(hw: HardwareSpec) -> dict[str, str] | None:
    """The environment vLLM needs to serve an fp8 KV cache on `hw` in its V1 engine (`kv_fp8_storage`: FlashInfer,
    where the default backend takes no fp8 cache: Ampere, Ada, SM120), or None (Hopper, SM100, ROCm)."""
    storage = kv_fp8_storage("vllm")
    if hw.features.backend != "cuda" or hw.features.compute_capability in storage["default_backend_compute_capabilities"]:
        return None
    return storage["env_elsewhere"]
