"""The training memory and time model: weights, gradients, optimizer states and activations per
device, and the time of one optimizer step.

Activations are what each decoder layer keeps for its backward, in bytes per token and hidden unit at 16 bits,
measured on transformers' eager layers (`layer_activation_units`, benchmarks/bench_activation_memory.py; Korthikanti
et al.'s 34, arXiv 2205.05198, is a GPT layer's: a gated MLP and an fp32 RMSNorm keep more); with full activation
checkpointing, each layer's input (2) and the largest layer's activations while it is recomputed. Attention over
packed documents masked apart keeps more (`packed_attention_units`). QLoRA's frozen base holds the blocks' linear
layers in NF4 and the rest in fp32: huggingface/peft src/peft/utils/other.py, prepare_model_for_kbit_training —
"# cast all non INT8 parameters to fp32 ... if ((param.dtype == torch.float16) or (param.dtype == torch.bfloat16))
and param.__class__.__name__ != "Params4bit": param.data = param.data.to(torch.float32)". FLOPs are 6 per parameter and
token (forward 2, backward 4), 8 with recomputation; a frozen base (LoRA) skips its weight gradients.

The step time is the FLOPs at the training share of the device's FLOP efficiency, a fixed cost per layer and
micro-batch (the eager forward and backward of a Trainer step), and for QLoRA the dequantization of the frozen 4-bit
base in every forward and backward, charged as bytes of memory traffic per parameter. The three are fitted to
published fine-tuning step times (`training` in profiles/efficiency.yaml, benchmarks/bench_training_published.py).
MFU is the step's model FLOPs (recomputation excluded) over the devices' dense 16-bit peak.

Without mixed precision the model is fp32: its layers keep their 16-bit tensors at 4 bytes and what a bf16 layer keeps
in fp32 already as it was (`fp32_activations.fixed_units`).

Under FSDP (accelerate's FSDP2) a device holds more than its shards at the step's peak, the start of the backward
(`fsdp_unsharded_bytes`), and QLoRA's 4-bit model is loaded whole onto every GPU before FSDP shards it
(`load_peak_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ... import profiles
from ..analytic.efficiency import attention_kernel_factor
from ..analytic.params import ParamCounts, param_counts
from ..analytic.steps import ALLREDUCE_EFFICIENCY, prefill_attention_flops
from ..catalog.engine_refusals import dense_experts, sdpa_refused
from ..catalog.hardware import cost_per_million_tokens
from ..schema import ModelSpec
from ..schema.advice import Prediction
from ..schema.workload import Workload
from .attention_activations import math_attention_units, packed_attention_units, runs_math_path
from .dropout_activations import dropout_units
from .fp32_activations import fixed_units
from .state import PlanState, to_setup
from .training_activations import (
    FUSED_GATE_UP_TYPES,
    FUSED_QKV_TYPES,
    autocast_units,
    layer_activation_units,
    lora_units,
    output_copy_units,
    rotary_table_units,
)
from .training_traffic import optimizer_traffic_bytes, stream_bandwidth, traced_units, traffic_bytes

# 4 bits, plus the absmax of each block of 64 quantized to 8 bits with an fp32 constant per 256 of them: QLoRA's double
# quantization (arXiv 2305.14314: "reduces the memory footprint from 32/64 = 0.5 bits per parameter to
# 8/64 + 32/(64 * 256) = 0.127 bits"), bnb_4bit_use_double_quant=True as the paper's and peft's QLoRA recipes set it
NF4_BYTES_PER_PARAM = (4 + 8 / 64 + 32 / (64 * 256)) / 8
# torch.compile of a training step, measured: Llama 3.1 8B, FSDP on 8 H100, 5,762 -> 6,667 tokens/s per GPU (its
# memory, 82.4 -> 77.0 GiB, is not counted here)
COMPILE_SPEEDUP = 6667 / 5762
COMPILE_SOURCE = ("pytorch/torchtitan docs/performance.md, Table 1 (1D parallelism, Llama 3.1 8B, 8 H100): "
                  "\"FSDP | 5,762 | 82.4\" / \"FSDP + torch.compile | 6,667 | 77.0\" (TPS/GPU, memory GiB)")
OPTIMIZER_BYTES = {"adamw": 8, "adamw-8bit": 2, "sgd": 0}  # per trainable parameter
# Bytes a logit holds at the loss's peak: the 16-bit logits, the fp32 copy transformers' loss makes
# (loss_utils.ForCausalLMLoss: "logits = logits.float()"), the log-softmax cross-entropy keeps for its backward and
# the gradients. Measured (`python benchmarks/bench_loss_memory.py`, 2026-12-06): a one-layer Llama with a 32,000-token
# vocabulary in bf16, loss and backward through transformers 5.24 on the CPU, peaked at 960 MB of resident memory at
# 1,024 tokens and 3,750 MB at 8,192 (6,941 MB at 16,384 from 1,358 at 2,048): 12.2 bytes for each further logit.
# 8 had been counted (fp32 logits and their gradient). An fp32 model's logits need no copy but keep 4-byte gradients:
# the same, 12.3 measured (an fp32 model, the same bench).
LOGIT_BYTES = 12
# peft's prepare_model_for_kbit_training casts a k-bit model's other parameters (embedding, head, norms) to fp32
KBIT_REST_BYTES = 4


@dataclass(frozen=True)
class Recipe:
    """Where a run's recipe differs from the rendered script's: a published run priced as it ran
    (benchmarks/published/training). `logit_bytes`: the loss's bytes a logit (LOGIT_BYTES; a model whose own loss
    does not upcast, run in 16 bits without autocast, keeps 6: its logits, their shifted copy and the log-softmax, or
    their gradients); `kbit_rest_bytes`: a k-bit base's other parameters (peft leaves a GPTQ model's in 16 bits);
    `framework_bytes`: what the training framework holds in the backward beyond the count (DeepSpeed ZeRO's reduce
    buckets); `adapter_dropout`: a dropout on the adapters' inputs (the script sets none), whose masks and masked
    copies the step's memory traffic carries (`training_traffic`)."""

    logit_bytes: float = LOGIT_BYTES
    kbit_rest_bytes: float = KBIT_REST_BYTES
    framework_bytes: float = 0.0
    adapter_dropout: bool = False


# why a QLoRA plan under FSDP needs more memory while it loads than a step (`load_peak_bytes`), as reports say it
LOAD_PEAK_WHY = "the whole 4-bit model on each GPU before FSDP shards it"


def lora_params(state: PlanState, rank: int, per_token: bool = False) -> int:
    """Adapter parameters for rank-r LoRA where the plan puts them (`techniques.training._targets`). A dense model's
    every linear layer of the blocks (peft's target_modules="all-linear"): attention's projections where it attends
    (latent attention's five), a state-space or linear-attention mixer's where it has one (its input and output
    projections: r x (2 x hidden + its matmul weights / hidden), exact for those two) and the MLP's. A mixture of
    experts': the same mixers' and every routed expert's projections (peft's target_parameters, one adapter per
    expert and parameter, a gated expert's gate and up projections being one); its dense layers' MLPs, its shared
    experts and its routers get none. A Mamba mixer's input projection alone: peft refuses the output projection on
    some types (tuners_utils' _check_lora_target_modules_mamba), and the kernels and transformers' own code read the
    others' weights without calling them (Mamba-1's dt_proj in every path), so adapters there would never train. A
    fused projection (FUSED_QKV_TYPES, FUSED_GATE_UP_TYPES) takes one adapter. `per_token`: the adapters a token runs
    through, a routed layer's top-k experts' rather than every expert's (at rank 1: the widths they read and write)."""
    spec = state.spec
    h, i = spec.hidden_size, spec.intermediate_size
    if spec.mla is not None:
        a, heads = spec.mla, spec.num_heads
        q_out = heads * (a.qk_nope_head_dim + a.qk_rope_head_dim)
        q = (h + a.q_lora_rank) + (a.q_lora_rank + q_out) if a.q_lora_rank else h + q_out
        attn = q + (h + a.kv_lora_rank + a.qk_rope_head_dim) \
            + (a.kv_lora_rank + heads * (a.qk_nope_head_dim + a.v_head_dim)) + (heads * a.v_head_dim + h)
    else:
        q, kv = spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim
        # a gated attention's query projection also writes the gate (Qwen3-Next: twice the query width)
        q_out = q * (2 if spec.attn_output_gate else 1)
        attn = ((h + q_out + 2 * kv) if spec.model_type in FUSED_QKV_TYPES else (h + q_out) + 2 * (h + kv)) + (q + h)
    projections = 3 if spec.mlp_gated else 2
    mlp = (h + 2 * i) + (i + h) if spec.model_type in FUSED_GATE_UP_TYPES else projections * (h + i)
    moe = 0
    if spec.moe is not None:
        m = spec.moe
        # transformers 5 fuses a gated expert's gate and up projections into one parameter (gate_up_proj): one
        # adapter of r x (hidden + 2 x width) on it, one of r x (width + hidden) on down_proj
        e = m.expert_intermediate_size
        moe = (m.top_k if per_token else m.num_experts) * ((h + 2 * e) + (e + h) if spec.mlp_gated else 2 * (h + e))
        mlp = 0  # a mixture of experts' dense-layer MLPs and shared experts stay frozen (`_targets`)
    mixer = 0
    if spec.state is not None:
        st = spec.state
        mixer = 2 * h + st.linear_params // h  # its input and output projections (exact for those two)
        if st.kind in ("mamba", "mamba2"):  # the input projection alone: to 2d (Mamba), to (linear - d h) / h
            d = st.out_proj_inputs
            mixer = h + (2 * d if st.kind == "mamba" else (st.linear_params - d * h) // h)
        elif st.kind == "gated_deltanet":  # a third input projection (in_proj_ba, to beta and dt)
            mixer += h
        elif st.kind == "rglru":  # three linear layers (x, y, out) of the recurrence's width; its gates are 3-D
            mixer = 3 * (h + st.conv_channels)
    total = 0
    for layer in range(spec.num_layers):
        kind = spec.mixer(layer)
        routed = spec.moe is not None and spec.layer_moe[layer]
        total += (attn if "attention" in kind and not spec.attention_shared else 0) \
            + (mixer if "state" in kind else 0) + (moe if routed else mlp if spec.has_mlp(layer) else 0)
    # a shared block's layers, adapted once for every hybrid layer that runs the block (Zamba2's: transformers builds a
    # copy for each and ties their weights; peft adapts each copy)
    return rank * (total + spec.extra_adapter_widths)


# A mixture of experts under autocast over fp32 weights (`autocast_experts`): transformers' grouped_mm experts are not
# autocast-enabled (integrations/moe.py: "torch.nn.functional.grouped_mm and torch._grouped_mm are not
# autocast-enabled"), so they cast their input to the fp32 weights and run in fp32 (measured: 72.5 more units on a
# Mixtral layer, 64.5 on a Qwen3-MoE layer, and the experts at the fp32 rate); its eager experts do autocast but launch
# each expert's kernels from Python with host syncs. The script registers grouped_mm over the experts' weights cast to
# the autocast format (templates/deploy/train.py.j2, register_autocast_experts), whose experts keep what a bf16 model's
# do (measured: the routed experts add nothing under the recipe), and a bf16 cast of the experts held, as the other
# weights' are (the cast is not cached as autocast's are, so a checkpointed step frees it layer by layer, where the
# plan holds it for the step: high there)
EXPERTS_IMPLEMENTATION = "grouped_mm_autocast"


def fp32_weights_under_autocast(applied) -> bool:
    """Whether the script keeps fp32 weights and computes under bf16 autocast: mixed precision without LoRA or QLoRA
    (whose frozen base is 16-bit) or FSDP (whose mixed-precision policy gathers 16-bit parameters)."""
    return "mixed-precision" in applied and not {"lora", "qlora", "fsdp"} & set(applied)


def autocast_experts(moe: bool, applied) -> bool:
    """Whether the rendered script registers and loads its experts cast to the autocast format
    (EXPERTS_IMPLEMENTATION): a mixture of experts' full fine-tune with fp32 weights under autocast
    (`fp32_weights_under_autocast`; under LoRA and FSDP the experts' weights are 16-bit when they compute)."""
    return moe and fp32_weights_under_autocast(applied)


def recipe_memory(spec: ModelSpec, counts: ParamCounts, applied: frozenset[str], lora_rank: int | None,
                  act_bytes: int, flash_kernel: bool = False) -> tuple[list[float], float, float]:
    """What the script's recipe holds beyond the layers' own activations: (units each layer, bytes held from the forward
    to the backward, bytes of one layer's backward); `lora_rank` None without LoRA. peft's LoRA on a mixture of
    experts' 3-D parameters merges each layer's experts with their adapters into a new tensor in every forward
    (lora.ParamWrapper: W + B A), which the experts' matmul keeps for its backward (measured: a tiny Mixtral layer's
    11.0 MB of bf16 experts, 11.4 MB held) and whose full-size gradient the backward computes. Under bf16 autocast
    fp32 weights are cast for each matmul, and the casts are kept until the backward (2 bytes a parameter)."""
    lora, mixed = lora_rank is not None, "mixed-precision" in applied
    autocast = fp32_weights_under_autocast(applied)
    units = [(lora_units(spec, layer, lora_rank, mixed, flash_kernel) if lora else 0.0)
             + (autocast_units(spec, layer) if autocast else 0.0) for layer in range(spec.num_layers)]
    merged = act_bytes * counts.num_experts * counts.layer.expert_linear if lora and counts.num_moe_layers else 0.0
    checkpointed = "activation-checkpointing" in applied
    held = (2 * counts.total if autocast else 0.0) + (0.0 if checkpointed else merged * counts.num_moe_layers)
    return units, held, merged * (2 if checkpointed else 1)


def fsdp_unsharded_bytes(counts: ParamCounts, num_layers: int, qlora: bool, trainable: int, full: bool,
                         act_bytes: int) -> float:
    """What FSDP2 holds unsharded on each device at the start of the backward, beyond its shards, in accelerate's
    layout (utils/fsdp_utils.py, fsdp2_prepare_model): each decoder layer a group; an untied input embedding a group
    of its own, resharded after the forward; the final norm and the head (with a tied embedding) a tail group kept
    gathered from the end of the forward through the head's backward ("reshard_after_forward": False). So: the tail
    group's parameters and the head's gradient before its reduce-scatter, two layers' all-gathered parameters (FSDP2
    "allows two all-gather output tensors to be alive at once" in forward and prefetches the next layer in backward:
    pytorch/pytorch#128884) and one layer's unsharded gradients. Parameters are gathered in the mixed-precision
    policy's param_dtype (accelerate sets it to the mixed precision; fp32 without), a 4-bit base's linear layers as the
    packed NF4 they are stored as; gradients are reduced in the same type."""
    tail = counts.vocab_hidden + counts.final_norm  # the head (or the tied embedding) and the final norm
    layer_linear = counts.moe_layer_linear if counts.num_moe_layers else counts.dense_layer_linear
    layer_small = (counts.small - counts.final_norm) / num_layers
    layer_adapters = 0 if full else trainable / num_layers
    layer_bytes = (layer_linear * (NF4_BYTES_PER_PARAM if qlora else act_bytes)
                   + (layer_small + layer_adapters) * act_bytes)
    layer_grads = layer_linear + layer_small if full else layer_adapters
    head_grads = counts.vocab_hidden if full else 0
    return tail * act_bytes + 2 * layer_bytes + (layer_grads + head_grads) * act_bytes


def token_scan_caveat(spec: ModelSpec) -> str | None:
    """What the step time leaves out for a model whose state mixers transformers runs as a Python loop over the tokens
    (Mamba's mamba_selective_scan, RG-LRU's scan) where the rendered script installs no fused kernels, or None: their
    backward materialises each token's slice gradient at the whole sequence's size (benchmarks/bench_scan_backward.py:
    one tiny Mamba layer's backward 27, 82, 294 and 1,306 ms at 64 to 512 tokens on this CPU, 4.4x at the last
    doubling, where its forward doubles; RG-LRU's 2.4x there)."""
    kinds = {spec.state.kind} if spec.state is not None and spec.state_layers else set()
    if not kinds & {"mamba", "rglru"}:
        return None
    fix = " (with mamba-ssm and causal-conv1d installed transformers runs their fused kernels instead, which the " \
          "step time is priced as and which keep less than the activations counted; neither measured here)" \
        if "mamba" in kinds else ""
    return ("the rendered script runs transformers' PyTorch scan for the model's recurrent layers, a Python loop over "
            "the tokens whose backward grows with the square of the sequence length "
            "(benchmarks/bench_scan_backward.py: a Mamba layer's 4.4x, an RG-LRU block's 2.4x from 256 to 512 tokens, "
            f"their forwards about 2x): expect steps far longer than predicted at long sequences{fix}")


def training_prediction(state: PlanState, workload: Workload, recipe: Recipe = Recipe()) -> Prediction:
    """The plan's training step: memory per device and step time. `recipe`: a run's own recipe where it differs from
    the rendered script's (`Recipe`)."""
    job = workload.training
    spec, hw, n = state.spec, state.hw, state.devices
    counts = param_counts(spec)
    applied = state.training
    mixed = "mixed-precision" in applied
    lora = "lora" in applied or "qlora" in applied
    total = counts.total
    trainable = lora_params(state, job.lora_rank) if lora else total
    if "qlora" in applied:
        # the blocks' linear layers in NF4; bitsandbytes leaves the embedding, the head and the norms in 16 bits, which
        # peft's prepare_model_for_kbit_training then casts to fp32 (the module's docstring)
        base = counts.linear * NF4_BYTES_PER_PARAM + (total - counts.linear) * recipe.kbit_rest_bytes
    elif lora:
        base = total * (2 if mixed else 4)
    else:
        base = 0.0
    weights = base + trainable * 4  # trainable weights kept in fp32 (the master copy under mixed precision)
    grads = trainable * 4
    optimizer = "adamw-8bit" if "optimizer-8bit" in applied else job.optimizer
    states = trainable * OPTIMIZER_BYTES[optimizer]
    shard = n if "fsdp" in applied else 1
    # bitsandbytes keeps each 4-bit weight's quantization constants (the double-quantized absmax) as its own state,
    # not a parameter: FSDP leaves them whole on every device
    unsharded_constants = counts.linear * (NF4_BYTES_PER_PARAM - 0.5) * (1 - 1 / shard) if "qlora" in applied else 0.0
    weights_per_device = weights / shard + unsharded_constants
    model_bytes = weights_per_device + (grads + states) / shard

    act_bytes = 2 if mixed else 4
    # a device holds at most its share of the step's sequences in one pass (a micro-batch the global batch fills)
    micro = min(job.micro_batch, -(-job.global_batch // n))
    tokens_micro = micro * job.sequence_length
    sharded = shard > 1
    # SDPA on a CPU runs a flash kernel (`output_copy_units`), or its math path under attention dropout
    # (`math_attention_units`); on CUDA the packed documents' mask takes it to the memory-efficient kernel
    cpu = hw.kind == "cpu"
    math = runs_math_path(spec, cpu)
    recipe_units, held, backward = recipe_memory(spec, counts, applied, job.lora_rank if lora else None, act_bytes,
                                                 flash_kernel=cpu)
    fused_dropout = hw.kind == "gpu"  # torch.native_dropout's bool mask on CUDA and ROCm (`dropout_units`)
    units = [layer_activation_units(spec, layer)
             + (math_attention_units(spec, layer, job.sequence_length, act_bytes, lora and mixed) if math
                else packed_attention_units(spec, layer, job.sequence_length)
                + output_copy_units(spec, layer, flash_kernel=cpu))
             + dropout_units(spec, layer, fused_dropout, act_bytes) + recipe_units[layer]
             for layer in range(spec.num_layers)]
    tables = rotary_table_units(spec, fp32_weights_under_autocast(applied))  # once, for every layer
    if not mixed:
        # an fp32 model keeps its 16-bit tensors at 4 bytes, but not what a bf16 layer keeps in fp32 already
        # (`fp32_activations.fixed_units`, bytes a hidden unit: half as many units at 4 bytes); its tables are fp32
        units = [u - fixed_units(spec, layer, job.sequence_length) / 2 for layer, u in enumerate(units)]
        tables = rotary_table_units(spec, fp32_weights=True) / 2
    unit_bytes = spec.hidden_size * act_bytes / 2  # a unit is a byte per hidden unit at 16 bits
    logits = tokens_micro * spec.vocab_size * recipe.logit_bytes  # the loss's peak (LOGIT_BYTES)
    if "activation-checkpointing" in applied:
        # each layer's input kept; then the loss's peak, or later the largest layer's activations while it is
        # recomputed and its backward's (the logits are freed by then)
        activations = tokens_micro * (2 * spec.num_layers + tables) * unit_bytes + held + max(
            logits, max(units) * unit_bytes * tokens_micro + backward)
    else:
        activations = tokens_micro * (sum(units) + tables) * unit_bytes + held + logits + backward
    unsharded = fsdp_unsharded_bytes(counts, spec.num_layers, "qlora" in applied, trainable, not lora, act_bytes) \
        if sharded else 0.0
    step_memory = model_bytes + unsharded + activations + recipe.framework_bytes + hw.runtime_overhead_bytes
    # every process loads the whole model; a 4-bit one onto its GPU (bitsandbytes' device map, transformers'
    # quantizer_bnb_4bit), where peft's prepare_model_for_kbit_training casts its 16-bit parameters to fp32; and
    # accelerate's FSDP2 moves the other ranks' copies to the meta device only for unquantized models ("bypassing the
    # move to meta will still cause the VRAM spike", utils/fsdp_utils.py, fsdp2_prepare_model), so each GPU holds the
    # whole base and adapters before sharding
    load_peak = weights + hw.runtime_overhead_bytes if sharded and "qlora" in applied else 0.0
    memory = max(step_memory, load_peak)
    fit = memory <= hw.memory_bytes

    full_precision = "fp32" if "fp32" in hw.peak_tflops else state.default_16bit  # a TPU has no fp32 rate
    one = state.with_(weight_dtype=state.default_16bit if mixed else full_precision, tp=1, pp=1, ep=1, attention_dp=1)
    s = to_setup(one)
    fitted = profiles.efficiency_table()["training"]
    tokens_step = job.global_batch * job.sequence_length
    model_flops = (4 if lora else 6) * counts.active_linear + 6 * counts.vocab_hidden  # per token
    if lora and counts.num_moe_layers:  # the merged experts' weight gradient (`recipe_memory`), for each routed token
        model_flops += 2 * counts.num_moe_layers * counts.top_k * counts.layer.expert_linear
    attention = prefill_attention_flops(s, 1, job.sequence_length) / job.sequence_length  # a token's, forward
    model_flops += 3 * attention
    # the experts a token is not routed to, which transformers computes anyway where it runs them densely (Llama 4's:
    # `dense_experts`), not the model's FLOPs: 6 a parameter, forward and backward (under LoRA the weight gradient is
    # each expert's merged one, 2, where a frozen base's would be none: 4 + 2)
    unrouted = (counts.num_experts - counts.top_k) * counts.num_moe_layers * counts.layer.expert_linear \
        if dense_experts(spec.model_type) else 0
    checkpointed = "activation-checkpointing" in applied
    # full checkpointing reruns each layer's forward in the backward: its linear layers and its attention
    work = model_flops + 6 * unrouted + (2 * (counts.active_linear + unrouted) + attention if checkpointed else 0)
    if sdpa_refused(spec.model_type):
        # eager attention (no SDPA for the model) computes the whole score matrix before masking it, at eager's share
        # of the matmuls' rate, in the forward, the backward (two forwards' worth) and a recomputed forward
        eager = prefill_attention_flops(to_setup(one.with_(attention="eager")), 1, job.sequence_length) \
            / job.sequence_length
        work += (4 if checkpointed else 3) * (eager / attention_kernel_factor("eager") - attention)
    compute_s = tokens_step * work / (n * s.peak_flops * s.eff.flop_efficiency * fitted["flop_efficiency_share"])
    micro_steps = -(-job.global_batch // (micro * n))  # per device, one after the other
    # the norms, casts, activations, adapters and their backwards between the products: streaming kernels, at the
    # device's measured STREAM triad bandwidth where its catalog entry has one (`training_traffic`), over the layers'
    # kept bytes as the trace counted them (the adapters' apart: by the widths they read and write, a token's routed
    # experts' alone), and the optimizer's update and the gradients' accumulation over the parameters a device holds
    autocast = fp32_weights_under_autocast(applied)
    kept = tokens_micro * unit_bytes * sum(traced_units(spec, layer, job.sequence_length, mixed, autocast,
                                                        fused_dropout) for layer in range(spec.num_layers))
    widths = tokens_micro * lora_params(state, 1, per_token=True) if lora else 0
    experts = counts.num_moe_layers * counts.num_experts * counts.layer.expert_linear  # merged with their adapters
    traffic_s = (micro_steps * traffic_bytes(kept, widths, counts.linear, applied, recipe.adapter_dropout, experts)
                 + optimizer_traffic_bytes(trainable / shard, optimizer, micro_steps)) / stream_bandwidth(hw, s.eff)
    if "compiled-training" in applied:  # the measured speedup of a whole step: its products and its fused kernels
        compute_s, traffic_s = compute_s / COMPILE_SPEEDUP, traffic_s / COMPILE_SPEEDUP
    fixed_s = micro_steps * spec.num_layers * fitted["layer_overhead_s"]
    if "qlora" in applied:  # the frozen 4-bit base dequantized in every forward and backward
        fixed_s += micro_steps * total * fitted["dequant_bytes_per_param"] / (hw.bandwidth_tbps * 1e12)
    comm_s = gather_s = 0.0
    if n > 1 and hw.interconnect is not None:
        link = hw.interconnect.bandwidth_gbps / 2 * 1e9 * ALLREDUCE_EFFICIENCY
        grad_bytes = trainable * (2 if mixed else 4)
        # data parallel all-reduces gradients once a step (the other micro-steps under no_sync); FSDP reduce-scatters
        # them (half the traffic) every micro-step, which keeps them sharded as the memory counts them (no_sync would
        # hold whole gradients on every device)
        comm_s = (n - 1) / n * grad_bytes / link * (micro_steps if "fsdp" in applied else 2)
        if "fsdp" in applied:
            # FSDP gathers the weights as they are stored (a frozen 4-bit base as NF4) before each micro-step's
            # forward and again before its backward; it prefetches the next layer's while one computes, so the
            # gathers hide behind the compute as far as it lasts
            gathered = base + trainable * act_bytes if lora else total * act_bytes
            gather_s = micro_steps * 2 * (n - 1) / n * gathered / link
    step_s = max(compute_s, gather_s) + traffic_s + fixed_s + comm_s
    peak16 = hw.peak_tflops.get(state.default_16bit, s.peak_flops / 1e12) * 1e12
    mfu = tokens_step * model_flops / (step_s * n * peak16)
    # sequences a micro-batch could hold: each brings its layers' activations, its logits and its share of the
    # recomputed layer; what the recipe holds whatever the tokens (`recipe_memory`) is there once
    per_sequence = (activations - held - backward) / micro
    micro_fit = max(int((hw.memory_bytes - hw.runtime_overhead_bytes - model_bytes - unsharded - held - backward
                         - recipe.framework_bytes) // max(per_sequence, 1)), 0) if load_peak <= hw.memory_bytes else 0
    # what a million tokens trained cost at the devices' catalog price (the rate a serving plan's cost is at)
    cost = cost_per_million_tokens(hw, n, tokens_step / step_s)
    return Prediction(
        memory_per_device_bytes=int(memory), weights_per_device_bytes=int(weights_per_device),
        gradient_bytes=int(grads / shard), optimizer_state_bytes=int(states / shard), kv_cache_per_device_bytes=0,
        activation_bytes=int(activations), gathered_bytes=int(unsharded),
        load_peak_bytes=int(load_peak) if load_peak > step_memory else 0, device_memory_bytes=hw.memory_bytes, fits=fit,
        max_concurrency=micro_fit, max_context=0, batch=micro, ttft_ms=0.0, tpot_ms=0.0,
        throughput_tokens_per_s=tokens_step / step_s, prefill_intensity=0.0, decode_intensity=0.0,
        ridge_flops_per_byte=s.ridge, quality_loss_pct=round(state.quality_loss_pct, 4),
        weight_dtype="nf4" if "qlora" in applied else s.compute_dtype, compute_dtype=s.compute_dtype,
        tensor_parallel=1, pipeline_parallel=1, expert_parallel=1, data_parallel=n, kv_dtype="-",
        slo_violations=[] if fit else [
            f"loading does not fit in device memory: {LOAD_PEAK_WHY} ({load_peak / 1e9:,.1f} GB)"
            if load_peak > max(step_memory, hw.memory_bytes)
            else "does not fit in device memory"], training_step_s=step_s,
        training_mfu=round(mfu, 4), cost_per_million_tokens_usd=cost,
    )
