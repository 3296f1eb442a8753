"""The files of a training plan (`advise --emit-configs` on a fine-tune workload): a Trainer script, the plan's
settings for it, accelerate's launch config and a README. The plan's steps map onto the libraries that run them:
mixed precision and torch.compile onto transformers' TrainingArguments (bf16/fp16, torch_compile), activation
checkpointing onto its activation_checkpointing (or, under FSDP, accelerate's fsdp_activation_checkpointing, as
transformers asks), LoRA and QLoRA onto peft's LoraConfig (QLoRA's NF4 base onto bitsandbytes through
BitsAndBytesConfig), FSDP onto accelerate's FSDP2 plugin and 8-bit Adam onto bitsandbytes' optimizer
(optim="adamw_bnb_8bit"). The script itself is the same for every plan (templates/deploy/train.py.j2); what a plan
sets is in train.yaml."""

from __future__ import annotations

import math
from typing import Any

import yaml

from ..catalog.hardware import devices_per_host, resolve_hardware
from ..catalog.models import instruct_checkpoint
from ..errors import DeployError
from ..plan.training import EXPERTS_IMPLEMENTATION, autocast_experts
from ..schema import HardwareSpec
from ..schema.advice import Advice
from .config import advice_catalog_entry, model_reference, plan_steps
from .render import template_env

# peft's LoRA scaling is alpha / r: alpha at twice the rank (peft's and transformers' examples, r=16 with alpha=32)
LORA_ALPHA_PER_RANK = 2
# no dropout on the adapters' inputs (peft's default): a dropout keeps a masked copy of every adapted layer's input for
# the backward, measured at 21 to 28 more bytes per token and hidden unit a Llama layer (of 38 to 50;
# benchmarks/bench_activation_memory.py), which the plan's memory does not count
LORA_DROPOUT = 0.0
# learning rates the README states as starting points, not part of the plan: LoRA's adapters train at a higher rate
# than a full fine-tune's weights (peft's examples: 2e-4; transformers' run_clm full fine-tunes: 2e-5 to 5e-5)
LEARNING_RATE = {"adapters": 2e-4, "full": 2e-5}
OPTIMIZERS = {"adamw": "adamw_torch_fused", "adamw-8bit": "adamw_bnb_8bit", "sgd": "sgd"}
# the libraries the script imports, at the releases optiplan's own tests run it with
PACKAGES = ("transformers==5.24.0", "peft==0.21.2", "accelerate==1.16.0")


def training_settings(advice: Advice, hw: HardwareSpec) -> dict[str, Any]:
    """train.yaml: the plan's settings as the script reads them, on the plan's device `hw`."""
    job, steps, p = advice.workload.training, plan_steps(advice), advice.plan.predicted
    if job is None:
        raise DeployError("the plan has no training job to render")
    if hw.features.backend == "tpu":
        raise DeployError(f"{advice.hardware.id} trains through XLA (torch_xla), which the rendered Trainer script and "
                          "accelerate config do not set up: no training files for a TPU")
    devices = advice.hardware.count
    mixed = steps["mixed-precision"].params.get("dtype") if "mixed-precision" in steps else None
    fsdp = "fsdp" in steps
    adapters = next((steps[t] for t in ("qlora", "lora") if t in steps), None)
    micro = p.batch  # the plan's sequences a device a pass (training_prediction's micro-batch)
    settings: dict[str, Any] = {
        "model": model_reference(advice),
        "sequence_length": job.sequence_length,
        "per_device_batch": micro,
        # the global batch over the devices' micro-batches: the step the plan's time is of
        "gradient_accumulation_steps": max(1, math.ceil(job.global_batch / (micro * devices))),
        "mixed_precision": mixed,
        # under FSDP accelerate checkpoints the layers (fsdp_activation_checkpointing in accelerate.yaml)
        "gradient_checkpointing": "activation-checkpointing" in steps and not fsdp,
        "optimizer": OPTIMIZERS["adamw-8bit" if "optimizer-8bit" in steps else job.optimizer],
        "compile": "compiled-training" in steps,
        "fsdp": fsdp,
        # fp32 weights under autocast: the experts cast to the autocast format for grouped_mm (`autocast_experts`)
        "experts_implementation": EXPERTS_IMPLEMENTATION if autocast_experts(advice.model.moe is not None, steps)
        else None,
        "learning_rate": LEARNING_RATE["adapters" if adapters else "full"],
        "adapters": None,
    }

    if adapters is not None:
        rank = int(adapters.params.get("rank", job.lora_rank))
        # a mixture of experts' expert parameters (peft's lora.ParamWrapper refuses dropout on them; nor do they run
        # under torch.compile, which plans leave out for a mixture of experts)
        targets = adapters.params.get("target_parameters")
        settings["adapters"] = {
            "rank": rank, "alpha": LORA_ALPHA_PER_RANK * rank, "dropout": LORA_DROPOUT,
            # a mixture of experts': spelled out by the script from the model (`techniques.training._targets`)
            "target_modules": None if targets else "all-linear",
            # a mixture of experts' routed experts, 3-D parameters that all-linear skips (`lora_params`)
            "target_parameters": [t.strip() for t in targets.split(",")] if targets else None,
            "base": "nf4" if adapters.technique == "qlora" else None,
        }
    return settings


def host_memory_at_load(advice: Advice, settings: dict[str, Any], hw: HardwareSpec) -> dict[str, Any]:
    """Host memory on each machine while an FSDP run loads, in GB. Every process loads the whole checkpoint, in the
    16-bit type it is stored in (the script's load_model): transformers maps the safetensors files, so the processes
    share one copy in the page cache (measured on this machine: a 357 MiB bf16 Llama loaded in bf16 added no
    anonymous memory, in fp32 714 MiB a process). A mixture of experts' checkpoint holds each expert apart, which
    transformers 5 merges into new tensors as it loads (conversion_mapping's MergeModulelist), and fp16 compute
    converts a bf16 checkpoint: then each process holds its own copy (a tiny bf16 Mixtral of 202 MiB added 279 MiB a
    process, against 39 MiB for a Llama of its size). Under a full fine-tune the first process upcasts its copy to fp32
    master weights (accelerate's fsdp2_prepare_model) before FSDP shards them."""
    params = advice.model.params_total
    copies = advice.model.moe is not None or settings["mixed_precision"] == "fp16"
    per_host = min(advice.hardware.count, devices_per_host(hw))
    return {"checkpoint": round(params * 2 / 1e9), "copies": per_host if copies else 0,
            "why": "merges the experts' weights" if advice.model.moe is not None else "converts bf16 to fp16",
            "upcast": 0 if settings["adapters"] else round(params * 4 / 1e9)}


def uses_bitsandbytes(settings: dict[str, Any]) -> bool:
    """Whether the run needs bitsandbytes: QLoRA's NF4 base or 8-bit Adam."""
    return bool(settings["adapters"] and settings["adapters"]["base"] == "nf4") or settings["optimizer"] == \
        OPTIMIZERS["adamw-8bit"]


def accelerate_config(advice: Advice, settings: dict[str, Any], hw: HardwareSpec) -> dict[str, Any]:
    """accelerate.yaml: the processes over the plan's devices (one per GPU; a machine per host), the mixed precision
    and, where the plan shards, FSDP2 wrapping each decoder layer (the model's `_no_split_modules`)."""
    devices = advice.hardware.count
    hosts = max(1, math.ceil(devices / devices_per_host(hw)))
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "FSDP" if settings["fsdp"] else "MULTI_GPU" if devices > 1 else "NO",
        "num_machines": hosts, "num_processes": devices, "machine_rank": 0,
        "mixed_precision": settings["mixed_precision"] or "no",
        "main_training_function": "main", "rdzv_backend": "static", "use_cpu": False,
    }
    if settings["fsdp"]:
        config["fsdp_config"] = {
            "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "fsdp_reshard_after_forward": True,
            "fsdp_offload_params": False, "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_activation_checkpointing": "activation-checkpointing" in plan_steps(advice),
        }
    if hosts > 1:  # the first machine's address is given on each machine's command line (--main_process_ip)
        config["main_process_port"] = 29500
    return config


def training_files(advice: Advice) -> dict[str, str]:
    """The training plan's files, under train/."""
    env = template_env()
    hw = resolve_hardware(advice.hardware.id)
    settings = training_settings(advice, hw)
    launch = accelerate_config(advice, settings, hw)
    header = (f"# {advice.model.name} on {advice.hardware.count} x {advice.hardware.id}, rendered by optiplan from its "
              f"training plan ({', '.join(s.technique for s in advice.plan.steps) or 'no steps'}).\n")
    # a catalog model's instruct release, which the README offers beside the base checkpoint train.yaml names
    instruct = instruct_checkpoint(advice_catalog_entry(advice)) if advice.model.source.startswith("catalog:") \
        else None
    packages = [*PACKAGES, *(["bitsandbytes"] if uses_bitsandbytes(settings) else [])]
    return {
        "train/train.py": env.get_template("train.py.j2").render(a=advice),
        "train/train.yaml": header + yaml.safe_dump(settings, sort_keys=False),
        "train/accelerate.yaml": header + yaml.safe_dump(launch, sort_keys=False),
        "train/README.md": env.get_template("train-README.md.j2").render(
            a=advice, s=settings, launch=launch, packages=packages, host=host_memory_at_load(advice, settings, hw),
            instruct=instruct if instruct != settings["model"] else None),
    }
