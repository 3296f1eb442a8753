"""Prefill/decode disaggregation in the plan search: where to split the devices into prefill and decode instances.
Its request model (`analytic.disaggregation.rates`: prompts prefilled on some instances and outputs decoded on others,
each prompt's cache sent between them) is `profile --prefill-instances`'s too. It is a trade of capacity for latency
under SLOs, not a throughput technique ("Disaggregated prefill DOES NOT improve throughput", vLLM's
docs/features/disagg_prefill.md), and it is scored as DistServe places its instances: the split that serves the most
requests per second within the workload's SLOs.
"""

from __future__ import annotations

import math

from ..analytic.disaggregation import rates
from ..analytic.memory import max_batch
from ..analytic.requests import cached_tokens, queued, request_figures
from ..analytic.setup import Setup
from ..schema.workload import Workload


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
