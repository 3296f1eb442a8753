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
from ..analytic.setup import Setup
from ..analytic.steps import ALLREDUCE_EFFICIENCY, decode_step, kv_bytes_per_device, prefill_step
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


def rates(s: Setup, workload: Workload, prefill_instances: int, decode_instances: int, cached: int,
          decode_step_s: Callable[[int], float] | None = None, room: int | None = None) -> Rates:
    """Figures of `prefill_instances` + `decode_instances` instances, each the setup `s`, serving the workload's
    concurrency. `decode_step_s(batch)`: the decode step with the plan's speculation (default: a plain step);
    `room`: the sequences a decode instance holds (default: as its memory allows)."""
    i, o, p95 = workload.prompt_tokens_mean, workload.output_tokens_mean, workload.prompt_tokens_p95
    room = max(room if room is not None else max_batch(s, workload.context_needed, p95), 1)
    batch = max(min(math.ceil(workload.concurrency / decode_instances), room), 1)
    step = decode_step_s(batch) if decode_step_s else decode_step(s, batch, workload.mean_context).time_s
    ttft = prefill_step(s, 1, p95, min(cached, p95 - 1)).time_s + kv_transfer_s(s, p95)
    prefill_mean = prefill_step(s, 1, i, min(cached, i - 1)).time_s  # prompts back to back on a prefill instance
    decode_rate = decode_instances * batch / (ttft + (o - 1) * step)  # the sequences in flight, closed loop
    return Rates(ttft_s=ttft, tpot_s=step, requests_per_s=min(decode_rate, prefill_instances / prefill_mean),
                 batch=batch)


def _key(s: Setup, workload: Workload, prefill: int, instances: int) -> tuple[bool, float]:
    """(meets the workload's SLOs, requests per second) of a split."""
    r = rates(s, workload, prefill, instances - prefill, 0)
    slo = workload.slo
    meets = (not slo.ttft_p95_ms or r.ttft_s * 1e3 <= slo.ttft_p95_ms) and \
        (not slo.tpot_p95_ms or r.tpot_s * 1e3 <= slo.tpot_p95_ms)
    return meets, round(r.requests_per_s, 9)


def best_layout(setups: dict[int, Setup], workload: Workload, devices: int) -> tuple[int, int] | None:
    """(devices per instance, prefill instances) among `setups` (devices per instance -> its setup) that serve the
    most requests per second within the workload's SLOs (where no split meets them, the most requests per second);
    on a tie, fewer prefill instances, then smaller instances. None when no size gives two instances."""
    options = [(size, p) for size in setups for p in range(1, devices // size)]
    if not options:
        return None
    return max(options, key=lambda o: (*_key(setups[o[0]], workload, o[1], devices // o[0]), -o[1], -o[0]))
