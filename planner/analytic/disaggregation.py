"""Prefill/decode disaggregation's request model, shared by the plan search and `optiplan profile --prefill-instances`:
prompts prefilled on some instances of the model and outputs decoded on others, each prompt's cache sent from one to
the other (DistServe, OSDI '24; Splitwise, ISCA '24; SGLang's `--disaggregation-mode` and TensorRT-LLM's
`trtllm-serve disaggregated`). A decode step then carries no prompt chunks, so the inter-token latency is the plain
decode step's; the price is the cache transfer in the time to first token, and the devices the prefill instances take
from decoding."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import RequestError
from ..schema import RequestProfile
from ..schema.workload import SLO, Workload
from .memory import max_batch
from .requests import cached_tokens, largest_concurrency, largest_meeting, prefill_passes, running_limit
from .setup import Setup
from .speculation import Speculating, speculative_tpot_s
from .steps import ALLREDUCE_EFFICIENCY, decode_step, first_token_step_s, kv_bytes_per_device


@dataclass(frozen=True)
class Rates:
    ttft_s: float  # a p95 prompt prefilled alone, plus its cache's transfer
    tpot_s: float  # the plain decode step of a decode instance
    requests_per_s: float  # all instances: the lesser of what the prefill and the decode instances serve
    batch: int  # sequences decoding on each decode instance
    wait_s: float = 0.0  # what a request waits for a prefill instance, in ttft_s


def kv_transfer_s(s: Setup, prompt: int) -> float:
    """A prompt's cache from a prefill instance to a decode instance inside one node: each device sends its shard
    over its own NVLink (Mooncake and NIXL move it GPU to GPU), after the prefill (TensorRT-LLM's cache transceiver
    and SGLang's transfer start when the prefill's last layer is done)."""
    link = s.hw.interconnect
    if link is None:
        return kv_bytes_per_device(s, prompt) / s.host_link_bytes_per_s
    return kv_bytes_per_device(s, prompt) / (link.bandwidth_gbps / 2 * 1e9 * ALLREDUCE_EFFICIENCY) + \
        link.latency_us * 1e-6


def rates(s: Setup, workload: Workload, prefill_instances: int, decode_instances: int, prefix_fraction: float,
          decode_step_s: Callable[[int], float] | None = None, room: int | None = None) -> Rates:
    """Figures of `prefill_instances` + `decode_instances` instances, each the setup `s`, serving the workload's
    concurrency in a closed loop (a finished request's slot takes the next one). `prefix_fraction`: the share of each
    prompt found in the prefix cache; `decode_step_s(batch)`: the decode step with the plan's speculation (default: a
    plain step); `room`: the sequences a decode instance holds (default: as its memory allows).

    A request's cycle is its prefill (mean prompt, alone, and the cache's transfer) and its decode steps; the prefill
    instances serve at most their capacity, and where that binds the requests queue for them: the cycle stretches to
    the requests in flight over the rate, and the wait is in the time to first token (of a p95 prompt)."""
    i, o, p95 = workload.prompt_tokens_mean, workload.output_tokens_mean, workload.prompt_tokens_p95
    room = max(room if room is not None else max_batch(s, workload.context_needed, p95), 1)
    in_flight = max(min(workload.concurrency, decode_instances * room), 1)
    batch = math.ceil(in_flight / decode_instances)  # on the busiest decode instance
    step = decode_step_s(batch) if decode_step_s else decode_step(s, batch, workload.mean_context).time_s
    # a prompt in the engine's chunks (a prefill instance chunks as a colocated one does: SGLang's
    # `--chunked-prefill-size`, TensorRT-LLM's context chunking), back to back with the one before, or alone
    first, rest_s = prefill_passes(s, 1, i, cached_tokens(i, prefix_fraction))
    prefill_mean, prefill_alone = first.time_s + rest_s, first.alone_s + rest_s
    # over HTTP each request also waits the engine's server latency for its first token, outside the devices
    first_mean = prefill_mean + kv_transfer_s(s, i) + s.first_token_latency_s

    def rate_of(first_s: float) -> float:  # requests a second: the closed loop's, at most the prefill instances'
        return min(in_flight / (first_s + (o - 1) * step), prefill_instances / prefill_mean)

    def extras(rate: float) -> tuple[float, float, float]:
        """At `rate`, the share of the time the prefill instances are busy and what a prompt then waits on average
        beyond its prefill: a scheduler that runs a batch ahead takes an arriving prompt after the prefill it launched
        when the instance is busy (colocated, a decode batch always runs: a mean step every time, `analytic.requests`),
        and an eager prompt step that finds it idle runs its host time in series with its kernels (`StepCost.alone_s`,
        SGLang's), which back to back the step before hides."""
        busy = min(rate * prefill_mean / prefill_instances, 1.0)
        alone = (1.0 - busy) * (prefill_alone - prefill_mean)
        return busy, busy * prefill_mean if s.schedules_ahead else 0.0, alone

    rate = rate_of(first_mean)
    busy, ahead, alone = extras(rate)
    if ahead or alone:
        busy, ahead, alone = extras(rate_of(first_mean + ahead + alone))  # once more, at the rate they leave
        first_mean += ahead + alone
        rate = rate_of(first_mean)
    wait = max(0.0, in_flight / rate - (o - 1) * step - first_mean)
    # the p95 prompt's prefill: behind the one launched ahead of it, or alone with its host time where the instance is
    # idle more than one time in twenty, whichever is longer
    p95_first, p95_rest_s = prefill_passes(s, 1, p95, cached_tokens(p95, prefix_fraction))
    first = p95_first.time_s + p95_rest_s + ahead
    if busy < 0.95:
        first = max(first, p95_first.alone_s + p95_rest_s)
    ttft = first + kv_transfer_s(s, p95) + wait + first_token_step_s(s, batch, p95) + s.first_token_latency_s
    return Rates(ttft_s=ttft, tpot_s=step, requests_per_s=rate, batch=batch, wait_s=wait)


def disaggregated_profile(s: Setup, input_tokens: int, output_tokens: int, concurrency: int | str, prefill: int,
                          decode: int, cached: int = 0, speculation: Speculating | None = None,
                          on_demand: bool = False, ttft_slo_ms: float | None = None,
                          itl_slo_ms: float | None = None) -> RequestProfile:
    """Request-level figures of `prefill` + `decode` instances of the setup `s` serving requests of `input_tokens` in
    and `output_tokens` out, `concurrency` in flight (`"max"`: as many as the decode instances hold), in steady state
    (`rates`, the plan search's model): each prompt prefilled on a prefill instance, its cache sent to a decode
    instance, whose steps carry no prompt chunks; `cached` tokens of each prompt found in the prefix cache."""
    i, o = input_tokens, output_tokens
    room = largest_concurrency(s, i, o, on_demand, speculation)  # on each decode instance
    limit = running_limit(s, room)
    if limit < 1:
        raise RequestError(f"not one request of {i + o:,} tokens fits on a decode instance")
    c = limit * decode if concurrency == "max" else int(concurrency)
    share = (cached + 0.5) / i if cached else 0.0  # `cached_tokens` gives back `cached`

    def figures(n: int) -> Rates:
        wl = Workload(prompt_tokens_mean=i, prompt_tokens_p95=i, output_tokens_mean=o, output_tokens_p95=o,
                      concurrency=n, slo=SLO(), goal="latency")
        return rates(s, wl, prefill, decode, share, room=limit,
                     decode_step_s=lambda b: speculative_tpot_s(s, speculation, b, wl.mean_context))

    def meets(r: Rates) -> bool:
        return (ttft_slo_ms is None or r.ttft_s * 1e3 <= ttft_slo_ms) and \
            (itl_slo_ms is None or r.tpot_s * 1e3 <= itl_slo_ms)

    r = figures(c)
    slo_c = largest_meeting(limit * decode, lambda n: meets(figures(n)))
    cycle = c / r.requests_per_s  # Little's law: each request's time in the system
    scheduling = (f"prefill/decode disaggregated: {prefill} prefill and {decode} decode instance"
                  f"{'s' if decode > 1 else ''} of {s.tp * s.pp} device{'s' if s.tp * s.pp > 1 else ''} each, each "
                  f"prompt's cache sent to a decode instance ({kv_transfer_s(s, i) * 1e3:,.2f} ms), whose steps "
                  "carry no prompt chunks; the memory, latency and throughput above are one instance's")
    if cached:
        scheduling += f"; each prompt's first {cached:,} tokens found in the prefix cache"
    if s.first_token_latency_s:
        scheduling += (f"; each first token reaches the client {s.first_token_latency_s * 1e3:g} ms after the device's "
                       "work (the server's way in and out)")
    ok = meets(r)
    return RequestProfile(
        input_tokens=i, output_tokens=o, concurrency=c, max_concurrency=limit * decode, fits=c <= room * decode,
        running=min(c, r.batch * decode), queue_wait_ms=r.wait_s * 1e3, scheduling=scheduling,
        ttft_ms=r.ttft_s * 1e3, ttft_median_ms=r.ttft_s * 1e3, itl_ms=r.tpot_s * 1e3, request_latency_ms=cycle * 1e3,
        output_tokens_per_s=r.requests_per_s * o, requests_per_s=r.requests_per_s, ttft_slo_ms=ttft_slo_ms,
        itl_slo_ms=itl_slo_ms, meets_slo=ok, goodput_requests_per_s=r.requests_per_s if ok else 0.0,
        at_once=False, num_requests=None, duration_ms=cycle * 1e3, slo_concurrency=slo_c,
        slo_goodput_requests_per_s=slo_c and figures(slo_c).requests_per_s)
