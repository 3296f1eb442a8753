"""The bytes a training step's bandwidth-bound kernels move beside its matrix products.

Norms, rotary embeddings, activation functions, residual adds, dtype casts, dropout masks, peft's adapters (a rank-r
product reads its input and writes its output at the memory's speed) and their backwards move bytes at the memory's
bandwidth, and their time grows with the hidden size where the matrix products' grows with its square: a small
model spends a larger share of its step on them. Traced operator by operator on transformers' layers
(`python benchmarks/bench_training_traffic.py`: the bytes every operator but a compute-bound product or attention's
kernel reads and writes, a layer's forward, recomputed forward and backward), a layer moves a near-constant multiple
of the bytes the training model counts it keeping for its backward (`traced_units`), by recipe: from 9% below to 19%
above the median over Llama, Qwen2, Mistral, Qwen3, Gemma 3 and Phi-3 layers (Qwen3's the most); peft's adapters add
bytes in proportion to the widths they read and write (within 10%); autocast casts each fp32 weight in every forward.
So the step's traffic is those multiples of the layers' kept bytes, the adapters' widths and the weights, and its
time that traffic at the bandwidth a streaming kernel reaches: the device's measured STREAM triad (BabelStream)
where its catalog entry has one, else its datasheet bandwidth at the elementwise kernels' share.
"""

from __future__ import annotations

from ..schema import EfficiencyFactors, HardwareSpec, ModelSpec
from .dropout_activations import dropout_units
from .fp32_activations import fixed_units
from .training_activations import autocast_units, layer_activation_units

# Bytes moved per byte a layer keeps, by recipe and whether activation checkpointing recomputes the forward: the
# median over six dense layers at hidden size 256 (benchmarks/bench_training_traffic.py, 2026-12-08, transformers
# 5.24, torch 2.13 on this machine's CPU, dropout as CUDA's fused kernel runs it; the slope of a layer's traffic
# between 128 and 512 tokens; range in brackets). "autocast": fp32 weights under bf16 autocast (a full fine-tune);
# "bf16": a bf16 model (a full fine-tune under FSDP's mixed-precision policy, and a LoRA's frozen base, whose layers
# move what a bf16 model's do beside their adapters); "fp32": an fp32 model (no mixed precision).
TRAFFIC_PER_KEPT_BYTE = {
    ("autocast", True): 14.1,  # 13.0-16.8
    ("autocast", False): 11.0,  # 10.0-13.1
    ("bf16", True): 13.1,  # 11.9-15.3
    ("bf16", False): 10.1,  # 9.1-11.9
    ("fp32", True): 9.9,  # 9.0-11.1
    ("fp32", False): 7.7,  # 7.0-8.8
}
# peft's LoRA beside its layer (fp32 adapters under bf16 autocast: each adapted input cast to fp32 and back, its rank-r
# products, the scaling and the add, and their backwards), in bytes a token and unit of the adapted layers' input and
# output widths (`training.lora_params` at rank 1): what a LoRA layer's traffic adds to its bf16 base's, 37-39 over
# the six layers; with a dropout on the adapters' inputs (a mask and a masked copy of each adapted input), 48-53
ADAPTER_BYTES_PER_WIDTH = {
    (False, True): 39.1,  # 37.1-39.3
    (False, False): 26.7,  # 24.3-27.0
    (True, True): 51.9,  # 47.8-52.7
    (True, False): 35.2,  # 31.8-35.9
}
# A mixture of experts under LoRA: peft's ParamWrapper merges every expert with its adapters (W + B A) in each forward
# and the backward computes the merged tensor's full-size gradient: bytes an expert weight a micro-step, beyond a dense
# LoRA layer's (the traces' intercept over a layer's routed experts, benchmarks/bench_training_traffic.py moe_rows,
# 2026-12-08: a Mixtral layer 40.7 and 24.5, a Qwen3-MoE layer 33.8 and 19.3, with and without checkpointing)
MERGED_EXPERT_BYTES = {True: 37.3, False: 21.9}
# What moves once a micro-step whatever the tokens, in bytes a weight of the blocks' linear layers (the same traces'
# intercept): autocast's casts of fp32 weights to bf16 in each forward (6 bytes a weight, the recomputed forward's
# again) and their gradients' fp32 writes; a byte or so of the adapters' under LoRA; nothing measurable otherwise
TRAFFIC_PER_WEIGHT = {("lora", True): 1.2, ("lora", False): 0.85, ("autocast", True): 18.0,
                      ("autocast", False): 12.0}
# Once an optimizer step, over each trainable parameter a device holds (a byte count, not measured): AdamW's update
# (torch's fused kernel) reads the fp32 weight, its gradient and its two states and writes the weight and the states
# (16 + 12 bytes); 8-bit AdamW's states are a byte each (10 + 6); SGD without momentum reads the weight and the
# gradient and writes the weight (12). Each micro-step after the first adds its gradients into the held ones (two
# reads and a write of 4 bytes: 12).
OPTIMIZER_TRAFFIC_BYTES = {"adamw": 28, "adamw-8bit": 16, "sgd": 12}
ACCUMULATION_TRAFFIC_BYTES = 12


def traffic_recipe(applied) -> str:
    """The traced recipe (`TRAFFIC_PER_KEPT_BYTE`) a plan's layers run: a LoRA's or QLoRA's frozen base and a full
    fine-tune under FSDP a bf16 model's, a full fine-tune fp32 weights under autocast, or an fp32 model without mixed
    precision."""
    if "mixed-precision" not in applied:
        return "fp32"
    return "bf16" if {"lora", "qlora", "fsdp"} & set(applied) else "autocast"


def traced_units(spec: ModelSpec, layer: int, tokens: int, mixed: bool, autocast: bool, fused_dropout: bool) -> float:
    """What a layer keeps as the traced layers' kept bytes were counted (benchmarks/bench_training_traffic.py,
    `kept_bytes`), in units: its own activations and dropout masks, autocast's terms over fp32 weights, an fp32
    model's less what a bf16 layer keeps in fp32 already; not the adapters' (priced by their widths) nor what the
    attention kernels keep beyond the fused one's (the trace leaves the kernels out)."""
    units = layer_activation_units(spec, layer) + dropout_units(spec, layer, fused_dropout, 2 if mixed else 4)
    if autocast:
        units += autocast_units(spec, layer)
    if not mixed:
        units -= fixed_units(spec, layer, tokens) / 2
    return units


def traffic_bytes(kept_bytes: float, adapted_widths: float, weights: int, applied,
                  adapter_dropout: bool = False, expert_weights: int = 0) -> float:
    """Bytes the bandwidth-bound kernels of a micro-step move (its forward, the recomputed forward under activation
    checkpointing, and its backward): over layers that keep `kept_bytes` for their backward (their adapters' apart),
    adapters that read and write `adapted_widths` (tokens times widths: `training.lora_params` at rank 1), `weights`
    in the blocks' linear layers, and under LoRA the merge of `expert_weights` routed experts with their adapters."""
    checkpointed = "activation-checkpointing" in applied
    recipe = traffic_recipe(applied)
    lora = bool({"lora", "qlora"} & set(applied))
    per_weight = TRAFFIC_PER_WEIGHT.get(("lora" if lora else recipe, checkpointed), 0.0)
    adapters = adapted_widths * ADAPTER_BYTES_PER_WIDTH[(adapter_dropout, checkpointed)] if lora else 0.0
    merged = expert_weights * MERGED_EXPERT_BYTES[checkpointed] if lora else 0.0
    return kept_bytes * TRAFFIC_PER_KEPT_BYTE[(recipe, checkpointed)] + adapters + weights * per_weight + merged


def optimizer_traffic_bytes(trainable: float, optimizer: str, micro_steps: int) -> float:
    """Bytes an optimizer step moves over `trainable` parameters beside its micro-steps: the update, and the
    gradients' accumulation over the micro-steps after the first."""
    return trainable * (OPTIMIZER_TRAFFIC_BYTES[optimizer] + ACCUMULATION_TRAFFIC_BYTES * max(micro_steps - 1, 0))


def stream_bandwidth(hw: HardwareSpec, eff: EfficiencyFactors) -> float:
    """Bytes a second a streaming elementwise kernel moves on the device: its measured triad bandwidth, else its
    datasheet bandwidth at the elementwise kernels' share."""
    if hw.measured is not None and hw.measured.memory_bandwidth_tbps:
        return hw.measured.memory_bandwidth_tbps * 1e12
    return hw.memory_bandwidth_bytes_per_s * (eff.activation_bandwidth_efficiency or eff.bandwidth_efficiency)
