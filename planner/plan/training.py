"""The training memory and time model: weights, gradients, optimizer states and activations per
device, and the time of one optimizer step.

Activations follow Korthikanti et al. (arXiv 2205.05198): 34 x hidden bytes per token and layer at
16 bits with a fused attention kernel (no score matrix), 2 x hidden with full activation
checkpointing (layer inputs only, one layer recomputed at a time). FLOPs are 6 per parameter and
token (forward 2, backward 4), 8 with recomputation; a frozen base (LoRA) skips its weight gradients.
"""

from __future__ import annotations

from ..analytic.params import param_counts
from ..analytic.steps import ALLREDUCE_EFFICIENCY, prefill_attention_flops
from ..schema.advice import Prediction
from ..schema.workload import Workload
from .state import PlanState, to_setup

NF4_BYTES_PER_PARAM = 4.5 / 8  # 4 bits plus an fp32 absmax per 64 values
OPTIMIZER_BYTES = {"adamw": 8, "adamw-8bit": 2, "sgd": 0}  # per trainable parameter


def lora_params(state: PlanState, rank: int) -> int:
    """Adapter parameters for rank-r LoRA on every attention and MLP projection."""
    spec = state.spec
    h, i = spec.hidden_size, spec.intermediate_size
    q, kv = spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim
    attn = (h + q) + 2 * (h + kv) + (q + h)
    mlp = (3 if spec.mlp_gated else 2) * (h + i)
    return rank * (attn + mlp) * spec.num_layers


def training_prediction(state: PlanState, workload: Workload) -> Prediction:
    job = workload.training
    spec, hw, n = state.spec, state.hw, state.devices
    counts = param_counts(spec)
    applied = state.training
    mixed = "mixed-precision" in applied
    lora = "lora" in applied or "qlora" in applied
    total = counts.total
    trainable = lora_params(state, job.lora_rank) if lora else total
    if "qlora" in applied:
        base = total * NF4_BYTES_PER_PARAM
    elif lora:
        base = total * (2 if mixed else 4)
    else:
        base = 0.0
    weights = base + trainable * 4  # trainable weights kept in fp32 (the master copy under mixed precision)
    grads = trainable * 4
    optimizer = "adamw-8bit" if "optimizer-8bit" in applied else job.optimizer
    states = trainable * OPTIMIZER_BYTES[optimizer]
    shard = n if "fsdp" in applied else 1
    model_bytes = (weights + grads + states) / shard

    act_bytes = 2 if mixed else 4
    tokens_micro = job.micro_batch * job.sequence_length
    per_token_layer = (2 if "activation-checkpointing" in applied else 34) * spec.hidden_size * act_bytes / 2
    one_layer = 34 * spec.hidden_size * act_bytes / 2 * tokens_micro if "activation-checkpointing" in applied else 0
    logits = tokens_micro * spec.vocab_size * 8  # fp32 logits and their gradient
    activations = tokens_micro * per_token_layer * spec.num_layers + one_layer + logits
    memory = model_bytes + activations + hw.runtime_overhead_bytes
    fit = memory <= hw.memory_bytes

    full_precision = "fp32" if "fp32" in hw.peak_tflops else state.default_16bit  # a TPU has no fp32 rate
    s = to_setup(state.with_(weight_dtype=state.default_16bit if mixed else full_precision, tp=1, pp=1, ep=1))
    tokens_step = job.global_batch * job.sequence_length
    flops_per_token = (4 if lora else 6) * counts.active_linear + 6 * counts.vocab_hidden
    if "activation-checkpointing" in applied:
        flops_per_token += 2 * counts.active_linear
    attention = 3 * prefill_attention_flops(s, 1, job.sequence_length) / job.sequence_length
    compute_s = tokens_step * (flops_per_token + attention) / (n * s.peak_flops * s.eff.flop_efficiency)
    comm_s = 0.0
    if n > 1 and hw.interconnect is not None:
        link = hw.interconnect.bandwidth_gbps / 2 * 1e9 * ALLREDUCE_EFFICIENCY
        grad_bytes = trainable * (2 if mixed else 4)
        # data parallel all-reduces gradients; FSDP adds two all-gathers of the weights
        volume = 2 * grad_bytes + (2 * total * act_bytes if "fsdp" in applied else 0)
        comm_s = (n - 1) / n * volume / link
    step_s = compute_s + comm_s
    micro_fit = max(int((hw.memory_bytes - hw.runtime_overhead_bytes - model_bytes - logits) //
                        max(tokens_micro * per_token_layer * spec.num_layers / job.micro_batch, 1)), 0)
    return Prediction(
        memory_per_device_bytes=int(memory), weights_per_device_bytes=int(model_bytes), kv_cache_per_device_bytes=0,
        activation_bytes=int(activations), device_memory_bytes=hw.memory_bytes, fits=fit,
        max_concurrency=micro_fit, max_context=0, batch=job.micro_batch, ttft_ms=0.0, tpot_ms=0.0,
        throughput_tokens_per_s=tokens_step / step_s, prefill_intensity=0.0, decode_intensity=0.0,
        ridge_flops_per_byte=s.ridge, quality_loss_pct=round(state.quality_loss_pct, 4),
        weight_dtype="nf4" if "qlora" in applied else s.compute_dtype, compute_dtype=s.compute_dtype,
        tensor_parallel=1, pipeline_parallel=1, expert_parallel=1, kv_dtype="-",
        slo_violations=[] if fit else ["does not fit in device memory"], training_step_s=step_s,
    )
