"""The batch limit trtllm-bench sets for its throughput runs (TensorRT-LLM's performance overview: in-process, every
request queued at once), which the validation set's points of those runs are predicted with in place of the LLM API's
default of 2,048 (profiles/engines/trtllm.yaml max_running).

Without --max_batch_size and --max_num_tokens, `trtllm-bench throughput` sizes the batch from the model, the devices
and the dataset's mean lengths (NVIDIA/TensorRT-LLM tensorrt_llm/bench/benchmark/utils/general.py get_settings: "Max
batch size and max num tokens not provided. Using heuristics or pre-defined settings"; bench/build/build.py
get_benchmark_engine_settings). For checkpoints of the formats it tunes (NO_QUANT, FP8, FP8_BLOCK_SCALES, NVFP4:
"TUNED_QUANTS") bench/build/tuning.py calc_engine_setting estimates the requests the KV cache holds and rounds that up
(finetune_setting: "Cap total batch size to avoid decoder buffer size becoming too large. raw_bs =
min(kv_cache_max_requests, 4096) / pp_size", then to a multiple of 32 below 256, of 128 below 1024, else of 256, at
least 64); other formats (gpt-oss's MXFP4) take BuildConfig's 2,048 ("Using default settings because quant_algo not
supported"). The estimate, as the tool makes it: the devices' total memory (NVML, GiB) less the checkpoint's
safetensors element count at the format's bytes ("BYTES_PER_ELEM = {NO_QUANT: 2.0, FP8: 1.0, FP8_BLOCK_SCALES: 1.0,
NVFP4: .5}"), times --kv_cache_free_gpu_mem_fraction (0.90 unless set: bench/benchmark/throughput.py), over
"2 * num_attention_layers * max(tp_size, num_key_value_heads) * head_size * byte_per_kv_elem" bytes a token times
input + output tokens. The element count is taken from the catalog model: every parameter once, the linear layers of
an NVFP4 checkpoint as their packed bytes (two values a byte) and their FP8 scales (one per 16 values); the device's
memory from the catalog. Both only move the estimate a few percent before it is rounded up."""

from __future__ import annotations

import math

from optiplan.planner.analytic.params import param_counts
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model

GIB = 2**30
DEFAULT_MAX_BATCH = 2048  # BuildConfig.max_batch_size, for the formats the heuristic does not tune
BATCH_CEILING = 4096
KV_FRACTION = 0.90  # trtllm-bench throughput --kv_cache_free_gpu_mem_fraction default
BYTES_PER_ELEMENT = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp4": 0.5}


def checkpoint_elements(model: str, dtype: str) -> float:
    """The checkpoint's safetensors element count (`ModelConfig.get_param_count`): an NVFP4 checkpoint stores its
    linear layers' values two a byte and one FP8 scale per 16 values beside them."""
    counts = param_counts(resolve_model(model))
    if dtype != "fp4":
        return float(counts.total)
    return counts.total - counts.linear + counts.linear / 2 + counts.linear / 16


def heuristic_max_batch(kv_cache_requests: float) -> int:
    """finetune_setting's max batch size for `kv_cache_requests` (pipeline parallel 1, its optimistic tuning on)."""
    raw = min(kv_cache_requests, BATCH_CEILING)
    if raw < 256:
        return max(64, 32 * math.ceil(raw / 32))
    if raw < 1024:
        return 128 * math.ceil(raw / 128)
    return 256 * math.ceil(raw / 256)


def trtllm_bench_max_batch(model: str, hardware: str, dtype: str, kv_dtype: str | None, tensor_parallel: int,
                           input_tokens: int, output_tokens: int) -> int:
    """The max batch size `trtllm-bench throughput` runs a catalog `model` with on `tensor_parallel` devices of
    `hardware` (the run's --tp), for requests of these lengths, its weights in `dtype` and its cache in `kv_dtype`."""
    if dtype not in BYTES_PER_ELEMENT:
        return DEFAULT_MAX_BATCH
    spec = resolve_model(model)
    kv_bytes = 1.0 if kv_dtype in ("fp8", "int8") else 2.0
    per_token = 2 * spec.num_layers * max(tensor_parallel, spec.num_kv_heads) * spec.head_dim * kv_bytes / GIB
    total = resolve_hardware(hardware).memory_bytes / GIB * tensor_parallel
    weights = checkpoint_elements(model, dtype) * BYTES_PER_ELEMENT[dtype] / GIB
    requests = (total - weights) * KV_FRACTION / (per_token * (input_tokens + output_tokens))
    return heuristic_max_batch(requests)
