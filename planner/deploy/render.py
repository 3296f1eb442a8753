"""Deployment configs from a plan: each plan step mapped to the serving engine's own options, for the
engine version whose option names are kept as data in `profiles/engine_options/`, then rendered
through the Jinja2 templates in `templates/deploy/`. A step an engine cannot express is listed as
not applied, with the reason; nothing is dropped silently. Files are written to a temporary folder
and moved into place only when every file rendered and validated.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ... import profiles
from ..catalog.hardware import resolve_hardware
from ..catalog.models import catalog_entry
from ..errors import OptiplanError, UnknownNameError
from ..fsutil import atomic_folder
from ..schema import HardwareSpec
from ..schema.advice import Advice

ENGINES = ("vllm", "sglang", "tgi", "trtllm", "llama.cpp")
TARGETS = (*ENGINES, "compose", "kubernetes", "all")
PORT = 8000

# Where each engine runs (backend of the device) and the container image of the stated version.
RUNS_ON = {"vllm": ("cuda", "rocm", "tpu", "cpu"), "sglang": ("cuda", "rocm"), "tgi": ("cuda", "rocm"),
           "trtllm": ("cuda",), "llama.cpp": ("cuda", "rocm", "metal", "cpu")}
IMAGES = {"vllm": "vllm/vllm-openai:v0.10.1", "sglang": "lmsysorg/sglang:v0.5.4",
          "tgi": "ghcr.io/huggingface/text-generation-inference:3.3.4",
          "trtllm": "nvcr.io/nvidia/tensorrt-llm/release:1.0.0", "llama.cpp": "ghcr.io/ggml-org/llama.cpp:server-cuda"}
HEALTH = {"vllm": "/health", "sglang": "/health", "tgi": "/health", "trtllm": "/health", "llama.cpp": "/health"}


class DeployError(OptiplanError):
    """A config that cannot be rendered for this engine or hardware."""


@lru_cache(maxsize=None)
def engine_options(engine: str) -> dict[str, Any]:
    """The option names and allowed values of an engine, for the version stated in the file."""
    return profiles.read_yaml(profiles.ROOT / "engine_options" / f"{engine}.yaml")


@dataclass
class EngineConfig:
    engine: str
    model: str  # hub id or path the engine loads
    command: list[str]  # the executable and its fixed sub-command
    options: dict[str, Any] = field(default_factory=dict)  # option -> value (True for a flag)
    env: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # trtllm's extra_llm_api_options YAML
    applied: list[tuple[str, str]] = field(default_factory=list)  # (technique, how)
    not_applied: list[tuple[str, str]] = field(default_factory=list)  # (technique, why)
    notes: list[str] = field(default_factory=list)
    positional_model: bool = False

    def argv(self, extra_file: str | None = None) -> list[str]:
        args = list(self.command) + ([self.model] if self.positional_model else [])
        for name, value in self.options.items():
            if value is False or value is None:
                continue
            args.append("--" + name)
            if value is not True:
                args.append(json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else str(value))
        if extra_file and self.extra:
            args += ["--extra_llm_api_options", extra_file]
        return args


def model_reference(advice: Advice) -> str:
    """What the engine loads: a catalog model's hub id, else the path or id the user gave."""
    source = advice.model.source
    if source.startswith("catalog:"):
        return catalog_entry(source.split(":", 1)[1]).get("hub_id") or advice.model.name
    if source.startswith("hub:"):
        return source.split(":", 1)[1]
    path = Path(source)
    return str(path.parent if path.name == "config.json" else path)


def _steps(advice: Advice) -> dict[str, Any]:
    return {s.technique: s for s in advice.plan.steps}


def _max_seqs(advice: Advice) -> int:
    """Concurrent sequences sized from the predicted KV capacity (never above what the workload asks)."""
    p = advice.plan.predicted
    return max(1, min(advice.workload.concurrency, p.max_concurrency or 1))


def _offload_gib(p) -> int:
    """GiB of weights per device in host memory, rounded up (the unit of --cpu-offload-gb)."""
    return max(1, -(-p.offload_bytes_per_device // 2**30))


def _dtype16(hw: HardwareSpec) -> str:
    return "bfloat16" if hw.features.bf16 else "float16"


# ---------------------------------------------------------------------------------------------
# One mapping per engine: plan step -> the engine's option, or the reason it has none
# ---------------------------------------------------------------------------------------------


def _vllm(advice: Advice, hw: HardwareSpec) -> EngineConfig:
    p, w = advice.plan.predicted, advice.workload
    cfg = EngineConfig("vllm", model_reference(advice), ["vllm", "serve"], positional_model=True)
    o = cfg.options
    o.update({"host": "0.0.0.0", "port": PORT, "served-model-name": advice.model.name, "dtype": _dtype16(hw),
              "tensor-parallel-size": p.tensor_parallel, "pipeline-parallel-size": p.pipeline_parallel,
              "max-model-len": w.context_needed, "max-num-seqs": _max_seqs(advice), "gpu-memory-utilization": 0.9})
    quant = {"weight-fp8": "fp8", "weight-int4-awq": "awq", "weight-int4-gptq": "gptq", "weight-nf4": "bitsandbytes",
             "weight-fp4": "modelopt_fp4", "weight-w8a8-int8": "compressed-tensors", "weight-int8": "compressed-tensors"}
    for t_id, step in _steps(advice).items():
        if t_id in quant:
            o["quantization"] = quant[t_id]
            how = f"--quantization {quant[t_id]}"
            if t_id != "weight-fp8":
                cfg.notes.append(f"{t_id}: vLLM loads {quant[t_id]} weights from a quantized checkpoint; "
                                 "`optiplan apply` writes one, then point the model path at it")
            cfg.applied.append((t_id, how))
        elif t_id == "kv-fp8":
            o["kv-cache-dtype"] = "fp8"
            cfg.applied.append((t_id, "--kv-cache-dtype fp8"))
        elif t_id == "tensor-parallel":
            cfg.applied.append((t_id, f"--tensor-parallel-size {p.tensor_parallel} "
                                      f"--pipeline-parallel-size {p.pipeline_parallel}"))
        elif t_id == "pipeline-parallel":
            cfg.applied.append((t_id, f"--pipeline-parallel-size {p.pipeline_parallel}"))
        elif t_id == "expert-parallel":
            o.update({"tensor-parallel-size": 1, "data-parallel-size": p.expert_parallel, "enable-expert-parallel": True})
            cfg.applied.append((t_id, f"--enable-expert-parallel with --data-parallel-size {p.expert_parallel}"))
        elif t_id == "paged-kv":
            o["block-size"] = step.params.get("block_size", 16)
            cfg.applied.append((t_id, "always on in vLLM (PagedAttention); --max-num-seqs sized from the KV capacity"))
        elif t_id == "chunked-prefill":
            o["enable-chunked-prefill"] = True
            o["max-num-batched-tokens"] = step.params.get("max_num_batched_tokens", 2048)
            cfg.applied.append((t_id, "--enable-chunked-prefill --max-num-batched-tokens"))
        elif t_id == "prefix-caching":
            o["enable-prefix-caching"] = True
            cfg.applied.append((t_id, "--enable-prefix-caching"))
        elif t_id == "cuda-graphs":
            cfg.applied.append((t_id, "CUDA graphs are vLLM's default (no --enforce-eager)"))
        elif t_id == "flash-attention":
            cfg.applied.append((t_id, "vLLM picks its FlashAttention backend on this GPU by default"))
        elif t_id in ("spec-ngram", "spec-mtp"):
            o["speculative-config"] = _vllm_spec(step)
            cfg.applied.append((t_id, "--speculative-config"))
        elif t_id == "cpu-offload":
            gb = _offload_gib(p)
            o["cpu-offload-gb"] = gb
            cfg.applied.append((t_id, f"--cpu-offload-gb {gb} (the weights the plan keeps in host memory)"))
        else:
            cfg.not_applied.append((t_id, _no_option("vLLM", t_id)))
    if "cuda-graphs" not in _steps(advice):
        o["enforce-eager"] = True
    return cfg


def _vllm_spec(step) -> dict[str, Any]:
    params = step.params
    if step.technique == "spec-ngram":
        return {"method": "ngram", "num_speculative_tokens": params["num_speculative_tokens"],
                "prompt_lookup_max": params.get("prompt_lookup_max", 4)}
    return {"method": "deepseek_mtp", "num_speculative_tokens": params["num_speculative_tokens"]}


def _sglang(advice: Advice, hw: HardwareSpec) -> EngineConfig:
    p, w = advice.plan.predicted, advice.workload
    cfg = EngineConfig("sglang", model_reference(advice), ["python", "-m", "sglang.launch_server"])
    o = cfg.options
    o.update({"model-path": cfg.model, "host": "0.0.0.0", "port": PORT, "served-model-name": advice.model.name,
              "dtype": _dtype16(hw), "tensor-parallel-size": p.tensor_parallel, "context-length": w.context_needed,
              "max-running-requests": _max_seqs(advice), "mem-fraction-static": 0.85})
    if p.pipeline_parallel > 1:
        o["pipeline-parallel-size"] = p.pipeline_parallel
    quant = {"weight-fp8": "fp8", "weight-int4-awq": "awq", "weight-int4-gptq": "gptq", "weight-w8a8-int8": "w8a8_int8",
             "weight-fp4": "modelopt_fp4"}
    steps = _steps(advice)
    for t_id, step in steps.items():
        if t_id in quant:
            o["quantization"] = quant[t_id]
            cfg.applied.append((t_id, f"--quantization {quant[t_id]}"))
        elif t_id == "kv-fp8":
            o["kv-cache-dtype"] = "fp8_e4m3"
            cfg.applied.append((t_id, "--kv-cache-dtype fp8_e4m3"))
        elif t_id in ("tensor-parallel", "pipeline-parallel"):
            cfg.applied.append((t_id, f"--tensor-parallel-size {p.tensor_parallel}" + (
                f" --pipeline-parallel-size {p.pipeline_parallel}" if p.pipeline_parallel > 1 else "")))
        elif t_id == "expert-parallel":
            o.update({"tensor-parallel-size": p.expert_parallel, "expert-parallel-size": p.expert_parallel,
                      "enable-dp-attention": True, "data-parallel-size": p.expert_parallel})
            cfg.applied.append((t_id, f"--expert-parallel-size {p.expert_parallel} --enable-dp-attention"))
        elif t_id == "paged-kv":
            cfg.applied.append((t_id, "always on in SGLang (token-level KV pool, continuous batching)"))
        elif t_id == "chunked-prefill":
            o["chunked-prefill-size"] = step.params.get("max_num_batched_tokens", 2048)
            cfg.applied.append((t_id, "--chunked-prefill-size"))
        elif t_id == "prefix-caching":
            cfg.applied.append((t_id, "RadixAttention prefix caching is SGLang's default"))
        elif t_id in ("cuda-graphs", "flash-attention"):
            cfg.applied.append((t_id, "SGLang's default on this GPU"))
        elif t_id == "spec-draft":
            o.update({"speculative-algorithm": "STANDALONE",
                      "speculative-draft-model-path": catalog_entry(step.params["draft_model"]).get("hub_id"),
                      "speculative-num-steps": step.params["num_speculative_tokens"],
                      "speculative-eagle-topk": 1,
                      "speculative-num-draft-tokens": step.params["num_speculative_tokens"] + 1})
            cfg.applied.append((t_id, "--speculative-algorithm STANDALONE with the draft model"))
        elif t_id == "spec-mtp":
            o.update({"speculative-algorithm": "EAGLE", "speculative-num-steps": 1, "speculative-eagle-topk": 1,
                      "speculative-num-draft-tokens": 2})
            cfg.applied.append((t_id, "--speculative-algorithm EAGLE (the MTP module as the draft)"))
        elif t_id == "spec-ngram":
            o.update({"speculative-algorithm": "NGRAM",
                      "speculative-num-draft-tokens": step.params["num_speculative_tokens"]})
            cfg.applied.append((t_id, "--speculative-algorithm NGRAM"))
        elif t_id == "cpu-offload":
            gb = _offload_gib(p)
            o["cpu-offload-gb"] = gb
            cfg.applied.append((t_id, f"--cpu-offload-gb {gb} (the weights the plan keeps in host memory)"))
        else:
            cfg.not_applied.append((t_id, _no_option("SGLang", t_id)))
    if "cuda-graphs" not in steps:
        o["disable-cuda-graph"] = True
    return cfg


def _tgi(advice: Advice, hw: HardwareSpec) -> EngineConfig:
    p, w = advice.plan.predicted, advice.workload
    cfg = EngineConfig("tgi", model_reference(advice), ["text-generation-launcher"])
    o = cfg.options
    o.update({"model-id": cfg.model, "hostname": "0.0.0.0", "port": PORT, "dtype": _dtype16(hw),
              "num-shard": p.tensor_parallel, "max-input-tokens": w.prompt_tokens_p95,
              "max-total-tokens": w.context_needed, "max-concurrent-requests": max(_max_seqs(advice), 1) * 4,
              "cuda-memory-fraction": 0.9})
    quant = {"weight-fp8": "fp8", "weight-int4-awq": "awq", "weight-int4-gptq": "gptq", "weight-nf4": "bitsandbytes-nf4",
             "weight-int8": "bitsandbytes"}
    steps = _steps(advice)
    for t_id, step in steps.items():
        if t_id in quant:
            o["quantize"] = quant[t_id]
            o.pop("dtype", None)  # TGI refuses --dtype together with --quantize
            cfg.applied.append((t_id, f"--quantize {quant[t_id]}"))
        elif t_id == "kv-fp8":
            o["kv-cache-dtype"] = "fp8_e4m3fn"
            cfg.applied.append((t_id, "--kv-cache-dtype fp8_e4m3fn"))
        elif t_id == "tensor-parallel":
            if p.pipeline_parallel > 1:
                cfg.not_applied.append((t_id, f"TGI shards within one node only; the plan needs "
                                              f"{p.pipeline_parallel} pipeline stages"))
            else:
                cfg.applied.append((t_id, f"--num-shard {p.tensor_parallel}"))
        elif t_id == "paged-kv":
            o["max-batch-prefill-tokens"] = min(w.context_needed, 4096)
            cfg.applied.append((t_id, "always on in TGI (paged attention, continuous batching)"))
        elif t_id == "chunked-prefill":
            cfg.applied.append((t_id, "TGI 3 chunks prefills by default (--max-batch-prefill-tokens)"))
        elif t_id == "prefix-caching":
            cfg.env["PREFIX_CACHING"] = "1"
            cfg.applied.append((t_id, "environment PREFIX_CACHING=1 (TGI 3's default on supported backends)"))
        elif t_id in ("cuda-graphs", "flash-attention"):
            cfg.applied.append((t_id, "TGI's default on this GPU"))
        elif t_id == "spec-ngram":
            o["speculate"] = step.params["num_speculative_tokens"]
            cfg.applied.append((t_id, f"--speculate {step.params['num_speculative_tokens']} (n-gram without Medusa heads)"))
        else:
            cfg.not_applied.append((t_id, _no_option("TGI", t_id)))
    if p.pipeline_parallel > 1:
        o["num-shard"] = p.tensor_parallel
    return cfg


def _trtllm(advice: Advice, hw: HardwareSpec) -> EngineConfig:
    p, w = advice.plan.predicted, advice.workload
    cfg = EngineConfig("trtllm", model_reference(advice), ["trtllm-serve"], positional_model=True)
    o, extra = cfg.options, cfg.extra
    o.update({"host": "0.0.0.0", "port": PORT, "backend": "pytorch", "tp_size": p.tensor_parallel,
              "pp_size": p.pipeline_parallel, "max_batch_size": _max_seqs(advice), "max_seq_len": w.context_needed,
              "kv_cache_free_gpu_memory_fraction": 0.9})
    kv: dict[str, Any] = {"free_gpu_memory_fraction": 0.9}
    steps = _steps(advice)
    for t_id, step in steps.items():
        if t_id in ("weight-fp8", "weight-int4-awq", "weight-int4-gptq", "weight-fp4", "weight-w8a8-int8", "weight-int8"):
            cfg.applied.append((t_id, "from a checkpoint quantized with TensorRT Model Optimizer (quant_config "
                                      "in the checkpoint)"))
            cfg.notes.append(f"{t_id}: TensorRT-LLM reads the quantization from the checkpoint; quantize it with "
                             "TensorRT Model Optimizer (or `optiplan apply`) and point the model path at it")
        elif t_id == "kv-fp8":
            kv["dtype"] = "fp8"
            cfg.applied.append((t_id, "kv_cache_config.dtype fp8"))
        elif t_id in ("tensor-parallel", "pipeline-parallel"):
            cfg.applied.append((t_id, f"--tp_size {p.tensor_parallel} --pp_size {p.pipeline_parallel}"))
        elif t_id == "expert-parallel":
            o.update({"tp_size": p.expert_parallel, "ep_size": p.expert_parallel})
            extra["enable_attention_dp"] = True
            cfg.applied.append((t_id, f"--ep_size {p.expert_parallel}, enable_attention_dp"))
        elif t_id == "paged-kv":
            cfg.applied.append((t_id, "always on in TensorRT-LLM (paged KV cache, in-flight batching)"))
        elif t_id == "chunked-prefill":
            extra["enable_chunked_prefill"] = True
            o["max_num_tokens"] = step.params.get("max_num_batched_tokens", 2048)
            cfg.applied.append((t_id, "enable_chunked_prefill with --max_num_tokens"))
        elif t_id == "prefix-caching":
            kv["enable_block_reuse"] = True
            cfg.applied.append((t_id, "kv_cache_config.enable_block_reuse"))
        elif t_id == "cuda-graphs":
            extra["cuda_graph_config"] = {"max_batch_size": _max_seqs(advice), "enable_padding": True}
            cfg.applied.append((t_id, "cuda_graph_config"))
        elif t_id == "flash-attention":
            cfg.applied.append((t_id, "TensorRT-LLM's fused attention kernels are its default"))
        elif t_id == "spec-draft":
            extra["speculative_config"] = {"decoding_type": "Draft_Target",
                                           "max_draft_len": step.params["num_speculative_tokens"],
                                           "speculative_model_dir": catalog_entry(step.params["draft_model"]).get("hub_id")}
            cfg.applied.append((t_id, "speculative_config Draft_Target"))
        elif t_id == "spec-ngram":
            extra["speculative_config"] = {"decoding_type": "NGram", "max_draft_len": step.params["num_speculative_tokens"],
                                           "max_matching_ngram_size": step.params.get("prompt_lookup_max", 4)}
            cfg.applied.append((t_id, "speculative_config NGram"))
        elif t_id == "spec-mtp":
            extra["speculative_config"] = {"decoding_type": "MTP", "num_nextn_predict_layers": 1}
            cfg.applied.append((t_id, "speculative_config MTP"))
        else:
            cfg.not_applied.append((t_id, _no_option("TensorRT-LLM", t_id)))
    extra["kv_cache_config"] = kv
    return cfg


GGUF_TYPES = {"weight-int8": "Q8_0", "weight-int4": "Q4_K_M", "weight-int4-awq": "Q4_K_M", "weight-int4-gptq": "Q4_K_M"}


def _llamacpp(advice: Advice, hw: HardwareSpec) -> EngineConfig:
    p, w = advice.plan.predicted, advice.workload
    steps = _steps(advice)
    quant = next((GGUF_TYPES[t] for t in steps if t in GGUF_TYPES), "F16" if not hw.features.bf16 else "BF16")
    gguf = f"models/{advice.model.name}-{quant}.gguf"
    cfg = EngineConfig("llama.cpp", gguf, ["llama-server"])
    o = cfg.options
    slots = _max_seqs(advice)
    o.update({"model": gguf, "host": "0.0.0.0", "port": PORT, "ctx-size": w.context_needed * slots,
              "parallel": slots, "n-gpu-layers": 999 if hw.kind == "gpu" or hw.kind == "apple" else 0,
              "cont-batching": True})
    source = f"<a local copy of {model_reference(advice)}>"
    if quant in ("BF16", "F16"):
        cfg.notes.append(f"convert the checkpoint to GGUF: `python convert_hf_to_gguf.py {source} --outtype "
                         f"{quant.lower()} --outfile {gguf}`")
    else:
        cfg.notes.append(f"convert the checkpoint to GGUF and quantize it to {quant}: `python convert_hf_to_gguf.py "
                         f"{source} --outtype f16 --outfile models/{advice.model.name}-F16.gguf`, then "
                         f"`llama-quantize models/{advice.model.name}-F16.gguf {gguf} {quant}`")
    for t_id, step in steps.items():
        if t_id in GGUF_TYPES:
            cfg.applied.append((t_id, f"GGUF {quant}"))
        elif t_id in ("kv-int8", "kv-int4"):
            kind = "q8_0" if t_id == "kv-int8" else "q4_0"
            o.update({"cache-type-k": kind, "cache-type-v": kind, "flash-attn": "on"})
            cfg.applied.append((t_id, f"--cache-type-k {kind} --cache-type-v {kind} --flash-attn on (a quantized V "
                                      "cache needs llama.cpp's flash attention, which also runs on CPU and Metal)"))
        elif t_id == "flash-attention":
            o["flash-attn"] = "on"
            cfg.applied.append((t_id, "--flash-attn on"))
        elif t_id == "paged-kv":
            cfg.applied.append((t_id, f"--parallel {slots} --cont-batching: continuous batching over one unified "
                                      "KV cache (llama.cpp does not page it)"))
        elif t_id == "cuda-graphs":
            cfg.applied.append((t_id, "llama.cpp's CUDA backend captures CUDA graphs by default"))
        elif t_id == "prefix-caching":
            o["cache-reuse"] = 256
            cfg.applied.append((t_id, "--cache-reuse 256 (reuse cached prompt chunks)"))
        elif t_id == "spec-draft":
            draft = f"models/{step.params['draft_model']}-{quant}.gguf"
            o.update({"model-draft": draft, "draft-max": step.params["num_speculative_tokens"]})
            cfg.applied.append((t_id, f"--model-draft {draft}"))
        elif t_id == "cpu-offload":
            share = p.offload_bytes_per_device / max(p.offload_bytes_per_device + p.weights_per_device_bytes, 1)
            o["n-gpu-layers"] = max(0, int(advice.model.num_layers * (1 - share)))
            cfg.applied.append((t_id, f"--n-gpu-layers {o['n-gpu-layers']} of {advice.model.num_layers} "
                                      "(the rest run on the CPU)"))
        elif t_id == "pipeline-parallel":
            o["split-mode"] = "layer"
            cfg.applied.append((t_id, "--split-mode layer over the visible GPUs"))
        else:
            cfg.not_applied.append((t_id, _no_option("llama.cpp", t_id)))
    return cfg


# Why an engine has no option for a step, where there is more to say than that it has none.
_NO_OPTION = {
    ("vLLM", "spec-draft"): "its default (V1) engine rejects a separate draft model in 0.10; n-gram, EAGLE and MTP work",
    ("vLLM", "weight-int8"): "no in-flight int8 weight-only mode",
    ("TGI", "spec-draft"): "--speculate uses Medusa heads or n-grams, not a draft model",
    ("TGI", "expert-parallel"): "TGI shards by tensor parallel only",
    ("TensorRT-LLM", "cpu-offload"): "only KV blocks can go to host memory (kv_cache_config.host_cache_size)",
    ("llama.cpp", "tensor-parallel"): "it splits layers or rows over GPUs (--split-mode), not tensor-parallel shards",
    ("llama.cpp", "weight-fp8"): "GGUF has no fp8 weight type",
    ("llama.cpp", "kv-fp8"): "its KV cache types are f16, bf16, q8_0, q4_0 and similar, no fp8",
    (None, "torch-compile"): "a transformers-engine technique; serving engines compile their own graphs",
    (None, "sliding-window-sinks"): "no option to impose a sliding window with sinks on a full-attention model",
}


def _no_option(engine: str, t_id: str) -> str:
    detail = _NO_OPTION.get((engine, t_id)) or _NO_OPTION.get((None, t_id))
    return f"{engine} has no option for it" + (f": {detail}" if detail else "")


MAPPERS = {"vllm": _vllm, "sglang": _sglang, "tgi": _tgi, "trtllm": _trtllm, "llama.cpp": _llamacpp}


def engine_config(advice: Advice, engine: str) -> EngineConfig:
    if engine not in MAPPERS:
        raise UnknownNameError("engine", engine, TARGETS)
    hw = resolve_hardware(advice.hardware.id)
    if hw.features.backend not in RUNS_ON[engine]:
        raise DeployError(f"{engine} does not run on {hw.id} ({hw.features.backend}); it runs on "
                          f"{', '.join(RUNS_ON[engine])}")
    cfg = MAPPERS[engine](advice, hw)
    check_options(cfg)
    return cfg


def check_options(cfg: EngineConfig) -> None:
    """Every option the config emits exists for the stated engine version, with an allowed value."""
    known = engine_options(cfg.engine)["options"]
    for name, value in cfg.options.items():
        if name not in known:
            raise DeployError(f"{cfg.engine}: option --{name} is not in profiles/engine_options/{cfg.engine}.yaml")
        spec = known[name]
        if spec.get("type") == "choice" and str(value) not in [str(c) for c in spec["choices"]]:
            raise DeployError(f"{cfg.engine}: --{name} {value} is not one of {spec['choices']}")
    _check_nested(cfg.engine, cfg.extra, engine_options(cfg.engine).get("extra_config", {}), "")


def _check_nested(engine: str, values: dict[str, Any], known: dict[str, Any], where: str) -> None:
    """Keys of a nested config (TensorRT-LLM's extra options) exist, and choice values are allowed."""
    for key, value in values.items():
        name = f"{where}{key}"
        if key not in known:
            raise DeployError(f"{engine}: extra option {name} is not in profiles/engine_options/{engine}.yaml")
        spec = known[key]
        if isinstance(value, dict) and isinstance(spec, dict) and "type" not in spec:
            _check_nested(engine, value, spec, f"{name}.")
        elif isinstance(spec, dict) and spec.get("type") == "choice" and str(value) not in map(str, spec["choices"]):
            raise DeployError(f"{engine}: {name} {value} is not one of {spec['choices']}")


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------


def shell_command(argv: list[str]) -> str:
    """A command line with each argument quoted for a POSIX shell, one option per line."""
    lines = [[argv[0]]]
    for arg in argv[1:]:
        if arg.startswith("-"):
            lines.append([arg])
        else:
            lines[-1].append(arg)
    return " \\\n  ".join(" ".join(shlex.quote(a) for a in line) for line in lines)


@lru_cache(maxsize=1)
def _env():
    import jinja2

    from ...templates import TEMPLATES_DIR

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR / "deploy")), autoescape=False,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["shell"] = shell_command
    env.filters["yaml"] = lambda d: yaml.safe_dump(d, sort_keys=False, width=110).rstrip()
    env.filters["json"] = lambda d: json.dumps(d)
    env.filters["quote"] = shlex.quote
    return env


def _gpu_resource(hw: HardwareSpec) -> str:
    return "amd.com/gpu" if hw.features.backend == "rocm" else "nvidia.com/gpu"


def render(advice: Advice, target: str, serving_engine: str | None = None) -> dict[str, str]:
    """Files (relative path -> text) for one target: an engine, compose or kubernetes."""
    if target not in TARGETS or target == "all":
        raise UnknownNameError("engine", target, TARGETS)
    hw = resolve_hardware(advice.hardware.id)
    engine = serving_engine or (advice.workload.engine if advice.workload.engine in ENGINES else "vllm")
    engine = target if target in ENGINES else engine
    cfg = engine_config(advice, engine)
    env = _env()
    per_node = hw.interconnect.max_devices_per_node if hw.interconnect else 1
    ctx = dict(a=advice, cfg=cfg, hw=hw, engine=engine, port=PORT, image=IMAGES[engine], health=HEALTH[engine],
               version=engine_options(engine)["version"],
               gpu_resource=_gpu_resource(hw), devices=advice.hardware.count, per_node=min(per_node, advice.hardware.count),
               nodes=max(1, -(-advice.hardware.count // per_node)), name=_k8s_name(advice.model.name))
    files: dict[str, str] = {}
    slug = engine.replace(".", "")
    if target in ENGINES:
        extra_file = "extra-llm-api-options.yaml" if cfg.extra else None
        files[f"{slug}/serve.sh"] = env.get_template("serve.sh.j2").render(**ctx, argv=cfg.argv(extra_file))
        if engine == "vllm":
            config = {"model": cfg.model, **{k: v for k, v in cfg.options.items() if v is not False}}
            files[f"{slug}/config.yaml"] = env.get_template("vllm-config.yaml.j2").render(**ctx, config=config)
        if cfg.extra:
            files[f"{slug}/{extra_file}"] = env.get_template("trtllm-extra.yaml.j2").render(**ctx)
        if cfg.env:
            files[f"{slug}/engine.env"] = "".join(f"{k}={shlex.quote(v)}\n" for k, v in cfg.env.items())
    elif target == "compose":
        if hw.kind != "gpu" and engine != "llama.cpp":
            raise DeployError(f"compose with {engine} needs GPUs; {hw.id} is a {hw.kind}")
        files["compose/docker-compose.yaml"] = env.get_template("docker-compose.yaml.j2").render(
            **ctx, argv=cfg.argv("/config/extra-llm-api-options.yaml" if cfg.extra else None))
    else:
        template = "k8s-leaderworkerset.yaml.j2" if ctx["nodes"] > 1 else "k8s-deployment.yaml.j2"
        if ctx["nodes"] > 1 and engine != "vllm":
            raise DeployError(f"a {ctx['nodes']}-node deployment is rendered for vLLM (Ray over a LeaderWorkerSet); "
                              f"{engine} is not supported across nodes here")
        files["kubernetes/deployment.yaml"] = env.get_template(template).render(
            **ctx, argv=cfg.argv("/config/extra-llm-api-options.yaml" if cfg.extra else None))
    files["README.md" if target in ENGINES else f"{target}/README.md"] = env.get_template("README.md.j2").render(
        **ctx, target=target, files=sorted(files))
    validate(files)
    return files


def _k8s_name(name: str) -> str:
    out = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return out[:50] or "model"


def validate(files: dict[str, str]) -> None:
    """Every YAML and JSON parses; Kubernetes objects carry apiVersion, kind and metadata."""
    for path, text in files.items():
        try:
            if path.endswith((".yaml", ".yml")):
                docs = [d for d in yaml.safe_load_all(text) if d is not None]
                for d in docs:
                    if path.startswith("kubernetes/") and not {"apiVersion", "kind", "metadata"} <= set(d):
                        raise DeployError(f"{path}: a Kubernetes object lacks apiVersion, kind or metadata")
            elif path.endswith(".json"):
                json.loads(text)
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            raise DeployError(f"{path}: rendered file does not parse: {exc}") from exc


def write(files: dict[str, str], out_dir: Path, force: bool = False) -> list[Path]:
    """Write all files or none: render into a temporary folder, then move it into place."""
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not force:
        raise DeployError(f"{out_dir} exists and is not empty; pass --force to replace it")
    try:
        with atomic_folder(out_dir) as tmp:
            for rel, text in files.items():
                path = tmp / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                if rel.endswith(".sh"):
                    path.chmod(0o755)
    except OSError as exc:
        raise DeployError(f"cannot write to {out_dir}: {exc.strerror or exc}") from exc
    return [out_dir / rel for rel in sorted(files)]


def render_all(advice: Advice, targets: list[str]) -> tuple[dict[str, str], list[str]]:
    """Files for several targets, and the targets skipped with their reason (e.g. TensorRT-LLM on a CPU)."""
    files: dict[str, str] = {}
    skipped = []
    for target in targets:
        try:
            rendered = render(advice, target)
        except DeployError as exc:
            if len(targets) == 1:
                raise
            skipped.append(f"{target}: {exc}")
            continue
        for rel, text in rendered.items():
            key = rel if rel != "README.md" or len(targets) == 1 else f"{target.replace('.', '')}/README.md"
            files[key] = text
    if len(targets) > 1:
        files["README.md"] = _env().get_template("index.md.j2").render(a=advice, targets=targets, skipped=skipped,
                                                                       files=sorted(files))
    return files, skipped
