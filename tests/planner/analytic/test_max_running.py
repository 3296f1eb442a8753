"""`profile --max-running N`: the running cap a deployment sets (vLLM --max-num-seqs, SGLang --max-running-requests)
in place of the engine's default, for the requests it runs at once and the rows vLLM profiles its sampler over."""

from __future__ import annotations

import pytest
from optiplan.planner.analytic.profile import profile
from optiplan.planner.errors import RequestError
from optiplan.planner.schema import ProfileRequest


def requests(**kw):
    args = {"model": "llama-3.1-8b", "hardware": "h100-sxm", "engine": "vllm", "input_tokens": 1000,
            "output_tokens": 500, "concurrency": 512} | kw
    return profile(ProfileRequest(**args))


def test_a_lower_cap_runs_fewer_and_queues_the_rest():
    stock, capped = requests(), requests(max_running=64)
    assert stock.requests.running > 64 and capped.requests.running == 64
    assert capped.requests.queue_wait_ms > stock.requests.queue_wait_ms
    assert capped.requests.itl_ms < stock.requests.itl_ms  # smaller decode batches
    assert capped.requests.output_tokens_per_s < stock.requests.output_tokens_per_s
    assert "at most 64 running at once (--max-running;" in capped.requests.scheduling
    short = requests(input_tokens=100, output_tokens=100, concurrency=2048)  # the default cap binds, not the cache
    assert "at most 1,024 running at once (the engine's default;" in short.requests.scheduling


def test_vllm_profiles_its_sampler_over_the_cap_it_is_given():
    # vLLM sizes its cache after a profiling run whose sampler takes max_num_seqs rows of logits: a cap above the
    # default (1,024 on an H100) leaves less room for the cache, so fewer of these requests fit
    stock, raised = requests(concurrency="max"), requests(concurrency="max", max_running=4096)
    assert stock.requests.running < 1024  # the cache, not the default cap, binds here
    assert raised.requests.running < stock.requests.running


def test_the_cap_counts_per_data_parallel_group():
    one = profile(ProfileRequest(model="deepseek-v3", hardware="h200-sxm", num_devices=8, dtype="fp8",
                                 engine="vllm", input_tokens=1000, output_tokens=100, concurrency=4096,
                                 max_running=16))
    groups = profile(ProfileRequest(model="deepseek-v3", hardware="h200-sxm", num_devices=8, dtype="fp8",
                                    engine="vllm", input_tokens=1000, output_tokens=100, concurrency=4096,
                                    max_running=16, attention_data_parallel=8))
    assert one.requests.running == 16 and groups.requests.running == 128


def test_tgi_takes_it_as_the_in_flight_limit_it_refuses_past():
    stock = requests(engine="tgi", concurrency=200)
    raised = requests(engine="tgi", concurrency=200, max_running=256)
    assert stock.requests.running == 128 and any("beyond 128 in flight by default" in w for w in stock.warnings)
    assert raised.requests.running == 200 and not any("refuses" in w for w in raised.warnings)
    lowered = requests(engine="tgi", concurrency=200, max_running=64)
    assert lowered.requests.running == 64 and any("beyond 64 in flight as set" in w for w in lowered.warnings)


def test_only_a_serving_engine_takes_it():
    with pytest.raises(RequestError, match="--max-running"):
        requests(engine="transformers", max_running=8)
    with pytest.raises(ValueError):
        ProfileRequest(model="llama-3.1-8b", max_running=0)
