"""How an engine serves a given model: the weight format of its published checkpoint (its own low-precision format
where the engine and the device run it as it is, else None: the engine dequantizes it to 16 bits, or converts it to a
file of its own), the published checkpoint it serves in a plan's weight format (`published_checkpoint`, whose
quantization blocks decide how a MoE's experts can split: `experts_split_whole`), and how the engine's cache makes
room for its attention windows."""

from __future__ import annotations

from typing import Any

from ... import profiles
from ..analytic.params import param_counts
from ..schema import HardwareSpec, ModelSpec
from ..schema.advice import Prediction
from .engines import below_compute_capability, device_fact, engine_dp_shares_experts, engine_fact
from .hardware import device_checkpoint_dtype, server_ranks

# the checkpoint format a plan's weight step is served from
CHECKPOINT_FORMATS = {"weight-int4-awq": "awq", "weight-int4-gptq": "gptq", "weight-fp8": "fp8",
                      "weight-w8a8-int8": "w8a8_int8", "weight-int8": "w8a16_int8", "weight-fp4": "nvfp4"}
# Engines that quantize a 16-bit checkpoint to the format as it loads (vLLM and SGLang `--quantization fp8`, TGI
# `--quantize fp8`, and TGI's `--quantize eetq` to int8 weight-only): profiles/engines/*.yaml and the engines'
# quantization docs
ONLINE_QUANTIZATION = {"fp8": ("vllm", "sglang", "tgi"), "w8a16_int8": ("tgi",)}
# Engines whose online quantization loads the whole 16-bit checkpoint onto the devices before it quantizes: a device
# must hold its share of the 16-bit weights. vLLM docs/features/quantization/fp8.md — "Currently, we load the model at
# original precision before quantizing down to 8-bits, so you need enough memory to load the whole model."; SGLang
# pull request #17945 (open) — "The current implementation of `fp8` online quantization first initializes and loads
# all weights in bf16, and only after quantizes them in `process_weights_after_loading` ... may lead to OOM during
# loading"
LOADS_16BIT_FIRST = {"fp8": ("vllm", "sglang")}
# the engines a served checkpoint is looked up for (their configs name one); the others read what optiplan apply
# writes (transformers) or a GGUF file of their own (llama.cpp)
CHECKPOINT_ENGINES = ("vllm", "sglang", "tgi", "trtllm")

# how an engine's cache makes room for a model's attention windows (`engine_window_pools`); "none": the engine applies
# no window to the model, every layer caching and attending over the whole context (`setup.setup_for_request`)
WINDOW_SPLITS = ("shared", "equal", "ratio", "whole", "none")
# one pool for every layer, a windowed layer holding its window (vLLM's, and every cache outside a serving engine)
SHARED_POOL = ("shared", 1.0)


def served_checkpoint_dtype(spec: ModelSpec, hw: HardwareSpec, engine: str | None = None) -> str | None:
    """The checkpoint's format as served: an engine whose profile lists the checkpoint formats it loads as they are
    (`checkpoint_formats`: llama.cpp keeps gpt-oss's MXFP4 experts in its GGUF on every backend it runs, and has no
    fp8 type for DeepSeek-V3's) serves those on any device it runs on and no other; an engine that states none, or no
    engine, serves the checkpoint where the device has its rate (`device_checkpoint_dtype`)."""
    formats = engine_fact(engine, "checkpoint_formats")
    if formats is None:
        return device_checkpoint_dtype(spec, hw)
    return spec.checkpoint_dtype if spec.checkpoint_dtype in formats else None


def engine_window_pools(engine: str | None, model_type: str, hw: HardwareSpec | None = None) -> tuple[str, float]:
    """How the engine's cache makes room for a model's attention windows (`memory.cache_bytes_per_device`), as its
    profile states (`window_pools`): "shared" (one pool, a windowed layer holding its window: the default), "equal"
    (a pool per window size, the same share of memory each), "ratio" (the windowed layers' pool holds `ratio` times
    the full layers' tokens), "whole" (a token's slot holds every layer, windowed or not) or "none" (the engine applies
    no window: every layer attends over, and caches, the whole context), with that ratio. A rule
    that names `model_types` applies to those; the others take its `other` split. On `hw`, a device rule's where one
    sets it (SGLang 0.5.8-0.5.9 on Blackwell)."""
    rule = (device_fact(engine, hw, "window_pools") if hw is not None else engine_fact(engine, "window_pools")) or {}
    split = rule.get("split", "shared")
    if "model_types" in rule and model_type not in rule["model_types"]:
        split = rule.get("other", "shared")
    if split not in WINDOW_SPLITS:
        raise ValueError(f"profiles/engines/{engine}.yaml window_pools: split {split!r} is none of "
                         f"{', '.join(WINDOW_SPLITS)}")
    return split, rule.get("ratio", 1.0)


def checkpoint_loads(checkpoint: dict[str, Any], fmt: str, engine: str | None, hw: HardwareSpec | None) -> bool:
    """Whether `engine` loads the catalog checkpoint as `fmt` weights on `hw` (any device where None): on the backends
    it names (`backends`: a TensorRT Model Optimizer checkpoint, which vLLM's ROCm build does not read) and, on CUDA,
    from the compute capability it names (`min_compute_capability`: the engines load a Model Optimizer FP8 checkpoint
    from 8.9 only, where they read other fp8 checkpoints weight-only on Ampere)."""
    if checkpoint["format"] != fmt or engine not in checkpoint["engines"]:
        return False
    if hw is None:
        return True
    floor = checkpoint.get("min_compute_capability")
    return hw.features.backend in checkpoint.get("backends", (hw.features.backend,)) and not (
        floor and hw.features.backend == "cuda" and below_compute_capability(hw, floor))


def published_checkpoint(model: str, fmt: str, engine: str | None, instruct: bool,
                         hw: HardwareSpec | None = None) -> dict[str, Any] | None:
    """The catalog's published checkpoint of `model` in weight format `fmt` that `engine` loads (on `hw`, where given:
    `checkpoint_loads`), of the same model the workload serves (the instruct one for a chat workload, else the base
    one), or None (a model outside the catalog, or none published)."""
    name = profiles.resolve_model_name(model)
    checkpoints = profiles.load_model(name).get("checkpoints") or [] if name else []
    return next((c for c in checkpoints if c["instruct"] == instruct and checkpoint_loads(c, fmt, engine, hw)), None)


def block_split(spec: ModelSpec, block: int, tp: int, experts_whole: bool,
                expert_tp: int | None = None) -> tuple[list[str], list[str]]:
    """The MLP widths whose tensor-parallel shard (width / tp) is not whole quantization blocks of `block` columns,
    which a block-fp8 checkpoint cannot load: (the routed experts' width, which expert parallelism keeps whole, split
    over `expert_tp` ranks where they are more than the attention's, vLLM's data-parallel ranks; the dense and shared
    MLPs' widths, which nothing but a smaller tensor parallel fixes)."""
    widths = [] if spec.moe is not None and all(spec.layer_moe) else [("dense MLP", spec.intermediate_size)]
    experts = []
    if spec.moe is not None:
        if spec.moe.shared_intermediate_size:
            widths.append(("shared expert", spec.moe.shared_intermediate_size))
        if not experts_whole:
            experts.append(("routed expert", spec.moe.expert_intermediate_size))

    def bad(pairs, n):
        return [f"{name} {w} / {n} = {w // n}" for name, w in pairs if w % n or (w // n) % block]
    return bad(experts, expert_tp or tp), bad(widths, tp)


def experts_split_whole(spec: ModelSpec, engine: str | None, instruct: bool, tp: int, expert_tp: int) -> bool:
    """Whether a MoE model's routed experts must split whole over their devices (expert parallel) where the engine
    serves its published block-fp8 checkpoint: their width over the `expert_tp` devices that would slice them is not
    whole quantization blocks, which the checkpoint cannot load (the configs then turn expert parallelism on:
    `deploy.checkpoints`)."""
    if spec.moe is None or expert_tp <= 1:
        return False
    checkpoint = published_checkpoint(spec.name, "fp8", engine, instruct) or {}
    block = checkpoint.get("weight_block_size")
    if not block:
        return False
    experts, rest = block_split(spec, block, tp, False, expert_tp)
    return bool(experts) and not rest  # where the rest does not split either, the engine serves no such checkpoint


def server_dp_ranks(spec: ModelSpec, hw: HardwareSpec, engine: str | None, devices: int, replicas: int) -> int:
    """The data-parallel ranks one server of `engine` runs for `replicas` copies on `devices` (`server_ranks`): its
    ranks are independent copies unless they share a MoE model's experts (vLLM, `engines.engine_dp_shares_experts`),
    where a copy that fills nodes of its own is a server of its own."""
    return server_ranks(hw, devices, replicas, spec.moe is None or not engine_dp_shares_experts(engine))


def expert_devices(engine: str | None, p: Prediction, hw: HardwareSpec) -> int:
    """The devices a plan's routed experts are sliced over as `engine` serves it: vLLM's MoE layers form one
    tensor-parallel group over every data-parallel rank of a server (DP x TP, `engines.engine_dp_shares_experts`)
    unless the experts split whole (--enable-expert-parallel), a server holding a node's ranks or, across nodes, one
    copy (`server_ranks`); a plan holds those ranks as data-parallel attention groups, which SGLang serves as DP
    attention, its experts over every device as well."""
    if p.attention_data_parallel > 1:
        return p.tensor_parallel * p.attention_data_parallel
    if engine_dp_shares_experts(engine) and p.data_parallel > 1:
        devices = p.tensor_parallel * p.pipeline_parallel * p.data_parallel
        return p.tensor_parallel * server_ranks(hw, devices, p.data_parallel, independent=False)
    return p.tensor_parallel


def online_peak(spec: ModelSpec, hw: HardwareSpec, engine: str | None, fmt: str, p: Prediction,
                expert_tp: int | None = None) -> str | None:
    """Why `engine` cannot quantize the model to `fmt` as it loads it in plan `p`'s layout (its 16-bit share of the
    weights does not fit a device, where the engine loads them whole first), or None where it can: the routed experts
    split over `expert_tp` devices (`expert_devices`, or as the configs split them), the rest over the tensor-parallel
    group, by pipeline stage."""
    if engine not in LOADS_16BIT_FIRST.get(fmt, ()):
        return None
    expert_tp = expert_tp or expert_devices(engine, p, hw)
    counts = param_counts(spec)
    experts = counts.num_moe_layers * counts.num_experts * counts.layer.expert_linear
    shard = ((counts.total - experts) / max(p.tensor_parallel, 1) + experts / max(expert_tp, p.expert_parallel, 1)) \
        * 2 / max(p.pipeline_parallel, 1)
    room = hw.memory_bytes - hw.runtime_overhead_bytes
    if shard <= room:
        return None
    return (f"{engine} loads the 16-bit checkpoint whole before it quantizes to {fmt}, and each device would hold "
            f"{shard / 1e9:.1f} GB of 16-bit weights, more than its {room / 1e9:.1f} GB: online quantization cannot "
            "load, so the config serves a pre-quantized checkpoint")


def produced_formats(techniques: tuple[str, ...] | list[str], spec: ModelSpec, hw: HardwareSpec, engine: str | None,
                     instruct: bool, p: Prediction) -> list[str]:
    """The checkpoint formats a plan's weight steps (`techniques`) need the user to produce before `engine` serves
    them in plan `p`'s layout on `hw`: no published checkpoint of the model in that format that the engine loads, and
    no quantizing as it loads (the engine does not, or its 16-bit share does not fit a device: `online_peak`)."""
    if engine not in CHECKPOINT_ENGINES or profiles.resolve_model_name(spec.name) is None:
        return []
    formats = [CHECKPOINT_FORMATS[t] for t in techniques if t in CHECKPOINT_FORMATS]
    return [f for f in formats if published_checkpoint(spec.name, f, engine, instruct, hw) is None
            and (engine not in ONLINE_QUANTIZATION.get(f, ()) or online_peak(spec, hw, engine, f, p) is not None)]
