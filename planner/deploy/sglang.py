"""SGLang: each plan step mapped to its server option for the version in
`profiles/engine_options/`, or the reason it has none."""

from __future__ import annotations

from ..catalog.engine_refusals import pipeline_refusal
from ..catalog.expert_dispatch import dispatch_note
from ..schema import HardwareSpec
from ..schema.advice import Advice
from .checkpoints import draft_hub_id, eagle_head, experts_whole_option
from .config import (
    PORT,
    EngineConfig,
    context_note,
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


def engine_config(advice: Advice, hw: HardwareSpec) -> EngineConfig:
    p = advice.plan.predicted
    cfg = EngineConfig("sglang", model_reference(advice), ["python", "-m", "sglang.launch_server"])
    o = cfg.options
    o.update({"model-path": cfg.model, "host": "0.0.0.0", "port": PORT, "served-model-name": advice.model.name,
              "dtype": dtype16(hw), "tensor-parallel-size": p.tensor_parallel,
              "context-length": served_context(advice, "sglang"),
              "max-running-requests": max_seqs(advice),
              "mem-fraction-static": memory_fraction(advice, "sglang", engine_memory_share(advice, "sglang", hw),
                                                     static=hw)})
    cfg.notes.append(context_note(advice, "sglang", "--context-length"))
    note = memory_note(advice, "sglang", "--mem-fraction-static", static=hw)
    if note:
        cfg.notes.append(note)
    else:
        held_memory(cfg, advice, "--mem-fraction-static", "static", hw)
    if p.pipeline_parallel > 1:  # SGLang starts pipeline stages only without its overlap scheduler (the 0.5 series)
        o.update({"pipeline-parallel-size": p.pipeline_parallel, "disable-overlap-schedule": True})
    quant = {"weight-fp8": "fp8", "weight-int4-awq": "awq", "weight-int4-gptq": "gptq", "weight-w8a8-int8": "w8a8_int8",
             "weight-fp4": "modelopt_fp4"}
    steps = plan_steps(advice)
    for t_id, step in steps.items():
        feature = "speculative" if t_id.startswith("spec-") else "mixed_chunk" if t_id == "mixed-chunk" else None
        if feature and (why := pipeline_refusal("sglang", p.pipeline_parallel, feature)):
            cfg.not_applied.append((t_id, why))  # a plan loaded by hand: the planner leaves them out of such a layout
        elif t_id in quant:
            o["quantization"] = quant[t_id]
            cfg.applied.append((t_id, f"--quantization {quant[t_id]}"))
        elif t_id == "kv-fp8":
            o["kv-cache-dtype"] = "fp8_e4m3"
            cfg.applied.append((t_id, "--kv-cache-dtype fp8_e4m3"))
        elif t_id in ("tensor-parallel", "pipeline-parallel"):
            cfg.applied.append((t_id, f"--tensor-parallel-size {p.tensor_parallel}" + (
                f" --pipeline-parallel-size {p.pipeline_parallel}" if p.pipeline_parallel > 1 else "")
                + experts_whole_option("sglang", o, p)))
        elif t_id == "data-parallel" and p.attention_data_parallel > 1:
            # a plan made for vLLM's MoE data parallelism (attention data parallel, the experts tensor parallel over
            # every device) is SGLang's DP attention without expert parallelism; its --tp-size counts every device
            devices = p.tensor_parallel * p.attention_data_parallel
            o.update({"tensor-parallel-size": devices, "enable-dp-attention": True,
                      "data-parallel-size": p.attention_data_parallel})
            cfg.applied.append((t_id, f"--tensor-parallel-size {devices} --enable-dp-attention --data-parallel-size "
                                      f"{p.attention_data_parallel} (attention data parallel, the experts "
                                      + ("split whole" if p.expert_parallel > 1 else "tensor parallel")
                                      + f" over all {devices} GPUs)" + experts_whole_option("sglang", o, p)))
        elif t_id == "data-parallel":
            o["data-parallel-size"] = p.data_parallel  # --dp-size is its alias
            cfg.applied.append((t_id, f"--data-parallel-size {p.data_parallel} with --tensor-parallel-size "
                                      f"{p.tensor_parallel}" + experts_whole_option("sglang", o, p)))
        elif t_id in ("expert-parallel", "expert-parallel-tp-attention"):
            # SGLang's --tp-size counts every device; with DP attention, attention runs tp / dp wide
            o.update({"tensor-parallel-size": p.expert_parallel, "expert-parallel-size": p.expert_parallel})
            how = f"--tensor-parallel-size {p.expert_parallel} --expert-parallel-size {p.expert_parallel}"
            if p.attention_data_parallel > 1:
                o.update({"enable-dp-attention": True, "data-parallel-size": p.attention_data_parallel})
                cfg.notes.append(dispatch_note("sglang", hw))
                how += f" --enable-dp-attention --data-parallel-size {p.attention_data_parallel}"
            cfg.applied.append((t_id, how))
        elif t_id == "pd-disaggregation":
            cfg.pd = (p.prefill_instances, p.data_parallel - p.prefill_instances, p.tensor_parallel)
            cfg.applied.append((t_id, f"{cfg.pd[0]} --disaggregation-mode prefill and {cfg.pd[1]} --disaggregation-mode "
                                      "decode servers (NIXL moves the cache), sglang_router --pd-disaggregation in "
                                      "front (serve.sh roles)"))
        elif t_id == "paged-kv":
            cfg.applied.append((t_id, "always on in SGLang (token-level KV pool, continuous batching)"))
        elif t_id == "chunked-prefill":
            o["chunked-prefill-size"] = step.params.get("prefill_chunk_tokens", 2048)
            cfg.applied.append((t_id, "--chunked-prefill-size"))
        elif t_id == "mixed-chunk":
            o["enable-mixed-chunk"] = True
            cfg.applied.append((t_id, "--enable-mixed-chunk"))
        elif t_id == "prefix-caching":
            cfg.applied.append((t_id, "RadixAttention prefix caching is SGLang's default"))
        elif t_id in ("cuda-graphs", "flash-attention"):
            cfg.applied.append((t_id, "SGLang's default on this GPU"))
        elif t_id == "spec-draft":
            o.update({"speculative-algorithm": "STANDALONE",
                      "speculative-draft-model-path": draft_hub_id(advice, step.params["draft_model"]),
                      "speculative-num-steps": step.params["num_speculative_tokens"],
                      "speculative-eagle-topk": 1,
                      "speculative-num-draft-tokens": step.params["num_speculative_tokens"] + 1})
            cfg.applied.append((t_id, "--speculative-algorithm STANDALONE with the draft model"))
        elif t_id == "spec-eagle3" and not eagle_head(advice, "sglang"):
            cfg.not_applied.append((t_id, "no published EAGLE-3 head of this model that SGLang loads is known"))
        elif t_id == "spec-eagle3":  # a chain of proposals: SpecForge's published setting (steps 3, topk 1, 4 tokens)
            o.update({"speculative-algorithm": "EAGLE3", "speculative-draft-model-path": eagle_head(advice, "sglang"),
                      "speculative-num-steps": step.params["num_speculative_tokens"], "speculative-eagle-topk": 1,
                      "speculative-num-draft-tokens": step.params["num_speculative_tokens"] + 1})
            cfg.applied.append((t_id, f"--speculative-algorithm EAGLE3 with {eagle_head(advice, 'sglang')}"))
        elif t_id == "spec-mtp":
            # DeepSeek's MTP module runs as EAGLE's draft; Qwen3-Next's as NEXTN (SGLang's Qwen3 page). One proposed
            # token, as the plan prices it (its acceptance is the DeepSeek-V3 report's for the module's one token):
            # SGLang's DeepSeek page — "The minimum configuration is --speculative-num-steps 1
            # --speculative-eagle-topk 1 --speculative-num-draft-tokens 2, which can achieve speedup for larger batch
            # sizes"; longer chains re-run the module on its own guesses, at an acceptance no source states
            algorithm = "NEXTN" if advice.model.model_type == "qwen3_next" else "EAGLE"
            o.update({"speculative-algorithm": algorithm, "speculative-num-steps": 1, "speculative-eagle-topk": 1,
                      "speculative-num-draft-tokens": 2})
            cfg.applied.append((t_id, f"--speculative-algorithm {algorithm} (the MTP module as the draft)"))
        elif t_id == "spec-ngram":
            o.update({"speculative-algorithm": "NGRAM",
                      "speculative-num-draft-tokens": step.params["num_speculative_tokens"]})
            cfg.applied.append((t_id, "--speculative-algorithm NGRAM"))
        elif t_id == "cpu-offload":
            gb = offload_gib(p)
            o["cpu-offload-gb"] = gb
            cfg.applied.append((t_id, f"--cpu-offload-gb {gb} (the weights the plan keeps in host memory)"))
        else:
            cfg.not_applied.append((t_id, no_option("SGLang", t_id)))
    if "cuda-graphs" not in steps:
        o["disable-cuda-graph"] = True
    return cfg
