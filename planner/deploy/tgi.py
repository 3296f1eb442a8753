"""Text Generation Inference: each plan step mapped to its server option for the version in
`profiles/engine_options/`, or the reason it has none."""

from __future__ import annotations

import math

from ..catalog.engines import below_compute_capability, deployed_engine, engine_chunk_budget, engine_fact
from ..schema import HardwareSpec
from ..schema.advice import Advice
from .config import (
    PORT,
    DeployError,
    EngineConfig,
    advice_spec,
    context_note,
    dtype16,
    engine_memory_share,
    held_memory,
    max_seqs,
    memory_fraction,
    memory_note,
    model_reference,
    no_option,
    plan_steps,
    served_context,
    server_tensor_parallel,
)


def _window_without_kernel(advice: Advice, hw: HardwareSpec) -> int | None:
    """The model's sliding window where TGI's attention on `hw` computes none (its profile's `windowing_missing`:
    ROCm, CUDA before Ampere), None elsewhere or for a model without one. A vision-language wrapper (Gemma 3's
    checkpoint) sets no window in the top-level config TGI reads it from."""
    rule = engine_fact("tgi", "windowing_missing") or {}
    backend = hw.features.backend
    missing = backend in rule.get("backends", ()) or (
        backend == "cuda" and below_compute_capability(hw, rule.get("below_compute_capability")))
    spec = advice_spec(advice)
    windows = [w for w in spec.layer_windows or () if w]
    return max(windows) if missing and windows and spec.model_type != "gemma3" else None


# The batch sizes TGI's launcher captures CUDA graphs for by default (launcher/src/main.rs @v3.0.0: "let cuda_graphs =
# vec![1, 2, 4, 8, 16, 32]"; profiles/engines/tgi.yaml)
TGI_GRAPH_SIZES = (1, 2, 4, 8, 16, 32)


def _graph_sizes(sequences: int) -> tuple[int, ...]:
    """The CUDA-graph batch sizes that cover a server's `sequences` (powers of two up to the first at least as large),
    or () where TGI's default ones already do."""
    if sequences <= TGI_GRAPH_SIZES[-1]:
        return ()
    return tuple(1 << i for i in range((sequences - 1).bit_length() + 1))


def _memory_share(cfg: EngineConfig, advice: Advice, hw: HardwareSpec) -> None:
    """TGI runs within CUDA_MEMORY_FRACTION x TGI_WIGGLE_ROOM of a GPU (1.0 x 0.9 by default: profiles/engines/tgi.yaml
    kv_memory), the plan's cache sized within it; a plan that needs more raises TGI_WIGGLE_ROOM (it must stay below
    1), --cuda-memory-fraction left at its 1.0 (at 0.9, as the configs had set it, the cache lost a tenth of the
    device: 0.81 of it)."""
    default = engine_memory_share(advice, "tgi", hw)
    share = memory_fraction(advice, "tgi", default)
    if share > default:
        cfg.env["TGI_WIGGLE_ROOM"] = f"{share:g}"
        cfg.notes.append(f"TGI_WIGGLE_ROOM={share:g}: TGI runs within {default:.0%} of each device by default "
                         f"(CUDA_MEMORY_FRACTION 1.0 x TGI_WIGGLE_ROOM 0.90), and the plan needs more")
    elif share < default:  # the memory goal holds it to the plan (`held_memory`)
        cfg.env["TGI_WIGGLE_ROOM"] = f"{share:g}"
        held_memory(cfg, advice, "TGI_WIGGLE_ROOM", "device", hw)
    if note := memory_note(advice, "tgi", "TGI_WIGGLE_ROOM"):
        cfg.notes.append(note)


def engine_config(advice: Advice, hw: HardwareSpec) -> EngineConfig:
    p, m = advice.plan.predicted, advice.model
    shards = p.tensor_parallel if p.pipeline_parallel > 1 else server_tensor_parallel(advice)
    if m.num_kv_heads > 1 and m.num_kv_heads % shards:
        raise DeployError(f"TGI splits a model's KV heads over its shards without replicating them: {m.num_kv_heads} "
                          f"KV heads do not divide over --num-shard {shards}, and the server cannot start (source: "
                          f"{engine_fact('tgi', 'kv_split_source').split(' — ')[0]}); serve it with "
                          f"{math.gcd(m.num_kv_heads, shards)} shards a replica, or with another engine")
    cfg = EngineConfig("tgi", model_reference(advice), ["text-generation-launcher"])
    o = cfg.options
    o.update({"model-id": cfg.model, "hostname": "0.0.0.0", "port": PORT, "dtype": dtype16(hw),
              "num-shard": shards,
              # a prompt as long as the served sequence less one token of output, TGI's own default (launcher/src/
              # main.rs @v3.3.4: "Default to min(max_allocatable, max_position_embeddings) - 1"): the router refuses
              # longer ones, so a limit at the workload's p95 prompt would refuse the twentieth above it
              "max-input-tokens": served_context(advice, "tgi") - 1,
              "max-total-tokens": served_context(advice, "tgi"),
              "max-concurrent-requests": max(max_seqs(advice), 1) * 4})
    cfg.notes.append(context_note(advice, "tgi", "--max-total-tokens"))
    if hw.kind == "gpu":
        _memory_share(cfg, advice, hw)
    if (window := _window_without_kernel(advice, hw)) is not None and o["max-input-tokens"] > window:
        source = engine_fact("tgi", "windowing_source").split(" — ")[0]
        if advice.workload.prompt_tokens_p95 > window:
            raise DeployError(f"TGI's attention on {hw.id} has no sliding window and refuses to load a model with one "
                              f"(here {window:,} tokens) where --max-input-tokens exceeds it (source: {source}); the "
                              f"workload's p95 prompt is {advice.workload.prompt_tokens_p95:,} tokens: serve it with "
                              "another engine")
        o["max-input-tokens"] = window
        cfg.notes.append(f"--max-input-tokens {window}: TGI's attention on {hw.id} has no sliding window, and it "
                         f"refuses to load a model with one where prompts may exceed the window (source: {source}); "
                         "longer prompts are refused")
    # int8 weight-only is EETQ's W8A16 kernel: TGI's launcher calls it "a drop-in replacement to bitsandbytes with much
    # better performance" and deprecates bitsandbytes int8, which also turns CUDA graphs off (profiles/engines/tgi.yaml)
    quant = {"weight-fp8": "fp8", "weight-int4-awq": "awq", "weight-int4-gptq": "gptq", "weight-nf4": "bitsandbytes-nf4",
             "weight-int8": "eetq"}
    steps = plan_steps(advice)
    if hw.features.backend == "rocm":
        # TGI's AWQ GEMM is CUDA-only: on ROCm an AWQ checkpoint is served as --quantize gptq, which repacks it for
        # the exllama kernels (layers/gptq/__init__.py @db931fcf: "AWQ GEMM kernel can't be used on ROCm systems,
        # please use `--quantize gptq` instead to use Exllama/GPTQ kernels for AWQ inference.")
        quant["weight-int4-awq"] = "gptq"
    for t_id, step in steps.items():
        if t_id in quant:
            o["quantize"] = quant[t_id]
            o.pop("dtype", None)  # TGI refuses --dtype together with --quantize
            cfg.applied.append((t_id, f"--quantize {quant[t_id]}" + (
                " (TGI repacks the AWQ checkpoint for its exllama kernels on ROCm)"
                if t_id == "weight-int4-awq" and quant[t_id] == "gptq" else "")))
        elif t_id == "kv-fp8":
            o["kv-cache-dtype"] = "fp8_e4m3fn"
            cfg.applied.append((t_id, "--kv-cache-dtype fp8_e4m3fn"))
        elif t_id == "tensor-parallel":
            if p.pipeline_parallel > 1:
                cfg.not_applied.append((t_id, f"TGI shards within one node only; the plan needs "
                                              f"{p.pipeline_parallel} pipeline stages"))
            else:
                cfg.applied.append((t_id, f"--num-shard {p.tensor_parallel}"))
        elif t_id == "data-parallel" and p.attention_data_parallel == 1:
            cfg.applied.append((t_id, (f"{p.data_parallel} servers of --num-shard {p.tensor_parallel} behind a load "
                                       "balancer (a TGI launcher runs one copy; each replica is a server of its own)")))
        elif t_id == "paged-kv":
            # the budget the plan priced: its launcher's computed one where it chunks (profiles/engines/tgi.yaml
            # prefill_chunk_by_compute), else whole prompts up to its 4,096 fallback
            chunk = (steps["chunked-prefill"].params.get("prefill_chunk_tokens")
                     if "chunked-prefill" in steps else None)
            if chunk is None:  # whole prompts, up to the budget the plan priced its prefill batches at
                spec = advice_spec(advice)
                chunk = engine_chunk_budget(deployed_engine("tgi", hw), None, hw,
                                            p.tensor_parallel * p.pipeline_parallel, spec)
                if o["max-input-tokens"] > chunk:
                    # its router refuses to start with a budget under the longest prompt where it does not chunk
                    # (backends/v3/src/main.rs @v3.3.4: "`max_batch_prefill_tokens` must be >= `max_input_tokens`")
                    cfg.notes.append(f"--max-batch-prefill-tokens {o['max-input-tokens']}: TGI takes whole prompts "
                                     "here, and its router refuses to start with a prefill budget under "
                                     f"--max-input-tokens; the plan prices prefill batches of up to {chunk:,} tokens")
                    chunk = o["max-input-tokens"]
            o["max-batch-prefill-tokens"] = chunk
            cfg.applied.append((t_id, "always on in TGI (paged attention, continuous batching)"))
        elif t_id == "chunked-prefill":
            cfg.applied.append((t_id, "TGI 3 chunks prefills by default (--max-batch-prefill-tokens)"))
        elif t_id == "prefix-caching":
            cfg.env["PREFIX_CACHING"] = "1"
            cfg.applied.append((t_id, "environment PREFIX_CACHING=1 (TGI 3's default on supported backends)"))
        elif t_id == "cuda-graphs" and (sizes := _graph_sizes(max_seqs(advice))):
            # its launcher captures batches up to 32 by default and decodes larger ones eagerly; the plan priced every
            # decode step of its batch as a replayed graph
            o["cuda-graphs"] = ",".join(map(str, sizes))
            cfg.applied.append((t_id, f"--cuda-graphs {o['cuda-graphs']}: TGI captures batches up to "
                                      f"{TGI_GRAPH_SIZES[-1]} by default and runs larger ones eagerly; these cover the "
                                      f"plan's {max_seqs(advice)} sequences (a batch takes the next size up)"))
        elif t_id in ("cuda-graphs", "flash-attention"):
            cfg.applied.append((t_id, "TGI's default on this GPU"))
        elif t_id == "spec-ngram":
            o["speculate"] = step.params["num_speculative_tokens"]
            cfg.applied.append((t_id, f"--speculate {step.params['num_speculative_tokens']} (n-gram without Medusa heads)"))
        else:
            cfg.not_applied.append((t_id, no_option("TGI", t_id)))
    return cfg
