"""The request-level section of a profile (`Profile.requests`): one server's requests (`requests.request_profile`),
or a prefill/decode disaggregated deployment's (`disaggregation.disaggregated_profile`)."""

from __future__ import annotations

from dataclasses import replace

from ..catalog.engines import (
    continuous_scheduling,
    engine_first_token_latency_s,
    engine_pages_cache,
    holds_used_cache,
)
from ..errors import RequestError
from ..schema import ProfileRequest, RequestProfile
from .disaggregation import disaggregated_profile
from .requests import request_profile
from .setup import Setup
from .speculation import Speculating


def instance_request(request: ProfileRequest) -> ProfileRequest:
    """The request of one instance of a disaggregated deployment (`prefill_instances`: --tp x --pp devices each), or
    the request itself where it runs as one server."""
    if request.prefill_instances is None:
        return request
    size = (request.tensor_parallel or 1) * request.pipeline_parallel
    instances = request.num_devices // size if request.num_devices % size == 0 else 0
    if request.input_tokens is None:
        raise RequestError("--prefill-instances is for request-level figures: give --input-tokens and --output-tokens")
    if request.at_once or request.num_requests is not None:
        raise RequestError("--prefill-instances is priced in steady state: not as a burst (--at-once) or a run "
                           "(--num-requests)")
    if request.attention_data_parallel > 1 or request.expert_parallel > 1:
        raise RequestError("--prefill-instances splits the devices into instances of --tp x --pp devices; "
                           "--attention-dp and --ep are not modelled within them")
    if instances <= request.prefill_instances:
        raise RequestError(f"--prefill-instances {request.prefill_instances} leaves no decode instance: "
                           f"{request.num_devices} devices make {instances} instance{'' if instances == 1 else 's'} "
                           f"of {size} (--tp x --pp)")
    return request.model_copy(update={"num_devices": size, "tensor_parallel": request.tensor_parallel or 1})


def request_section(request: ProfileRequest, s: Setup, concurrency: int | str,
                    sp: Speculating | None) -> RequestProfile | None:
    """The requests' figures of `request` on the setup `s` (one instance's, where disaggregated), decoding as `sp`
    says; None where the request gives no request lengths."""
    if not request.input_tokens:
        return None
    on_demand = holds_used_cache(request.engine, engine_pages_cache(request.engine))
    if request.prefill_instances:
        decode = request.num_devices // (s.tp * s.pp) - request.prefill_instances
        return disaggregated_profile(s, request.input_tokens, request.output_tokens, concurrency,
                                     request.prefill_instances, decode, request.cached_tokens, sp, on_demand,
                                     request.ttft_slo_ms, request.itl_slo_ms)
    # in the engine's own process no HTTP server paces the requests or delays their first token (a runtime may still
    # spend its own time on each call)
    in_process = replace(s, request_host_s=0.0, first_token_latency_s=engine_first_token_latency_s(
        request.engine, s.tp * s.pp * s.attention_dp, in_process=True)) if request.in_process else s
    return request_profile(in_process,
                           request.input_tokens, request.output_tokens, concurrency,
                           continuous=(request.scheduling == "continuous" if request.scheduling
                                       else continuous_scheduling(request.engine)),
                           on_demand=on_demand, ttft_slo_ms=request.ttft_slo_ms, itl_slo_ms=request.itl_slo_ms,
                           at_once=request.at_once, num_requests=request.num_requests,
                           length_spread=request.length_spread, prompt_spread=request.prompt_spread,
                           warm_requests=request.warm_requests, cached_tokens=request.cached_tokens, speculation=sp)
