"""Predictions for a plan state under a workload: memory, latency, throughput and SLO checks, with speculative
decoding and a draft model on the device; `evaluate` predicts baseline and plan with the same analytic model.
"""

from __future__ import annotations

import math

from ..analytic.disaggregation import rates as disaggregated_rates
from ..analytic.engine_rates import kernel_rate_caveat
from ..analytic.memory import (
    NO_DRAFT,
    causal_mask_bytes,
    fits,
    max_context,
    per_device_bytes,
    pooled_max_batch,
    transient_bytes,
)
from ..analytic.offload import host_weight_bytes
from ..analytic.requests import cached_tokens, front_end, request_figures
from ..analytic.setup import Setup
from ..analytic.speculation import Speculating, draft_prefill_s, speculation_bytes, speculative_step_s
from ..analytic.steps import decode_step, first_token_step_s, prefill_step
from ..catalog.engines import continuous_scheduling
from ..catalog.expert_dispatch import dispatch_note
from ..catalog.hardware import cost_per_million_tokens
from ..schema import HardwareSpec, ModelSpec
from ..schema.advice import Prediction
from ..schema.releases import split_engine
from ..schema.workload import Workload
from .objective import STEP_GAIN
from .state import PlanState, Speculation, kv_reserved_tokens, to_setup
from .training import training_prediction


def _speculating(state: PlanState) -> Speculating:
    """The state's speculation as the step model takes it: a draft model on the target's devices, in its format."""
    spec = state.speculation
    draft = (to_setup(state.with_(spec=spec.draft, speculation=None, ep=1, attention_dp=1))
             if spec.method == "draft" and spec.draft is not None else None)
    return Speculating(spec.method, spec.num_tokens, spec.acceptance, draft)


def _speculative_step_s(state: PlanState, s: Setup, batch: int, context: int, kept: bool = True) -> tuple[float, float]:
    """(seconds per step, tokens produced per step per sequence) with the state's speculation
    (`analytic.speculation.speculative_step_s`)."""
    return speculative_step_s(s, _speculating(state), batch, context, kept)


def speculative_speedup(spec: ModelSpec, draft: ModelSpec | None, hw: HardwareSpec, acceptance: float,
                        num_tokens: int, context: int, weight_dtype: str = "fp32", method: str = "draft") -> float:
    """Predicted batch-1 decode speedup of speculation with a given (e.g. measured) acceptance rate: the same
    step model the plan search uses, so `verify` can hold a measured speedup against it."""
    state = PlanState(spec=spec, hw=hw, devices=1, weight_dtype=weight_dtype)
    rate = min(max(acceptance, 0.0), 0.999)  # (1 - a^(g+1)) / (1 - a) is g+1 in the limit a -> 1
    return speculation_speedup(state.with_(speculation=Speculation(method, num_tokens, rate, draft)), 1, context)


def speculation_speedup(state: PlanState, batch: int, context: int, kept: bool = True) -> float:
    """Time per token without the state's speculation over the time with it, at `batch` sequences decoding together
    (tokens/s of the batch scale the same way); `kept=False` gives the step model's gain before the measured
    batch correction."""
    s = to_setup(state)
    step_s, tokens = _speculative_step_s(state, s, batch, context, kept)
    return decode_step(s, batch, context).time_s / (step_s / tokens)


def _draft_prefill_s(state: PlanState, prompt: int, shared: float) -> float:
    """A draft model's own prefill of a prompt, before its first proposal (`speculation.draft_prefill_s`)."""
    if state.speculation is None:
        return 0.0
    return draft_prefill_s(_speculating(state), prompt, cached_tokens(prompt, shared))


def _draft_bytes(state: PlanState, reserved: float) -> tuple[float, float] | None:
    """(weights, KV per sequence) of a speculative draft on one device: a draft model's, an EAGLE-3 head's (one
    decoder layer, its fused projection and its draft-vocabulary head, and that layer's cache) or the MTP modules'
    the checkpoint ships beside the counted layers (`mtp_module_bytes`); None for n-gram (no weights)."""
    spec = state.speculation
    if spec is not None and spec.method in ("eagle3", "mtp"):  # heads of the target's: as profile counts them
        return speculation_bytes(to_setup(state), _speculating(state), int(reserved))
    if spec is None or spec.method != "draft" or spec.draft is None:
        return None
    d = to_setup(state.with_(spec=spec.draft, speculation=None, ep=1, attention_dp=1, offload_fraction=0.0))
    weights, kv, _ = per_device_bytes(d, 1, int(reserved), 1)
    return weights, kv


def serving_figures(state: PlanState, s: Setup, workload: Workload, batch: int) -> tuple[float, float, float]:
    """(mean inter-token latency, time to first token of a p95 prompt, in seconds; output tokens per second) of `batch`
    requests of the workload's mean lengths served together by one replica (`serving_waits`)."""
    return serving_waits(state, s, workload, batch)[:3]


def serving_waits(state: PlanState, s: Setup, workload: Workload,
                  batch: int) -> tuple[float, float, float, float]:
    """`serving_figures` and, of the time to first token, the seconds a request waits for the engine's front end: of
    `batch` requests of the workload's mean lengths served together by one replica, prefill included.

    Continuous batching is the request model's (`analytic.requests`), as `profile` predicts it: the waiting prompts
    ride in the decode steps, in chunks of the engine's budget with chunked prefill and whole without (in-flight
    batching, TensorRT-LLM's default), each such step one forward pass over all its tokens (`steps.mixed_step`), and
    the inter-token latency counts what they add (the plan's own decode step, speculation included, plus what the
    prompts add to a plain one). A static batch prefills together, decodes, and waits for its longest output (slots
    idle for p95 - mean of the outputs). A front end that spends host time on each request (vLLM's API server)
    bounds the requests a replica completes a second (each data-parallel rank's own server process where the
    configs start one per rank), and over HTTP each first token comes the engine's server latency
    later (`first_token_latency_s`)."""
    i, o, p95 = workload.prompt_tokens_mean, workload.output_tokens_mean, workload.prompt_tokens_p95
    share = workload.shared_prefix_fraction if state.prefix_caching else 0.0
    # paged-kv turns continuous batching on where a plan adds it; an engine that has no such step batches as its
    # profile says (llama-server's slots join and leave at every step, --cont-batching on by default)
    own = state.engine is not None and continuous_scheduling(state.engine)
    if state.continuous_batching or own:
        f = request_figures(s, i, o, batch, True, cached_tokens(i, share))
        # the plan's own decode step (speculation included) of the sequences a step advances (fewer than the batch
        # where the step budget binds), plus what the prompts (and a binding budget) add to a plain one
        itl = _tpot_s(state, s, f["decode_rows"], workload.mean_context) + max(0.0, f["itl_s"] - f["decode_s"])
        # the p95 prompt's first token under the mean prompts' load
        ttft = request_figures(s, i, o, batch, True, cached_tokens(i, share),
                               own=(p95, cached_tokens(p95, share)))["ttft_s"] + _draft_prefill_s(state, p95, share)
        # over HTTP each request's first token comes the engine's server latency later: a client waits it out of its
        # round trip, while a throughput job's queue keeps the engine's slots busy through it (as profile has a queue
        # absorb it); the engine's front end completes at most 1 / request_host_s requests a second (vLLM's API
        # server): the difference waits before the prefill. The rate is the mean request's; the p95 prompt's TTFT
        # takes the same latency and wait.
        latency = s.first_token_latency_s
        cycle = f["ttft_s"] + (o - 1) * itl + (0.0 if workload.goal == "throughput" else latency)
        g = front_end({"cycle_s": cycle, "ttft_s": cycle, "queue_s": 0.0}, batch, s.request_host_s)
        return itl, ttft + latency + g["queue_s"], batch * o / g["cycle_s"], g["queue_s"]
    tpot = _tpot_s(state, s, batch, workload.mean_context)
    ttft = prefill_step(s, 1, p95, cached_tokens(p95, share)).time_s + first_token_step_s(s, batch, p95) \
        + _draft_prefill_s(state, p95, share)
    cycle = prefill_step(s, batch, i, cached_tokens(i, share)).time_s + (o - 1) * tpot
    # a static batch ends with its longest output, its other slots idle meanwhile (p95 - mean of the outputs); a batch
    # of one has no other slot
    idle = workload.output_tokens_mean / workload.output_tokens_p95 if batch > 1 else 1.0
    return tpot, ttft, batch * o / cycle * idle, 0.0


def sequences_per_server(p: Prediction, concurrency: int) -> int:
    """Concurrent sequences one server (one data-parallel replica; a decode instance of a disaggregated plan) runs in
    the plan: what the workload asks, or the batch the plan serves where it chose more (the throughput goal fills the
    engine's share), never above what the cache holds (where it holds none, the batch the plan is priced at as if it
    fit). Its max_num_seqs and the configs' limits both say this."""
    total = max(1, min(max(concurrency, p.batch), p.max_concurrency or p.batch))
    return max(1, -(-total // serving_instances(p)))


def serving_instances(p: Prediction) -> int:
    """The servers that hold the plan's sequences: its data-parallel replicas, less a disaggregated plan's prefill
    instances."""
    return max(p.data_parallel - p.prefill_instances, 1)


MAX_BATCH = 4096  # beyond this no engine's default limit on running sequences of one scheduler reaches


def _tpot_s(state: PlanState, s: Setup, batch: int, context: int) -> float:
    if state.speculation is not None:
        step_s, per_step = _speculative_step_s(state, s, batch, context)
        return step_s / per_step
    return decode_step(s, batch, context).time_s


def throughput_batch(state: PlanState, s: Setup, workload: Workload, low: int, high: int) -> int:
    """For the throughput and cost goals: the concurrency, from the workload's up to as many as memory holds, that
    serves the most output tokens per second within the SLOs on time per token and to first token (tried at powers
    of two and at the limit, then, where an SLO binds between two of them, bisected to within BATCH_RESOLUTION of
    the largest that meets it: an 8B for code completion had stopped at 16, where 24 meets its 30 ms per token; on
    the plan's devices the cheapest token is the one served at the highest rate), each larger batch taken only where
    it serves BATCH_GAIN more. Both figures only grow with the batch."""
    high = min(high, MAX_BATCH * state.attention_dp)  # each data-parallel attention group schedules its own
    tries = sorted({low, high, *(1 << i for i in range(13) if low < (1 << i) < high)})
    slo = workload.slo
    limits = (slo.tpot_p95_ms / 1e3 if slo.tpot_p95_ms else math.inf, slo.ttft_p95_ms / 1e3 if slo.ttft_p95_ms
              else math.inf)
    best, best_rate, met, missed = low, 0.0, low, None

    def meets(b: int) -> bool:
        """Whether `b` meets the SLOs (the workload's own batch always counts), taken as the best where it gains."""
        nonlocal best, best_rate
        tpot, ttft, rate = serving_figures(state, s, workload, b)
        if (tpot > limits[0] or ttft > limits[1]) and b > low:
            return False
        if rate > best_rate * (1 + BATCH_GAIN):
            best, best_rate = b, rate
        return True
    for b in tries:
        if not meets(b):
            missed = b
            break
        met = b
    while missed is not None and missed - met > max(1, met * BATCH_RESOLUTION):
        b = (met + missed) // 2
        if meets(b):
            met = b
        else:
            missed = b
    return best


# where an SLO binds between two powers of two, the batch is found to within this share of itself
BATCH_RESOLUTION = 1 / 8
# a larger batch must serve this much more than the best smaller one to be taken, as a plan step must (an 8B on an
# H100 for chat had gone from 512 to 737 sequences for 0.4% more tokens/s at 43% more time per token, a 70B on 8
# H100s from 128 to 192 for 1.8% at 47% more)
BATCH_GAIN = STEP_GAIN


def capacities(state: PlanState, s: Setup, workload: Workload, reserved: float | None = None,
               draft: tuple[float, float] | None = None) -> tuple[int, int, int | None]:
    """(sequences a replica's cache holds in the engine's default share of the device, those it holds with the share
    raised, the engine's own ceiling where it binds, else None), as `profile` counts them (`memory.pooled_max_batch`):
    beside a whole prefill chunk's activations where the engine chunks, the batch's own prompts' where it does not
    (eager `generate` prefills them together), a draft's weights and cache, and the engine's profiling peak at that
    many rows where the config caps the server at its sequences (vLLM's sampler). The workload's own sequences may
    have the share raised (RAISED_SHARE: the configs set it), while the throughput and cost goals fill no more than
    the default share; and never more run than the engine runs at all, whatever its options (llama.cpp's
    LLAMA_MAX_SEQ). `reserved`, `draft`: the cache tokens a sequence holds and the draft's bytes, where the caller has
    them (`evaluate`)."""
    if state.spec.max_position_embeddings < workload.context_needed:
        return 0, 0, None
    reserved = kv_reserved_tokens(state, workload) if reserved is None else reserved
    draft = (_draft_bytes(state, reserved) or NO_DRAFT) if draft is None else draft
    prompt = workload.prompt_tokens_p95
    max_conc, room = (pooled_max_batch(s, int(reserved), prompt, raised, draft) for raised in (False, True))
    ceiling = s.running_ceiling if s.running_ceiling and room > s.running_ceiling else None
    if ceiling:
        max_conc, room = min(max_conc, ceiling), ceiling
    return max_conc, room, ceiling


def evaluate(state: PlanState, workload: Workload, full: bool = True,
             speed: tuple[float, float, float] | None = None, fill: bool = True) -> Prediction:
    """Predict memory, latency and throughput of `state` serving `workload`. `speed`: factors on the time per
    token, time to first token and throughput (measured technique effects, `plan.effects`), applied before the
    SLOs are checked; `fill` False: at the workload's own concurrency (as the cache holds it), not the batch the
    throughput and cost goals search for."""
    if workload.training is not None and workload.goal == "training":
        return training_prediction(state, workload)
    s = to_setup(state)
    hw = state.hw
    reserved = kv_reserved_tokens(state, workload)
    prompt = workload.prompt_tokens_p95
    weights, kv_one, _ = per_device_bytes(s, 1, int(reserved), prompt)
    # a draft's weights and, per sequence, its cache share the device
    draft = _draft_bytes(state, reserved) or NO_DRAFT
    weights += draft[0]
    kv_one += draft[1] / s.attention_dp
    max_conc, room, ceiling = capacities(state, s, workload, reserved, draft)
    # each data-parallel replica serves its share of the sequences with its own copy of the model
    replicas = max(state.replicas, 1)
    wanted = -(-workload.concurrency // replicas)
    batch = min(wanted, room) if room >= 1 else wanted  # nothing fits: its figures at the batch it would serve
    share = workload.shared_prefix_fraction if state.prefix_caching else 0.0
    cached = cached_tokens(prompt, share)
    context = workload.mean_context
    serving = replicas  # instances serving sequences (not the prefill instances of a disaggregated plan)
    sequences = None  # the sequences served at once, where not every serving instance's batch
    waits_s = 0.0  # of the time to first token, the wait for the engine's front end
    if state.prefill_instances:
        serving = replicas - state.prefill_instances
        r = disaggregated_rates(s, workload, state.prefill_instances, serving, share,
                                lambda b: _tpot_s(state, s, b, context), room=room)
        batch, tpot, ttft_s, throughput = r.batch, r.tpot_s, r.ttft_s, r.requests_per_s * workload.output_tokens_mean
    else:
        filled = fill and workload.goal in ("throughput", "cost") and max_conc > batch
        if filled:
            batch = throughput_batch(state, s, workload, batch, max_conc)
        tpot, ttft_s, throughput, waits_s = serving_waits(state, s, workload, batch)
        # the replicas that have sequences to serve: a goal that fills them fills them all; otherwise the workload's
        # sequences spread over as many as they take, and the rest stand idle (still paid for)
        sequences = batch * replicas if filled else min(batch * replicas, workload.concurrency)
        busy = -(-sequences // batch) if batch else replicas
        throughput *= busy
    kv_dev = kv_one * batch
    # the batch's prefill (in the engine's chunks) or the profiling peak of the rows the config caps the server at
    act = transient_bytes(s, batch, int(reserved), prompt) + causal_mask_bytes(s, int(reserved))
    memory = weights + kv_dev + act + s.runtime_bytes
    fit = room >= 1 and fits(s, 1, workload.context_needed, prompt, raised=True, draft=draft)
    prefill = prefill_step(s, 1, prompt, cached)
    decode = decode_step(s, batch, context)
    if speed is not None:  # (the front end's wait scaled with the rest of the first token's time)
        tpot, ttft_s, throughput = tpot * speed[0], ttft_s * speed[1], throughput * speed[2]
        waits_s *= speed[1]
    violations = []
    slo = workload.slo
    if slo.ttft_p95_ms and ttft_s * 1e3 > slo.ttft_p95_ms:
        violations.append(f"TTFT {ttft_s * 1e3:,.0f} ms > {slo.ttft_p95_ms:,.0f} ms")
    if slo.tpot_p95_ms and tpot * 1e3 > slo.tpot_p95_ms:
        violations.append(f"TPOT {tpot * 1e3:,.1f} ms > {slo.tpot_p95_ms:,.1f} ms")
    if slo.min_throughput_tokens_per_s and throughput < slo.min_throughput_tokens_per_s:
        violations.append(f"throughput {throughput:,.0f} tokens/s < {slo.min_throughput_tokens_per_s:,.0f}")
    if workload.request_rate_per_s and throughput < workload.request_rate_per_s * workload.output_tokens_mean:
        # arrivals faster than the plan completes requests at the workload's concurrency: the queue grows without end
        served = throughput / workload.output_tokens_mean
        in_flight = sequences or min(batch * serving, workload.concurrency)
        violations.append(f"arrivals {workload.request_rate_per_s:,.2f} requests/s > {served:,.2f} served at "
                          f"{in_flight} in flight (the queue grows without bound)")
    if workload.concurrency > room * serving and fit:
        held = room * serving
        violations.append((f"{state.engine} runs at most {held} sequences at once" if ceiling else
                           f"KV cache holds {held} sequence{'' if held == 1 else 's'}") +
                          f", workload needs {workload.concurrency}")
    cost = cost_per_million_tokens(hw, state.devices, throughput)
    return Prediction(
        memory_per_device_bytes=int(memory), weights_per_device_bytes=int(weights),
        kv_cache_per_device_bytes=int(kv_dev), activation_bytes=int(act), device_memory_bytes=hw.memory_bytes,
        fits=fit, max_concurrency=room * serving, max_context=max_context(s, 1, raised=True) if full else 0,
        batch=sequences or batch * serving,
        ttft_ms=ttft_s * 1e3, tpot_ms=tpot * 1e3, throughput_tokens_per_s=throughput,
        front_end_wait_ms=min(waits_s, ttft_s) * 1e3,
        prefill_intensity=prefill.intensity(s.shards), decode_intensity=decode.intensity(s.shards),
        ridge_flops_per_byte=s.ridge, quality_loss_pct=round(state.quality_loss_pct, 4),
        **dtypes_and_layout(state, s), cost_per_million_tokens_usd=cost, slo_violations=violations,
    )


def dtypes_and_layout(state: PlanState, s: Setup) -> dict:
    act = "fp32" if s.compute_dtype == "fp32" else state.default_16bit
    offloaded = host_weight_bytes(s)
    return {"weight_dtype": state.weight_dtype, "compute_dtype": s.compute_dtype, "kv_dtype": state.kv_dtype or act,
            "tensor_parallel": state.tp, "pipeline_parallel": state.pp, "expert_parallel": state.ep,
            "attention_data_parallel": state.attention_dp,
            "data_parallel": state.replicas, "prefill_instances": state.prefill_instances,
            "api_servers_per_rank": state.api_servers_per_rank,
            "offload_bytes_per_device": int(offloaded)}


def plan_caveats(engine: str | None, weights: str, hw: HardwareSpec, final: Prediction) -> list[str]:
    """What the plan's prediction assumes that its deployment may not have: its weights' GEMM priced at a rate
    measured on other devices only (`kernel_rate_caveat`), and experts dispatched by a top-k all-to-all kernel that
    the engine's stock image lacks or its build for the device has none of (`expert_dispatch.dispatch_note`)."""
    caveats = [kernel_rate_caveat(engine, weights, hw)]
    if final.expert_parallel > 1 and final.attention_data_parallel > 1:
        caveats.append(dispatch_note(split_engine(engine or "")[0], hw))
    return [c for c in caveats if c]
