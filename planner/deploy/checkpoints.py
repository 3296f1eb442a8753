"""Which checkpoint a config serves: the instruct (chat) model for conversational workloads, and for a plan with a
weight format, a published checkpoint in that format (catalog data: `instruct` and `checkpoints` in
`profiles/models/<name>.json`, each with its source) where the engine loads it; otherwise the 16-bit checkpoint where
the engine quantizes online (fp8), or a folder the user produces, with the command that produces it. Never a
quantization flag over a 16-bit checkpoint that the engine cannot quantize itself."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..analytic.setup import build_setup, total_weight_bytes
from ..catalog.dtypes import bytes_per_element
from ..catalog.hardware import resolve_hardware
from ..catalog.models import catalog_entry, instruct_checkpoint
from ..catalog.served import (
    CHECKPOINT_FORMATS,
    ONLINE_QUANTIZATION,
    block_split,
    checkpoint_loads,
    expert_devices,
    online_peak,
    published_checkpoint,
)
from ..catalog.workloads import serves_instruct
from ..errors import DeployError
from ..schema.advice import Advice
from .config import advice_catalog_entry, advice_spec, data_parallel_ranks

# How to produce a checkpoint of a format that is not published
PRODUCE = {
    "gptq": "optiplan apply {model} -t weight-int4-gptq -o {folder} (GPTQ through gptqmodel, on a CUDA GPU)",
    "awq": "AutoAWQ (AutoAWQForCausalLM.from_pretrained(...).quantize(tokenizer, quant_config={{'w_bit': 4, "
           "'q_group_size': 128, 'zero_point': True, 'version': 'GEMM'}}), then save_quantized('{folder}'))",
    "fp8": "TensorRT Model Optimizer (examples/llm_ptq/hf_ptq.py --qformat fp8 --export_path {folder})",
    "w8a8_int8": "llm-compressor (oneshot with a SmoothQuant + GPTQ W8A8 recipe{ignoring}) into {folder}",
    "w8a16_int8": "llm-compressor (oneshot with QuantizationModifier(targets='Linear', scheme='W8A16', "
                  "ignore=[{ignore}]), no calibration data) into {folder}",
    # vLLM's and SGLang's modelopt_fp4 reads a Model Optimizer NVFP4 checkpoint (its hf_quant_config.json); neither
    # quantizes a 16-bit one to NVFP4 as it loads
    "nvfp4": "TensorRT Model Optimizer (examples/llm_ptq/hf_ptq.py --qformat nvfp4 --export_path {folder})",
}

# TensorRT-LLM reads the quantization a TensorRT Model Optimizer checkpoint declares: its --qformat per format
MODELOPT = {"awq": "int4_awq", "fp8": "fp8", "nvfp4": "nvfp4"}


# An llm-compressor recipe keeps a mixture of experts' router (and a shared expert's gate) at 16 bits, as its MoE
# examples do (vllm-project/llm-compressor examples/quantizing_moe and quantization_w8a8_fp8: Qwen3 MoE "re:.*mlp.gate$",
# Mixtral "re:.*block_sparse_moe.gate", Qwen3.5 MoE "re:.*shared_expert_gate$"): the engines build the router
# unquantized (vLLM's Qwen3MoeSparseMoeBlock: its gate a ReplicatedLinear with quant_config=None) and would not load
# a quantized one. Llama 4 names it feed_forward.router, gpt-oss mlp.router; transformers 5 moved Mixtral's and
# PhiMoE's from block_sparse_moe.gate to mlp.gate (both kept: the recipe runs on the user's transformers).
ROUTER_IGNORES = {"qwen2_moe": ("re:.*mlp.gate$", "re:.*shared_expert_gate$"), "qwen3_moe": ("re:.*mlp.gate$",),
                  "qwen3_next": ("re:.*mlp.gate$", "re:.*shared_expert_gate$"), "deepseek_v2": ("re:.*mlp.gate$",),
                  "deepseek_v3": ("re:.*mlp.gate$",), "mixtral": ("re:.*block_sparse_moe.gate$", "re:.*mlp.gate$"),
                  "phimoe": ("re:.*block_sparse_moe.gate$", "re:.*mlp.gate$"), "llama4": ("re:.*feed_forward.router$",),
                  "gpt_oss": ("re:.*mlp.router$",)}


def recipe_ignores(model_type: str) -> tuple[str, ...]:
    """The modules an llm-compressor recipe leaves at 16 bits: the head, and a mixture of experts' router
    (`ROUTER_IGNORES`)."""
    return ("lm_head", *ROUTER_IGNORES.get(model_type, ()))


# DeepSeek V3's NVFP4 checkpoint comes from Model Optimizer's own DeepSeek flow, not hf_ptq.py: its examples/deepseek
# README — "Due to the model size, currently it requires 8xH200 or 16xH100 to quantize the FP8 model"
MODELOPT_DEEPSEEK_FP4 = ("TensorRT Model Optimizer's DeepSeek flow (examples/deepseek/README.md: convert the FP8 "
                         "checkpoint with its inference/convert.py, calibrate with ptq.py under torchrun, then "
                         "quantize_fp8_to_nvfp4.sh into {folder}; it needs 8 H200 or 16 H100 to run)")


def _produce(engine: str, fmt: str, model: str, folder: str, model_type: str = "") -> str:
    if fmt == "nvfp4" and model_type == "deepseek_v3":
        return MODELOPT_DEEPSEEK_FP4.format(folder=folder)
    if engine == "trtllm" and fmt in MODELOPT:
        return (f"TensorRT Model Optimizer (examples/llm_ptq/hf_ptq.py --qformat {MODELOPT[fmt]} --export_path "
                f"{folder})")
    ignores = recipe_ignores(model_type)
    routers = ignores[1:]
    return PRODUCE[fmt].format(model=model, folder=folder, ignore=", ".join(f"'{i}'" for i in ignores),
                               ignoring=f", ignoring lm_head and {', '.join(routers)}" if routers else "")


@dataclass
class Served:
    model: str  # hub id or folder the engine loads
    notes: list[str] = field(default_factory=list)
    published: str | None = None  # the weight format of the published checkpoint served, which declares it
    produced: str | None = None  # the weight format of the checkpoint the user produces, which declares it too
    options: dict = field(default_factory=dict)  # engine options the checkpoint needs at this parallelism


# Where a block-quantized checkpoint's expert widths do not split over the tensor-parallel ranks, the experts split
# whole instead (vLLM PR #58152 turns this on by itself; sglang takes the expert-parallel size)
EXPERTS_WHOLE = {"vllm": lambda tp: {"enable-expert-parallel": True}, "sglang": lambda tp: {"expert-parallel-size": tp}}


def experts_whole_option(engine: str, options: dict, predicted) -> str:
    """Where the plan runs the routed experts whole over their devices inside a tensor- or data-parallel layout (a
    block-fp8 checkpoint whose experts do not slice into whole blocks there: `served.experts_split_whole`), the
    engine's option for it (`EXPERTS_WHOLE`) set in `options`, and what it adds to the step's description."""
    if predicted.expert_parallel <= 1:
        return ""
    added = EXPERTS_WHOLE[engine](predicted.expert_parallel)
    options.update(added)
    flags = " ".join(f"--{k}" if v is True else f"--{k} {v}" for k, v in added.items())
    return (f"; {flags}: the routed experts split whole over the {predicted.expert_parallel} GPUs, as the "
            "checkpoint's quantization blocks need")


def wants_instruct(advice: Advice) -> bool:
    return serves_instruct(advice.workload)


def serving_checkpoint(advice: Advice, engine: str, default: str, not_applied: frozenset[str] = frozenset()) -> Served:
    """The checkpoint `engine` serves for this plan; `default` is the model as given (its hub id or path); a weight
    step the engine leaves out (`not_applied`: TensorRT-LLM's PyTorch backend has no int8 recipe) asks for none."""
    entry = advice_catalog_entry(advice)
    if not entry:
        return Served(default)
    chat = wants_instruct(advice)
    served = Served(default)
    instruct = instruct_checkpoint(entry)
    if chat and instruct:
        served.model = instruct
        if instruct != default:
            served.notes.append(f"serves {instruct}, the instruct model (a {advice.workload.name} workload needs its "
                                f"chat template), not the base {default}")
    elif chat:
        served.notes.append(f"the catalog knows no instruct checkpoint of {default}: a base model has no chat template "
                            "and answers as a text completer; point the model at your chat-tuned checkpoint")
    fmt = next((CHECKPOINT_FORMATS[s.technique] for s in advice.plan.steps
                if s.technique in CHECKPOINT_FORMATS and s.technique not in not_applied), None)
    if fmt is None:
        return served
    spec, hw = advice_spec(advice), resolve_hardware(advice.hardware.id)
    published = [c for c in entry.get("checkpoints") or [] if checkpoint_loads(c, fmt, engine, hw)]
    # the same model only: an instruct checkpoint is another model than the base a completion workload serves (the
    # one the plan's weight step names: `served.published_checkpoint`)
    match = published_checkpoint(entry["name"], fmt, engine, chat, hw)
    block = (match or {}).get("weight_block_size")
    predicted = advice.plan.predicted
    tp, dp = predicted.tensor_parallel, data_parallel_ranks(predicted)
    expert_tp = expert_devices(engine, predicted, hw)
    if match is not None and block and expert_tp > 1:
        # an expert-parallel step splits the experts whole; a tensor- or data-parallel plan that would slice them into
        # partial blocks is priced with them whole (`served.experts_split_whole`), and the note says why
        ep_step = any(s.technique in ("expert-parallel", "expert-parallel-tp-attention") for s in advice.plan.steps)
        experts, rest = block_split(spec, block, tp, ep_step, expert_tp)
        why = f"{match['hub_id']} is quantized in blocks of {block} columns ({match['block_source']})"
        if rest and engine in ONLINE_QUANTIZATION.get(fmt, ()):
            online = online_peak(spec, hw, engine, fmt, predicted, expert_tp) is None
            served.notes.append(f"{why}: at tensor parallel {tp} its {', '.join(rest)} columns per device are not "
                                "whole blocks, so " + (f"{engine} quantizes the 16-bit checkpoint as it loads it "
                                                       "instead" if online else f"{engine} cannot load it"))
            match = None
        elif rest:
            raise DeployError(f"{why}: at tensor parallel {tp} its {', '.join(rest)} columns per device are not "
                              "whole blocks and the checkpoint cannot load; plan with fewer devices per replica")
        elif experts and engine in EXPERTS_WHOLE:
            served.options.update(EXPERTS_WHOLE[engine](expert_tp))
            over = (f"tensor parallel {tp}" if expert_tp == tp else
                    f"tensor parallel {tp} x data parallel {dp} (the engine slices a MoE's experts over every "
                    "data-parallel rank: the expert layers form a (DP x TP) sized tensor parallel group by default)")
            served.notes.append(f"{why}: at {over} its {experts[0]} columns per device are not whole blocks, so the "
                                f"experts split whole over the {expert_tp} devices (expert parallel; attention keeps "
                                "its layout), as the plan prices them")
    if match is not None:
        served.model, served.published = match["hub_id"], fmt
        served.notes.append(f"serves {match['hub_id']}, a published {fmt} checkpoint (source: {match['source']})")
    elif engine in ONLINE_QUANTIZATION.get(fmt, ()) and \
            (peak := online_peak(spec, hw, engine, fmt, predicted, expert_tp)) is None:
        served.notes.append(f"{engine} quantizes {served.model} to {fmt} as it loads it (no {fmt} checkpoint needed)")
    else:
        if engine in ONLINE_QUANTIZATION.get(fmt, ()):
            served.notes.append(peak)
        folder = f"models/{advice.model.name}-{fmt}"
        source_model = served_hub_id(advice, default)  # the checkpoint served, quantized
        served.model, served.produced = f"./{folder}", fmt
        other = next((c["hub_id"] for c in published), None)  # the other model's (instruct or base)
        served.notes.append(f"no published {fmt} checkpoint of {advice.model.name} that "
                            f"{engine} loads is known"
                            + (f" ({other} is the {'instruct' if not chat else 'base'} model, another model than the "
                               f"{'instruct' if chat else 'base'} one this workload serves)" if other else "")
                            + f": produce ./{folder} from {source_model}"
                            f" with {_produce(engine, fmt, source_model, folder, advice.model.model_type)}")
    return served


def eagle_head(advice: Advice, engine: str) -> str | None:
    """The published EAGLE-3 head of this catalog model that `engine` loads (catalog `eagle`), or None: the plan
    may have been made for another engine, whose head this one does not load."""
    heads = advice_catalog_entry(advice).get("eagle") or []
    return next((h["hub_id"] for h in heads if engine in h["engines"]), None)


def checkpoint_dtype(advice: Advice) -> str | None:
    """The weight format a catalog model is published in where it is not 16-bit (DeepSeek-V3: fp8; gpt-oss: its
    experts in mxfp4), else None."""
    return advice_catalog_entry(advice).get("checkpoint_dtype")


# the dtype a checkpoint format (`CHECKPOINT_FORMATS`) stores its weights in, where its name is not one (fp8, nvfp4 are)
FORMAT_DTYPES = {"awq": "int4", "gptq": "int4", "w8a8_int8": "int8", "w8a16_int8": "int8"}


def checkpoint_bytes(advice: Advice, fmt: str | None = None) -> float:
    """The bytes of the checkpoint a server downloads: in `fmt` where it serves one of its own (a published FP8 or
    AWQ checkpoint: its dtype's bytes a weight, its scales and any 16-bit layers aside), else the model's published
    format's (fp8: a byte per weight; gpt-oss's MXFP4 experts beside 16-bit layers), else 16 bits a weight."""
    fmt = fmt or checkpoint_dtype(advice)
    if fmt == "mxfp4":
        spec = advice_spec(advice)
        return total_weight_bytes(build_setup(spec, resolve_hardware(advice.hardware.id), weight_dtype=fmt))
    return advice.model.params_total * (bytes_per_element(FORMAT_DTYPES.get(fmt, fmt)) if fmt else 2.0)


def draft_hub_id(advice: Advice, draft: str) -> str | None:
    """The checkpoint of a speculative draft model (a catalog name): its instruct model where the served model is
    the instruct one, so the draft proposes what a chat-tuned target accepts."""
    entry = catalog_entry(draft)
    instruct = instruct_checkpoint(entry)
    return instruct if wants_instruct(advice) and instruct else entry.get("hub_id")


def served_hub_id(advice: Advice, default: str) -> str:
    """The 16-bit checkpoint a config serves: the instruct model for a chat workload where the catalog knows it."""
    if not wants_instruct(advice):
        return default
    return instruct_checkpoint(advice_catalog_entry(advice)) or default


def published_gguf(advice: Advice, quant: str, model: str | None = None) -> dict | None:
    """A published GGUF repository of the served model (or of catalog model `model`: a speculative draft) with the
    `quant` file (catalog `checkpoints`, format gguf), which llama-server downloads itself (`--hf-repo REPO:QUANT`,
    `--hf-repo-draft`), or None."""
    chat = wants_instruct(advice)
    entry = catalog_entry(model) if model else advice_catalog_entry(advice)
    return next((c for c in entry.get("checkpoints") or []
                 if c["format"] == "gguf" and c["instruct"] == chat and quant in c.get("quants", ())), None)
