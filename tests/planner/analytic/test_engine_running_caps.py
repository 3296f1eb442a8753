"""The running caps TensorRT-LLM and llama-server take by default (profiles/engines/trtllm.yaml and llama.cpp.yaml
`max_running`): the LLM API's max_batch_size of 2,048 and llama-server's 4 automatic slots; and the batch limit
trtllm-bench sets for itself, which the validation set's runs of it are predicted with (benchmarks/trtllm_bench.py)."""

from __future__ import annotations

import pytest
from optiplan.planner.analytic.profile import profile
from optiplan.planner.schema import AdviseRequest, ProfileRequest
from script_loader import load_script


def requests(**kw):
    args = {"model": "llama-3.2-1b", "hardware": "h100-sxm", "input_tokens": 128, "output_tokens": 128,
            "concurrency": "max"} | kw
    return profile(ProfileRequest(**args)).requests


def test_tensorrt_llm_runs_at_most_its_max_batch_size_by_default():
    # a 1B model's short requests fit by the thousand on an H100: the LLM API's max_batch_size is what runs at once
    stock = requests(engine="trtllm")
    assert stock.max_concurrency == 2048 and "at most 2,048 running at once (the engine's default;" in stock.scheduling
    raised = requests(engine="trtllm", max_running=4096)
    assert raised.max_concurrency > 2048 and raised.output_tokens_per_s > stock.output_tokens_per_s


def test_llama_server_decodes_four_slots_unless_told_more():
    stock, wide = (requests(model="llama-3.1-8b", hardware="rtx-4090", engine="llama.cpp", input_tokens=512,
                            output_tokens=256, concurrency=16, max_running=m) for m in (None, 16))
    assert stock.running == 4 and stock.queue_wait_ms > 0 and "(the engine's default;" in stock.scheduling
    assert wide.running == 16 and wide.queue_wait_ms == 0
    assert wide.output_tokens_per_s > 2 * stock.output_tokens_per_s  # batched decode reads the weights once a step


def test_advice_raises_llama_servers_slots_for_its_users():
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.deploy.render import engine_config

    a = advise(AdviseRequest(model="llama-3.1-8b", hardware="rtx-4090", engine="llama.cpp", concurrency=8))
    said = [w for w in a.warnings if "by default" in w]
    assert len(said) == 1 and "llama.cpp takes 4 by default" in said[0] and "--parallel" in said[0], a.warnings
    assert int(engine_config(a, "llama.cpp").options["parallel"]) >= 8


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/trtllm_bench.py")


@pytest.mark.parametrize("requests_held, batch", [(10, 64), (100, 128), (300, 384), (1035, 1280), (9000, 4096)])
def test_trtllm_bench_rounds_the_requests_its_cache_holds_up(bench, requests_held, batch):
    # tuning.py finetune_setting: at least 64, multiples of 32 below 256, of 128 below 1,024, else of 256; 4,096 at most
    assert bench.heuristic_max_batch(requests_held) == batch


def test_trtllm_bench_sizes_tuned_formats_and_keeps_the_default_for_the_others(bench):
    # Llama-3.1-8B FP8 on one H100 at 128/128: hundreds of thousands of 256-token sequences' worth of memory, capped
    assert bench.trtllm_bench_max_batch("llama-3.1-8b", "h100-sxm", "fp8", "fp8", 1, 128, 128) == 4096
    # Llama-3.3-70B FP8 on one H200 at 1000/1000: (141 GiB - 66 GiB) x 0.9 over 0.3 MiB a token x 2,000 tokens
    seventy = bench.trtllm_bench_max_batch("llama-3.1-70b", "h200-sxm", "fp8", "fp8", 1, 1000, 1000)
    assert seventy == 224
    # gpt-oss's MXFP4 is not a format the tool tunes: BuildConfig's 2,048
    assert bench.trtllm_bench_max_batch("gpt-oss-120b", "h200-sxm", "mxfp4", "fp8", 1, 1024, 1024) == 2048


def test_trtllm_bench_points_are_predicted_with_the_tools_cap(monkeypatch):
    published = load_script("benchmarks/published_points.py")
    point = next(p for p in published.published_points() if p["id"] == "trtllm-perfov-llama4-maverick-b200-tp8-128-128")
    with_cap, _ = published.predict(point)
    # the same run at the LLM API's default (2,048): fewer in flight, less throughput than trtllm-bench's 4,096 give
    monkeypatch.setattr(published, "trtllm_bench_max_batch", lambda *args: 2048)
    at_default, _ = published.predict(point)
    assert at_default < 0.9 * with_cap
