"""Prefill/decode disaggregation: prompts prefilled on some instances of the model and outputs decoded on others,
each prompt's cache sent from one to the other (DistServe, OSDI '24; Splitwise, ISCA '24; SGLang's
`--disaggregation-mode` and TensorRT-LLM's `trtllm-serve disaggregated`).

A decode step then carries no prompt chunks, so the inter-token latency is the plain decode step's. The price: the
cache transfer in the time to first token, and the devices the prefill instances take from decoding. It is a trade
of capacity for latency under SLOs, not a throughput technique ("Disaggregated prefill DOES NOT improve
throughput", vLLM's docs/features/disagg_prefill.md), and it is scored as DistServe places its instances: the split
that serves the most requests per second within the workload's SLOs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..analytic.memory import max_batch
from ..analytic.requests import cached_tokens, prefill_passes, queued, request_figures
from ..analytic.setup import Setup
from ..analytic.steps import (
    ALLREDUCE_EFFICIENCY,
    decode_step,
    first_token_step_s,
    kv_bytes_per_device,
)
from ..schema.workload import Workload


@dataclass(frozen=True)
class Rates:
    ttft_s: float  # a p95 prompt prefilled alone, plus its cache's transfer
    tpot_s: float  # the plain decode step of a decode instance
    requests_per_s: float  # all instances: the lesser of what the prefill and the decode instances serve
    batch: int  # sequences decoding on each decode instance


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
    return Rates(ttft_s=ttft, tpot_s=step, requests_per_s=rate, batch=batch)


def _meets(workload: Workload, ttft_s: float, tpot_s: float) -> bool:
    slo = workload.slo
    return (not slo.ttft_p95_ms or ttft_s * 1e3 <= slo.ttft_p95_ms) and \
        (not slo.tpot_p95_ms or tpot_s * 1e3 <= slo.tpot_p95_ms)


def colocated_goodput(s: Setup, workload: Workload, instances: int) -> float:
    """Requests per second within the SLOs (0 where they are missed) of `instances` instances of `s` that each prefill
    and decode their share of the requests, the prompts' chunks riding in the decode steps or, where the engine runs
    prompts first (SGLang), in steps of their own between them (`analytic.requests`)."""
    i, o, p95 = workload.prompt_tokens_mean, workload.output_tokens_mean, workload.prompt_tokens_p95
    room = max(max_batch(s, workload.context_needed, p95), 1)
    batch = max(min(math.ceil(workload.concurrency / instances), room), 1)
    f = queued(request_figures(s, i, o, batch, True, cached_tokens(i, workload.shared_prefix_fraction)), batch, batch,
               s.first_token_latency_s)  # the server's latency before each first token, as `rates` counts it
    share = workload.shared_prefix_fraction  # the p95 prompt's first token under the mean prompts' load
    ttft = request_figures(s, i, o, batch, True, cached_tokens(i, share),
                           own=(p95, cached_tokens(p95, share)))["ttft_s"] + s.first_token_latency_s
    return instances * batch / f["cycle_s"] if _meets(workload, ttft, f["itl_s"]) else 0.0


def best_layout(setups: dict[int, Setup], workload: Workload, devices: int) -> tuple[int, int] | None:
    """(devices per instance, prefill instances) among `setups` (devices per instance -> its setup) that serves the
    most requests per second within the workload's SLOs, where that is more than the same instances serve with
    prefill and decode together (DistServe's criterion, goodput); None where no split does (or none has two
    instances). On a tie, fewer prefill instances, then smaller instances."""
    best, best_key = None, None
    for size, s in setups.items():
        instances = devices // size
        together = colocated_goodput(s, workload, instances)
        for prefill in range(1, instances):
            r = rates(s, workload, prefill, instances - prefill, workload.shared_prefix_fraction)
            goodput = r.requests_per_s if _meets(workload, r.ttft_s, r.tpot_s) else 0.0
            key = (round(goodput, 9), -prefill, -size)
            if goodput > together and (best_key is None or key > best_key):
                best, best_key = (size, prefill), key
    return best
