"""llama.cpp: each plan step mapped to its server option for the version in
`profiles/engine_options/`, or the reason it has none."""

from __future__ import annotations

from ..analytic.offload import gpu_layers_within, places_head_first
from ..analytic.profile import setup_for_request
from ..catalog.engines import deployed_engine, engine_storage
from ..catalog.served import served_checkpoint_dtype
from ..schema import HardwareSpec, ProfileRequest
from ..schema.advice import Advice
from ..plan.techniques.quantization import LLAMA_CPP_KV
from .checkpoints import draft_hub_id, published_gguf, served_hub_id
from .config import (
    LLAMA_CPP_BUILD,
    PORT,
    EngineConfig,
    advice_model_ref,
    advice_spec,
    context_note,
    max_seqs,
    model_reference,
    no_option,
    plan_steps,
    served_context,
)

# the weight-format steps a llama.cpp plan can carry, by the format they store: the GGUF file type is the one the
# engine's profile stores that format in (the analytic model predicts the same file)
WEIGHT_STEPS = {"weight-int8": "int8", "weight-int4": "int4"}
GGUF_TYPES = {t: engine_storage("llama.cpp", fmt)["format"] for t, fmt in WEIGHT_STEPS.items()}


def served_setup(advice: Advice, hw: HardwareSpec, served: dict):
    """The analytic setup of the GGUF file the config serves on one of the devices, whole on the device."""
    # the build of the image the config runs (which places the output head as its release does)
    request = ProfileRequest(model=advice_model_ref(advice), hardware=hw.id, engine=deployed_engine("llama.cpp", hw),
                             **served)
    return setup_for_request(request, advice_spec(advice), hw)


def engine_config(advice: Advice, hw: HardwareSpec) -> EngineConfig:
    p, w = advice.plan.predicted, advice.workload
    steps = plan_steps(advice)
    weight_step = next((t for t in steps if t in GGUF_TYPES), None)
    # a checkpoint whose routed experts are MXFP4 (gpt-oss) converts to a GGUF that keeps them so, the rest Q8_0
    mxfp4 = not weight_step and served_checkpoint_dtype(advice_spec(advice), hw, "llama.cpp") == "mxfp4"
    quant = GGUF_TYPES[weight_step] if weight_step else "MXFP4" if mxfp4 else "F16" if not hw.features.bf16 else "BF16"
    gguf = f"models/{advice.model.name}-{quant}.gguf"
    published = published_gguf(advice, quant)
    cfg = EngineConfig("llama.cpp", f"{published['hub_id']}:{quant}" if published else gguf, ["llama-server"])
    # the weights as served: the plan's format in its GGUF file type, else the 16-bit GGUF
    cfg.served = ({"dtype": WEIGHT_STEPS[weight_step], "gguf_type": quant} if weight_step
                  else {"dtype": "mxfp4"} if mxfp4 else {"dtype": "fp16" if quant == "F16" else "bf16"})
    o = cfg.options
    slots = max_seqs(advice)
    o.update({"hf-repo": cfg.model} if published else {"model": gguf})
    o.update({"host": "0.0.0.0", "port": PORT, "ctx-size": served_context(advice, "llama.cpp") * slots,
              "parallel": slots, "n-gpu-layers": 999 if hw.kind == "gpu" or hw.kind == "apple" else 0,
              "cont-batching": True})
    cfg.notes.append(context_note(advice, "llama.cpp", "each --parallel slot's share of --ctx-size,"))
    if w.chat is not False:
        # chat requests through the model's own (Jinja) chat template, tool calls included: llama-server's default only
        # from ggml-org/llama.cpp#17524 (2025-11-26, "server: enable jinja by default ... to allow tool calling"),
        # after the builds the configs name; before it a request with tools fails ("tools param requires --jinja flag")
        o["jinja"] = True
        cfg.notes.append("--jinja: chat requests go through the model's own chat template, tool calls included "
                         "(llama-server's default only since ggml-org/llama.cpp#17524, November 2025)")
    source = f"<a local copy of {served_hub_id(advice, model_reference(advice))}>"
    if published:
        cfg.notes.append(f"llama-server downloads the published {quant} GGUF of {published['hub_id']} itself "
                         f"(--hf-repo; source: {published['source']})")
    elif quant in DIRECT_TYPES:
        cfg.notes.append(f"convert the checkpoint to GGUF: {gguf_commands(source, quant, gguf, advice.model.name)}")
    elif mxfp4:
        outtype = "bf16" if hw.features.bf16 else "f16"
        whole = f"models/{advice.model.name}-{outtype.upper()}.gguf"
        cfg.notes.append(f"convert the checkpoint to GGUF and quantize it to MXFP4_MOE: `python convert_hf_to_gguf.py "
                         f"{source} --outtype {outtype} --outfile {whole}` (its routed experts stay MXFP4, as the "
                         f"checkpoint stores them), then `llama-quantize {whole} {gguf} MXFP4_MOE` (the other tensors "
                         "to Q8_0, as predicted)")
    else:
        cfg.notes.append(f"convert the checkpoint to GGUF and quantize it to {quant}: "
                         f"{gguf_commands(source, quant, gguf, advice.model.name)}")
    for t_id, step in steps.items():
        if t_id in GGUF_TYPES:
            cfg.applied.append((t_id, f"GGUF {quant}" + (f" from {published['hub_id']}" if published else "")))
        elif t_id in ("kv-int8", "kv-int4"):
            kind = LLAMA_CPP_KV[t_id.removeprefix("kv-")]
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
        elif t_id == "prefix-caching":  # the per-slot prompt cache the plan prices; --cache-reuse (KV shifting) stays off
            cfg.applied.append((t_id, "llama-server's per-slot prompt cache, on by default (each request's "
                                      "cache_prompt field, true unless a request sets it false; no server option)"))
        elif t_id == "spec-draft":
            name = step.params["draft_model"]
            repo = published_gguf(advice, quant, name)
            o["draft-max"] = step.params["num_speculative_tokens"]
            cfg.notes.append(f"--draft-max and the draft options are named as the containers' build runs them "
                             f"({LLAMA_CPP_BUILD}): builds from ggml-org/llama.cpp#22397 (2026-04-26) name it "
                             "--spec-draft-n-max, and from #23988 (2026-06-01) a draft model needs --spec-type "
                             "draft-simple too; rename them for a newer llama-server of your own")
            if repo:  # llama-server downloads it as it does the target (--hf-repo-draft REPO:QUANT)
                o["hf-repo-draft"] = f"{repo['hub_id']}:{quant}"
                cfg.applied.append((t_id, f"--hf-repo-draft {o['hf-repo-draft']}"))
            else:
                draft, hub = f"models/{name}-{quant}.gguf", draft_hub_id(advice, name) or name
                o["model-draft"] = draft
                cfg.applied.append((t_id, f"--model-draft {draft}"))
                cfg.notes.append(f"the draft model's GGUF: "
                                 f"{gguf_commands(f'<a local copy of {hub}>', quant, draft, name)}")
        elif t_id == "cpu-offload":
            # the most layer slots whose weights, in the file served, take no more of the server's devices than the
            # plan's (llama.cpp counts --n-gpu-layers over all of them, splitting the layers between them)
            devices = p.tensor_parallel * p.pipeline_parallel
            served = served_setup(advice, hw, cfg.served)
            o["n-gpu-layers"] = gpu_layers_within(served, p.weights_per_device_bytes * devices)
            head = "the head first on the GPU" if places_head_first(served) else \
                "this build puts the last layers on the GPU first, the head only with the last slot"
            cfg.applied.append((t_id, f"--n-gpu-layers {o['n-gpu-layers']} of its {advice.model.num_layers + 1} "
                                      f"slots (its layers and the output head: {head}); the "
                                      "rest, and their caches, stay in host memory, where the CPU computes them"))
        elif t_id == "pipeline-parallel":
            o["split-mode"] = "layer"
            cfg.applied.append((t_id, "--split-mode layer over the visible GPUs"))
        else:
            cfg.not_applied.append((t_id, no_option("llama.cpp", t_id)))
    return cfg


# the GGUF types convert_hf_to_gguf.py writes itself ("--outtype", choices "f32", "f16", "bf16", "q8_0", ...): no
# 16-bit copy on the way (twice a Q8_0 file's size: 1.3 TB for DeepSeek-V3)
DIRECT_TYPES = ("BF16", "F16", "Q8_0")


def gguf_commands(source: str, quant: str, gguf: str, name: str) -> str:
    """The commands that make the GGUF file `gguf` of type `quant` from the checkpoint `source`: one conversion where
    the converter writes that type, else a 16-bit file quantized by llama-quantize."""
    convert = f"`python convert_hf_to_gguf.py {source} --outtype "
    if quant in DIRECT_TYPES:
        return f"{convert}{quant.lower()} --outfile {gguf}`"
    whole = f"models/{name}-F16.gguf"
    return f"{convert}f16 --outfile {whole}`, then `llama-quantize {whole} {gguf} {quant}`"
