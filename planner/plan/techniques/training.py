"""Training techniques: they change what a training step keeps in memory and how long it takes
(see planner/training.py for the memory and time model)."""

from __future__ import annotations

from ...catalog.hardware import default_16bit
from ..state import PlanState
from ..training import COMPILE_SOURCE, COMPILE_SPEEDUP
from . import Context, Technique, register


def _add(name: str):
    def transform(state: PlanState, ctx: Context) -> PlanState:
        return state.with_(training=state.training | {name})
    return transform


def _targets(ctx: Context) -> dict:
    """Where the adapters go (`lora_params` counts them): every linear layer of a dense model (peft's all-linear);
    in a mixture of experts the mixers' linear layers and the routed experts, which transformers 5 holds as 3-D
    parameters that all-linear skips (named as peft's target_parameters), and not the dense layers' MLPs, the shared
    experts or the routers. peft 0.21 rewrites a target named gate_proj, up_proj or down_proj on the MoE types whose
    layout transformers 5 changed (DeepSeek, Qwen3-MoE and -Next, Mixtral, ...) into the experts' fused parameters at
    twice the rank, and all-linear on them adapts the router, as transformers 4's layout had them
    (peft/utils/transformers_weight_conversion.py): those MLPs cannot be adapted by name there, at training or when the
    adapters are loaded again."""
    if ctx.spec.moe is None:
        return {"target_modules": "all-linear"}
    return {"target_modules": "the mixers' linear layers",
            "target_parameters": "experts.gate_up_proj, experts.down_proj"}


def _qlora_check(ctx: Context) -> str | None:
    """bitsandbytes quantizes a model's nn.Linear layers only (transformers' integrations/bitsandbytes.py), and
    transformers 5 holds a mixture of experts' routed experts as 3-D parameters (MixtralExperts' gate_up_proj and
    down_proj): they would stay 16-bit, then fp32 once peft's prepare_model_for_kbit_training casts every 16-bit
    parameter, where QLoRA's memory counts them in NF4 (Mixtral-8x7B on one H100: priced at 50 GB)."""
    if ctx.spec.moe is not None:
        return ("bitsandbytes quantizes nn.Linear layers only, and transformers 5 holds the routed experts as 3-D "
                "parameters: they would stay 16-bit (fp32 after prepare_model_for_kbit_training), not NF4")
    return None


def _compile_check(ctx: Context) -> str | None:
    """torch.compile's gain is measured on a dense model (COMPILE_SOURCE), and peft's adapters on a mixture of experts'
    3-D expert parameters do not run under torch.compile (peft's LoraConfig.target_parameters docs): the plan would
    price a gain its script could not take (it had, for Mixtral's LoRA, 1.13x, the script not compiling). Nor is it
    measured on a state-space or hybrid model, whose mixers' PyTorch paths loop in Python."""
    if ctx.spec.moe is not None:
        return ("its 1.16x is measured on a dense model, and peft's adapters on a mixture of experts' expert "
                "parameters do not run under torch.compile")
    if ctx.spec.state is not None and ctx.spec.state_layers:
        return ("its 1.16x is measured on a dense Transformer; the script runs transformers' unfused PyTorch paths "
                "for this model's state-space or linear-attention layers (most of them Python loops over the tokens "
                "or the chunks, which TorchDynamo would unroll), which no measurement here covers")
    return None


def _not_with_8bit_already(ctx: Context) -> str | None:
    if ctx.workload.training and ctx.workload.training.optimizer != "adamw":
        return f"the workload's optimizer is already {ctx.workload.training.optimizer}"
    return None


register(
    Technique(
        id="mixed-precision", engines=("transformers",),
        name="Mixed precision (bf16 compute, fp32 master weights)", family="training",
        phase="training", summary="Matmuls at the 16-bit tensor-core rate, activations in 16 bits, fp32 master copy.",
        transform=_add("mixed-precision"), quality_source="Micikevicius et al. (arXiv 1710.03740): matches fp32",
        params=lambda c: {"dtype": default_16bit(c.hw)}),
    Technique(
        id="activation-checkpointing", engines=("transformers",),
        name="Activation checkpointing", family="training", phase="training",
        summary="Keep only each layer's input; recompute the rest in the backward pass (a third more FLOPs).",
        transform=_add("activation-checkpointing"), quality_source="lossless: the same computation, repeated",
        params=lambda c: {"granularity": "full"}),
    Technique(
        id="lora", engines=("transformers",),
        name="LoRA adapters", family="training", phase="training", group="adapters",
        summary="Frozen base weights, trainable low-rank adapters on every projection: tiny gradients and "
                "optimizer states.",
        transform=_add("lora"), requires=("mixed-precision",), after=("mixed-precision",), packages=("peft",),
        quality_risk="low", quality_loss_pct=0.5,
        quality_source="LoRA (arXiv 2106.09685) matches full fine-tuning on most tasks; 0.5% budgeted",
        params=lambda c: {"rank": c.workload.training.lora_rank if c.workload.training else 16,
                          **_targets(c)}),
    Technique(
        id="qlora", engines=("transformers",),
        name="QLoRA (NF4 base, LoRA adapters)", family="training", phase="training", group="adapters",
        summary="The frozen base stored in 4-bit NF4, adapters trained in 16 bits.",
        transform=_add("qlora"), requires=("mixed-precision",), after=("mixed-precision",), hardware=("cuda",),
        check=_qlora_check,
        effect_source="slower than LoRA: the 4-bit base is dequantized in every forward and backward, a cost per "
                      "parameter fitted to QwenLM/Qwen README's Q-LoRA step times (GPTQ int4 bases on one A100; "
                      "profiles/efficiency.yaml, training)",
        packages=("peft", "bitsandbytes"), quality_risk="low", quality_loss_pct=0.7,
        quality_source="QLoRA (arXiv 2305.14314): NF4 + LoRA matches 16-bit full fine-tuning on MMLU; 0.7% budgeted",
        params=lambda c: {"rank": c.workload.training.lora_rank if c.workload.training else 16, "base": "nf4",
                          "double_quant": True, **_targets(c)}),
    Technique(
        id="fsdp", engines=("transformers",),
        name="FSDP / ZeRO-3 sharding", family="training", phase="training",
        summary="Weights, gradients and optimizer states sharded over the devices, gathered layer by layer.",
        transform=_add("fsdp"), hardware=("multi-device", "interconnect"), packages=("torch",),
        quality_source="lossless: the same optimizer step, sharded", params=lambda c: {"shards": c.devices}),
    Technique(
        id="compiled-training", engines=("transformers",),
        name="torch.compile of the training step", family="training", phase="training",
        summary="Forward and backward compiled: fused elementwise kernels and fewer launches; measured 1.16x "
                "tokens/s per GPU on Llama 3.1 8B (torchtitan, FSDP, 8 H100).",
        transform=_add("compiled-training"), hardware=("gpu",), packages=("torch",), after=("mixed-precision",),
        check=_compile_check,
        quality_source="lossless up to floating-point reassociation", effect_source=COMPILE_SOURCE,
        params=lambda c: {"speedup": round(COMPILE_SPEEDUP, 2)}),
    Technique(
        id="optimizer-8bit", engines=("transformers",),
        name="8-bit Adam", family="training", phase="training",
        summary="Adam's two moments in 8 bits with block-wise scales: 2 bytes per parameter instead of 8.",
        transform=_add("optimizer-8bit"), hardware=("cuda",), packages=("bitsandbytes",), check=_not_with_8bit_already,
        # its 8-bit states are not DTensor-aware: "illegal memory access with FSDP2" (bitsandbytes-foundation/
        # bitsandbytes#1633, open; #89 "8-bit optimizers dont work with FSDP"), the FSDP accelerate's config runs
        conflicts=("fsdp",),
        quality_source="Dettmers et al. (arXiv 2110.02861): 8-bit optimizers match 32-bit Adam",
        params=lambda c: {"optimizer": "adamw-8bit"}),
    family="training")
