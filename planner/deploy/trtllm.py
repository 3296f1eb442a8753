"""TensorRT-LLM: each plan step mapped to its server option for the version in
`profiles/engine_options/`, or the reason it has none."""

from __future__ import annotations

from typing import Any

from ..analytic.engine_rates import engine_weight_kernel
from ..analytic.kvcache import kv_groups
from ..catalog.engines import engine_fact
from ..catalog.served import engine_window_pools, served_checkpoint_dtype
from ..schema import HardwareSpec
from ..schema.advice import Advice
from .checkpoints import draft_hub_id, eagle_head
from .config import (
    PORT,
    DeployError,
    EngineConfig,
    advice_spec,
    context_note,
    engine_memory_share,
    free_memory_fraction,
    held_memory,
    max_seqs,
    model_reference,
    no_option,
    plan_steps,
    served_context,
    server_tensor_parallel,
)


def engine_config(advice: Advice, hw: HardwareSpec) -> EngineConfig:
    p = advice.plan.predicted
    cfg = EngineConfig("trtllm", model_reference(advice), ["trtllm-serve"], positional_model=True)
    o, extra = cfg.options, cfg.extra
    o.update({"host": "0.0.0.0", "port": PORT, "backend": "pytorch", "tp_size": server_tensor_parallel(advice),
              "pp_size": p.pipeline_parallel, "max_batch_size": max_seqs(advice),
              "max_seq_len": served_context(advice, "trtllm"),
              "kv_cache_free_gpu_memory_fraction": free_memory_fraction(
                  advice, "trtllm", engine_memory_share(advice, "trtllm", hw))})
    cfg.notes.append(context_note(advice, "trtllm", "max_seq_len"))
    held_memory(cfg, advice, "kv_cache_free_gpu_memory_fraction", "free", hw)
    kv: dict[str, Any] = {"free_gpu_memory_fraction": o["kv_cache_free_gpu_memory_fraction"]}
    steps = plan_steps(advice)
    for t_id, step in steps.items():
        if t_id in ("weight-fp8", "weight-int4-awq", "weight-int4-gptq", "weight-fp4"):
            cfg.applied.append((t_id, "from a checkpoint quantized with TensorRT Model Optimizer (quant_config "
                                      "in the checkpoint)"))
        elif t_id == "kv-fp8":
            kv["dtype"] = "fp8"
            cfg.applied.append((t_id, "kv_cache_config.dtype fp8"))
        elif t_id in ("tensor-parallel", "pipeline-parallel"):
            cfg.applied.append((t_id, f"--tp_size {p.tensor_parallel} --pp_size {p.pipeline_parallel}"))
        elif t_id in ("expert-parallel", "expert-parallel-tp-attention"):
            # TensorRT-LLM's attention is data parallel over all tp_size ranks or tensor parallel over all of them
            o.update({"tp_size": p.expert_parallel, "ep_size": p.expert_parallel})
            if p.tensor_parallel == 1:
                extra["enable_attention_dp"] = True
                # each rank then schedules its own requests, max_batch_size of them: NVIDIA's DeepSeek-R1 recipes run
                # concurrency 3072 at max_batch_size 384 on 8 ranks (benchmarks/published/nvidia-trtllm-deepseek-r1-
                # best-perf.yaml); the plan's sequences are spread over the ranks
                o["max_batch_size"] = -(-max_seqs(advice) // p.attention_data_parallel)
                if "cuda_graph_config" in extra:
                    extra["cuda_graph_config"]["max_batch_size"] = o["max_batch_size"]
            elif p.attention_data_parallel > 1:
                raise DeployError(f"TensorRT-LLM runs attention either data parallel over all {p.expert_parallel} "
                                  f"ranks or tensor parallel over all of them, not {p.attention_data_parallel} groups "
                                  f"of {p.tensor_parallel} as the plan does: render vLLM or SGLang for it, or plan "
                                  "with --engine trtllm")
            cfg.applied.append((t_id, f"--tp_size {p.expert_parallel} --ep_size {p.expert_parallel}"
                                + (", enable_attention_dp" if p.tensor_parallel == 1 else "")))
        elif t_id == "data-parallel" and p.attention_data_parallel == 1:
            # trtllm-serve has no data-parallel option for copies of a model: each replica is a server of its own
            cfg.applied.append((t_id, (f"{p.data_parallel} servers of --tp_size {p.tensor_parallel} behind a load "
                                       "balancer (trtllm-serve runs one copy; each replica is a server of its own)")))
        elif t_id == "pd-disaggregation":
            cfg.pd = (p.prefill_instances, p.data_parallel - p.prefill_instances, p.tensor_parallel)
            cfg.applied.append((t_id, f"{cfg.pd[0]} context and {cfg.pd[1]} generation workers with "
                                      "cache_transceiver_config, trtllm-serve disaggregated in front (serve.sh roles)"))
        elif t_id == "paged-kv":
            cfg.applied.append((t_id, "always on in TensorRT-LLM (paged KV cache, in-flight batching)"))
        elif t_id == "chunked-prefill":
            extra["enable_chunked_prefill"] = True
            o["max_num_tokens"] = step.params.get("prefill_chunk_tokens", 2048)
            cfg.applied.append((t_id, "enable_chunked_prefill with --max_num_tokens"))
        elif t_id == "prefix-caching":
            kv["enable_block_reuse"] = True
            cfg.applied.append((t_id, "kv_cache_config.enable_block_reuse"))
        elif t_id == "cuda-graphs":
            extra["cuda_graph_config"] = {"max_batch_size": o["max_batch_size"], "enable_padding": True}
            cfg.applied.append((t_id, "cuda_graph_config: decode graphs (on by default from 1.0) captured up to the plan's "
                                      "batch, padded to the nearest captured size"))
        elif t_id == "flash-attention":
            cfg.applied.append((t_id, "TensorRT-LLM's fused attention kernels are its default"))
        elif t_id == "spec-draft":
            # the names DecodingBaseConfig.from_dict takes in the 1.0 and 1.1 releases (profiles/engine_options)
            extra["speculative_config"] = {"decoding_type": "DraftTarget",
                                           "max_draft_len": step.params["num_speculative_tokens"],
                                           "speculative_model_dir": _local_draft(
                                               cfg, draft_hub_id(advice, step.params["draft_model"]))}
            extra["disable_overlap_scheduler"] = True  # 1.0 refuses a draft model beside its overlap scheduler
            cfg.applied.append((t_id, ("speculative_config DraftTarget, the overlap scheduler off (1.0 runs a draft "
                                       "model without it)")))
        elif t_id == "spec-ngram":
            extra["speculative_config"] = {"decoding_type": "NGram", "max_draft_len": step.params["num_speculative_tokens"],
                                           "max_matching_ngram_size": step.params.get("prompt_lookup_max", 4)}
            extra["disable_overlap_scheduler"] = True  # as for a draft model (overlap_schedule_speculative)
            cfg.applied.append((t_id, ("speculative_config NGram, the overlap scheduler off (1.0 runs n-gram lookup "
                                       "without it)")))
        elif t_id == "spec-eagle3" and not eagle_head(advice, "trtllm"):
            cfg.not_applied.append((t_id, "no published EAGLE-3 head of this model that TensorRT-LLM loads is known"))
        elif t_id == "spec-eagle3":
            # 1.0 and 1.1 run EAGLE-3 as decoding type Eagle (eagle3_one_model, its default, made explicit)
            extra["speculative_config"] = {"decoding_type": "Eagle", "eagle3_one_model": True,
                                           "max_draft_len": step.params["num_speculative_tokens"],
                                           "speculative_model_dir": _local_draft(cfg, eagle_head(advice, "trtllm"))}
            cfg.applied.append((t_id, f"speculative_config Eagle (EAGLE-3) with {eagle_head(advice, 'trtllm')}"))
        elif t_id == "spec-mtp":
            extra["speculative_config"] = {"decoding_type": "MTP", "num_nextn_predict_layers": 1}
            cfg.applied.append((t_id, "speculative_config MTP"))
        else:
            cfg.not_applied.append((t_id, no_option("TensorRT-LLM", t_id)))
    extra["kv_cache_config"] = kv
    if "max_num_tokens" not in o and o["max_seq_len"] > (engine_fact("trtllm", "chunked_prefill_tokens") or 8192):
        # without chunked prefill a request's whole prompt is one step's tokens, and the PyTorch backend refuses a
        # request longer than max_num_tokens (8192 unset: llm.py _check_arguments "should not exceed max_num_tokens");
        # below that the default stands, the step budget the plan was priced at
        o["max_num_tokens"] = o["max_seq_len"]
        cfg.notes.append(f"--max_num_tokens {o['max_seq_len']} (max_seq_len): without chunked prefill each prompt is "
                         "prefilled in one step, and TensorRT-LLM refuses one longer than max_num_tokens")
    spec = advice_spec(advice)
    windows = {g.window for g in kv_groups(spec, "serving")}
    # the cache's pools per window size, as its profile states them (profiles/engines/trtllm.yaml window_pools)
    if len(windows) > 1 and engine_window_pools("trtllm", spec.model_type)[0] == "equal":
        cfg.notes.append(f"TensorRT-LLM gives each of the model's {len(windows)} attention window sizes a pool of the "
                         "same share of its KV cache (TRTLLM_WINDOW_SIZE_SHARES, not set here, would change the "
                         "split): the predicted sequences fit under that default split")
    # gpt-oss's MXFP4 experts where the prediction prices the TRITON MoE backend's kernel (its profile's kernels: mxfp4,
    # on the devices that kernel runs on: Hopper), which the release these configs pin does not ship, and which runs
    # experts expert parallel only
    if served_checkpoint_dtype(spec, hw, "trtllm") == "mxfp4" and engine_weight_kernel("trtllm", "mxfp4", hw):
        layout = "" if o["tp_size"] == 1 or o.get("ep_size") == o["tp_size"] else \
            " Under tensor parallelism, as here, TRITON cannot run the experts (expert parallel only): they run CUTLASS's."
        cfg.notes.append("The predicted figures price the MXFP4 experts on OpenAI's triton_kernels, TensorRT-LLM's "
                         "TRITON MoE backend (its gpt_oss README: \"use the TRITON moe_backend on Hopper\"). In this "
                         "release it needs OpenAI's kernels from a Triton checkout (\"The kernels are not packaged in "
                         "the wheel, so set the environment variable TRITON_ROOT\"): build Triton at the commit that "
                         "README names, export TRITON_ROOT and add `moe_config: {backend: TRITON}` to the options file. "
                         "Without them the experts run the default CUTLASS backend, which the prediction does not "
                         "price." + layout)
    return cfg


def _local_draft(cfg: EngineConfig, repo: str) -> str:
    """The folder a draft model (or EAGLE head) is read from, with the note that downloads it there: TensorRT-LLM
    1.0's PyTorch backend loads a speculative model from a local path only (NVIDIA/TensorRT-LLM#10099, merged after
    it: "Currently, for the PyTorch / AutoDeploy backends, the draft model for speculative decoding needs to be
    provided as a local path")."""
    folder = f"./models/{repo.split('/')[-1]}"
    cfg.notes.append(f"TensorRT-LLM reads its speculative model from a local folder: download it first, "
                     f"`hf download {repo} --local-dir {folder}`")
    return folder
