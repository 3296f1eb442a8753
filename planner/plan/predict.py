"""Predictions for a deployment configuration under a workload.

A `PlanState` is every knob the techniques turn (formats, parallelism, engine features, speculative
decoding, ...). Each technique is a pure function PlanState -> PlanState, so a plan's predicted effect
is the composition of its steps, and `evaluate` turns any state into a `Prediction` with the same
analytic model that predicts the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..analytic.steps import (
    Setup,
    decode_step,
    fits,
    max_context,
    per_device_bytes,
    prefill_step,
)
from ..catalog.dtypes import bytes_per_element, compute_dtype, weight_format
from ..analytic.efficiency import default_efficiency, prefill_chunk_tokens
from ..analytic.kvcache import kv_bits
from ..analytic.params import param_counts
from ..schema import HardwareSpec, ModelSpec
from ..schema.advice import Prediction
from ..schema.workload import Workload
from .training import training_prediction

# Contiguous caches (no paging) reserve the longest sequence for every slot; paged caches waste
# under 4% (vLLM, arXiv 2309.06180).
PAGED_KV_WASTE = 0.04


@dataclass(frozen=True)
class Speculation:
    method: str  # draft, ngram, mtp
    num_tokens: int  # tokens proposed per step (gamma)
    acceptance: float  # probability each proposed token is accepted (alpha)
    draft: ModelSpec | None = None


@dataclass(frozen=True, eq=False)
class PlanState:
    """The configuration a plan builds, step by step."""

    spec: ModelSpec
    hw: HardwareSpec
    devices: int
    tp: int = 1
    pp: int = 1
    ep: int = 1
    weight_dtype: str = "bf16"
    group_size: int | None = None
    activations: str | None = None
    kv_dtype: str | None = None
    engine: str = "transformers"  # eager generate until serving features are applied
    paged_kv: bool = False
    continuous_batching: bool = False
    prefix_caching: bool = False
    chunked_prefill: bool = False
    attention: str = "sdpa"  # sdpa, flash, eager
    graphs: bool = False  # CUDA graphs / torch.compile: per-step launch overhead removed
    offload_fraction: float = 0.0
    speculation: Speculation | None = None
    quality_loss_pct: float = 0.0
    training: frozenset[str] = field(default_factory=frozenset)  # training techniques applied

    @property
    def default_16bit(self) -> str:
        return "bf16" if self.hw.features.bf16 and "bf16" in self.hw.peak_tflops else "fp16"

    def with_(self, **changes) -> PlanState:
        return replace(self, **changes)


def baseline_state(spec: ModelSpec, hw: HardwareSpec, devices: int) -> PlanState:
    """The model as published on `devices` devices with eager transformers `generate`: its
    checkpoint's weights (a published fp8 checkpoint stays fp8 where the device has fp8, else it is
    dequantized), 16-bit otherwise (fp32 where the device has no 16-bit rate), SDPA attention, a
    contiguous cache per slot, layers split over the devices in sequence (`device_map="auto"`)."""
    state = PlanState(spec=spec, hw=hw, devices=devices, tp=1, pp=min(devices, spec.num_layers))
    dtype = state.default_16bit if state.default_16bit in hw.peak_tflops else "fp32"
    if spec.checkpoint_dtype == "fp8" and hw.features.fp8 and "fp8" in hw.peak_tflops:
        dtype = "fp8"
    return state.with_(weight_dtype=dtype)


def to_setup(state: PlanState) -> Setup:
    """Resolve a state into the analytic model's inputs."""
    hw = state.hw
    compute = compute_dtype(state.weight_dtype, state.activations, state.default_16bit)
    act = "fp32" if compute == "fp32" else state.default_16bit
    engine = "serving" if state.graphs else "transformers"
    eff = default_efficiency(hw, state.weight_dtype, compute, engine)
    attention_eff = {"flash": eff.flop_efficiency, "sdpa": eff.flop_efficiency * 0.6,
                     "eager": eff.flop_efficiency * 0.4}[state.attention]
    host = (hw.host_link_gbps or 25.0) * 1e9
    return Setup(
        spec=state.spec, counts=param_counts(state.spec), hw=hw, tp=state.tp, pp=state.pp, ep=state.ep,
        weights=weight_format(state.weight_dtype, state.group_size), act_bytes=bytes_per_element(act),
        kv_bits=kv_bits(state.kv_dtype or act), compute_dtype=compute, eff=eff,
        layout="serving" if state.paged_kv else "transformers", eager_attention=state.attention == "eager",
        prefill_chunk_tokens=prefill_chunk_tokens("serving") if state.chunked_prefill else None,
        attention_efficiency=attention_eff,
        offload_fraction=state.offload_fraction, host_link_bytes_per_s=host,
    )


def kv_reserved_tokens(state: PlanState, workload: Workload) -> float:
    """Cache tokens one sequence occupies: paged caches hold what is used (plus under 4%),
    contiguous ones reserve the longest sequence."""
    if state.paged_kv:
        return workload.mean_context * (1 + PAGED_KV_WASTE)
    return workload.context_needed


def _speculative_step_s(state: PlanState, s: Setup, batch: int, context: int) -> tuple[float, float]:
    """(seconds per step, tokens produced per step per sequence) with speculative decoding:
    gamma draft steps, one target pass verifying gamma+1 tokens, (1 - a^(g+1)) / (1 - a) tokens
    accepted on average (Leviathan et al.)."""
    spec = state.speculation
    g, a = spec.num_tokens, spec.acceptance
    expected = (1 - a ** (g + 1)) / (1 - a)
    verify = decode_step(s, batch, context, tokens_per_seq=g + 1).time_s
    draft = 0.0
    if spec.method == "draft" and spec.draft is not None:
        draft_setup = to_setup(state.with_(spec=spec.draft, speculation=None, ep=1))
        draft = g * decode_step(draft_setup, batch, context).time_s
    elif spec.method == "mtp":
        draft = g * decode_step(s, batch, context).time_s / max(state.spec.num_layers, 1)  # one extra layer
    return verify + draft, expected


def speculative_speedup(spec: ModelSpec, draft: ModelSpec | None, hw: HardwareSpec, acceptance: float,
                        num_tokens: int, context: int, weight_dtype: str = "fp32", method: str = "draft") -> float:
    """Predicted batch-1 decode speedup of speculation with a given (e.g. measured) acceptance rate: the same
    step model the plan search uses, so `verify` can hold a measured speedup against it."""
    state = PlanState(spec=spec, hw=hw, devices=1, weight_dtype=weight_dtype)
    s = to_setup(state)
    plain_s = decode_step(s, 1, context).time_s
    rate = min(max(acceptance, 0.0), 0.999)  # (1 - a^(g+1)) / (1 - a) is g+1 in the limit a -> 1
    spec_state = state.with_(speculation=Speculation(method, num_tokens, rate, draft))
    step_s, tokens = _speculative_step_s(spec_state, s, 1, context)
    return plain_s / (step_s / tokens)


def _draft_bytes(state: PlanState, reserved: float) -> tuple[float, float] | None:
    """(weights, KV per sequence) of a speculative draft model on one device, or None."""
    spec = state.speculation
    if spec is None or spec.method != "draft" or spec.draft is None:
        return None
    d = to_setup(state.with_(spec=spec.draft, speculation=None, ep=1, offload_fraction=0.0))
    weights, kv, _ = per_device_bytes(d, 1, int(reserved), 1)
    return weights, kv


def evaluate(state: PlanState, workload: Workload, full: bool = True) -> Prediction:
    """Predict memory, latency and throughput of `state` serving `workload`."""
    if workload.training is not None and workload.goal == "training":
        return training_prediction(state, workload)
    s = to_setup(state)
    hw = state.hw
    reserved = kv_reserved_tokens(state, workload)
    prompt = workload.prompt_tokens_p95
    weights, kv_one, act = per_device_bytes(s, 1, int(reserved), prompt)
    free = hw.memory_bytes - hw.runtime_overhead_bytes - weights - act
    max_conc = int(free // kv_one) if kv_one > 0 and free > 0 else 0
    if state.spec.max_position_embeddings < workload.context_needed:
        max_conc = 0
    draft_bytes = _draft_bytes(state, reserved)
    if draft_bytes:  # the draft's weights and, per sequence, its cache share the device
        weights += draft_bytes[0]
        kv_one += draft_bytes[1]
        free = hw.memory_bytes - hw.runtime_overhead_bytes - weights - act
        max_conc = int(free // kv_one) if free > 0 else 0
    batch = max(min(workload.concurrency, max_conc), 1)
    kv_dev = kv_one * batch
    memory = weights + kv_dev + act + hw.runtime_overhead_bytes
    fit = max_conc >= 1 and fits(s, 1, workload.context_needed, prompt)

    cached = min(int(prompt * workload.shared_prefix_fraction), prompt - 1) if state.prefix_caching else 0
    prefill = prefill_step(s, 1, prompt, cached)
    context = workload.mean_context
    decode = decode_step(s, batch, context)
    if state.speculation is not None:
        step_s, per_step = _speculative_step_s(state, s, batch, context)
        tpot = step_s / per_step
    else:
        tpot = decode.time_s
    throughput = batch / tpot
    if not state.continuous_batching:
        # a static batch waits for its longest sequence: slots idle for (p95 - mean) of the outputs
        throughput *= workload.output_tokens_mean / workload.output_tokens_p95
    violations = []
    slo = workload.slo
    if slo.ttft_p95_ms and prefill.time_s * 1e3 > slo.ttft_p95_ms:
        violations.append(f"TTFT {prefill.time_s * 1e3:,.0f} ms > {slo.ttft_p95_ms:,.0f} ms")
    if slo.tpot_p95_ms and tpot * 1e3 > slo.tpot_p95_ms:
        violations.append(f"TPOT {tpot * 1e3:,.1f} ms > {slo.tpot_p95_ms:,.1f} ms")
    if slo.min_throughput_tokens_per_s and throughput < slo.min_throughput_tokens_per_s:
        violations.append(f"throughput {throughput:,.0f} tokens/s < {slo.min_throughput_tokens_per_s:,.0f}")
    if workload.concurrency > max_conc and fit:
        violations.append(f"KV cache holds {max_conc} sequences, workload needs {workload.concurrency}")
    price = hw.price.low_usd_per_hour if hw.price and hw.price.low_usd_per_hour else None
    if price and hw.price.high_usd_per_hour:
        price = (hw.price.low_usd_per_hour + hw.price.high_usd_per_hour) / 2
    cost = price * state.devices / (throughput * 3600) * 1e6 if price and throughput > 0 else None
    return Prediction(
        memory_per_device_bytes=int(memory), weights_per_device_bytes=int(weights),
        kv_cache_per_device_bytes=int(kv_dev), activation_bytes=int(act), device_memory_bytes=hw.memory_bytes,
        fits=fit, max_concurrency=max_conc, max_context=max_context(s, 1) if full else 0, batch=batch,
        ttft_ms=prefill.time_s * 1e3, tpot_ms=tpot * 1e3, throughput_tokens_per_s=throughput,
        prefill_intensity=prefill.flops / s.shards / prefill.bytes_per_device,
        decode_intensity=decode.flops / s.shards / decode.bytes_per_device,
        ridge_flops_per_byte=s.ridge, quality_loss_pct=round(state.quality_loss_pct, 4),
        **dtypes_and_layout(state, s), cost_per_million_tokens_usd=cost, slo_violations=violations,
    )


def dtypes_and_layout(state: PlanState, s: Setup) -> dict:
    act = "fp32" if s.compute_dtype == "fp32" else state.default_16bit
    on_device = max(s.stage_weights)
    offloaded = on_device / (1 - state.offload_fraction) * state.offload_fraction if state.offload_fraction else 0
    return {"weight_dtype": state.weight_dtype, "compute_dtype": s.compute_dtype, "kv_dtype": state.kv_dtype or act,
            "tensor_parallel": state.tp, "pipeline_parallel": state.pp, "expert_parallel": state.ep,
            "offload_bytes_per_device": int(offloaded)}
