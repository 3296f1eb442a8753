"""A burst of requests sent at once, once (`profile --concurrency N --at-once`, as an offline benchmark sends them):
the figures are means over the burst, and they follow from the steady state it passes through."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from optiplan.planner.analytic.profile import profile
from optiplan.planner.catalog.engines import (
    engine_mixes_prefill,
    engine_request_admit_share,
    engine_request_host_s,
    engine_table,
)
from optiplan.planner.cli.main import main
from optiplan.planner.errors import RequestError
from optiplan.planner.schema import ProfileRequest

HOST_S, ADMIT = engine_request_host_s("vllm"), engine_request_admit_share("vllm")  # vLLM's API server


def requests(engine: str = "vllm", **kw):
    base = {"model": "llama-3.1-8b", "hardware": "h100-sxm", "engine": engine, "input_tokens": 2048,
            "output_tokens": 128, "context": 4096}
    return profile(ProfileRequest(**{**base, **kw})).requests


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm", "lmdeploy", "transformers"])
def test_a_lone_request_is_the_same_at_once_or_in_steady_state(engine):
    kw = {"attention": "sdpa"} if engine == "transformers" else {}
    at_once, steady = requests(engine, concurrency=1, at_once=True, **kw), requests(engine, concurrency=1, **kw)
    # alone: its prefill (TurboMind's first token from the decode step after it), then plain decode steps; vLLM's
    # and SGLang's front ends take it in (a share of their host time) and start its stream (the rest)
    turn = engine_request_host_s(engine) * 1e3
    assert at_once.ttft_ms == pytest.approx(steady.ttft_ms + turn, rel=1e-3)
    assert at_once.queue_wait_ms == pytest.approx(engine_request_admit_share(engine) * turn)
    assert at_once.itl_ms == pytest.approx(steady.itl_ms)
    assert at_once.duration_ms == pytest.approx(at_once.request_latency_ms)
    assert at_once.running == 1


def test_a_burst_waits_for_earlier_prompts():
    small, large = requests(concurrency=8, at_once=True), requests(concurrency=64, at_once=True)
    # the k-th prompt's first token comes after k prompts' prefill: the mean grows with the burst
    assert large.ttft_ms > 4 * small.ttft_ms
    for r in (small, large):
        assert r.at_once and r.output_tokens_per_s == pytest.approx(r.concurrency * r.output_tokens / (r.duration_ms / 1e3))
        assert r.duration_ms > r.request_latency_ms  # the last request ends after the mean one
        # while prompts wait, every step carries prompt tokens: a token takes longer than in a plain decode step
        assert r.itl_ms > requests(concurrency=r.concurrency, input_tokens=1, output_tokens=128).itl_ms


def test_a_burst_beyond_what_runs_waits_for_slots():
    r = requests(concurrency=4000, at_once=True, input_tokens=1024, output_tokens=1024)
    assert r.running < 4000 and r.fits  # the others wait: that is what a burst does, not a failure to fit
    steady = requests(concurrency=r.running, input_tokens=1024, output_tokens=1024)
    # served `running` at a time, its rate comes close to the steady state's at that concurrency
    assert r.output_tokens_per_s == pytest.approx(steady.output_tokens_per_s, rel=0.1)
    # half the burst waits for about half of it: the mean TTFT is near half its length
    assert 0.3 < r.ttft_ms / r.duration_ms < 0.6


def test_an_engine_that_does_not_chunk_takes_whole_prompts_up_to_its_step_budget():
    # TensorRT-LLM's max_num_tokens (8192): four 2,048-token prompts a step, not the whole burst's in one pass
    r = requests("trtllm", concurrency=64, at_once=True)
    four = profile(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="trtllm", batch=4,
                                  prompt_tokens=2048, context=4096)).latency.ttft_ms
    # the k-th four come out of the k-th pass (each also decoding the earlier ones): a mean of 8.5 passes and more
    assert 8.5 * four <= r.ttft_ms <= 10 * four
    assert requests("trtllm", concurrency=64, at_once=True, input_tokens=16000, context=16384).running >= 1


def test_one_output_token_and_prompts_longer_than_the_budget():
    r = requests(concurrency=16, at_once=True, output_tokens=1)
    assert r.itl_ms == 0 and r.request_latency_ms == pytest.approx(r.ttft_ms)
    long = requests(concurrency=4, at_once=True, input_tokens=20000, context=20480)  # chunks of 8,192 over steps
    assert long.ttft_ms > 2.5 * requests(concurrency=1, input_tokens=20000, context=20480).ttft_ms


def test_static_batches_run_a_burst_in_waves_let_in_by_the_front_end():
    wave = requests("transformers", concurrency=8, attention="sdpa")
    r = requests("transformers", concurrency=24, at_once=True, attention="sdpa", batch=8)
    assert r.running == min(24, r.max_concurrency)
    if r.max_concurrency == 8:
        assert r.duration_ms == pytest.approx(3 * wave.request_latency_ms)
    # a static wave of 1,000 tiny requests cannot start before vLLM's front end has taken the last of them in
    paced = requests(concurrency=1000, at_once=True, input_tokens=128, output_tokens=4, scheduling="static")
    assert paced.ttft_ms >= 1000 * HOST_S * 1e3 * ADMIT
    assert "front end" in paced.scheduling


def test_a_burst_is_followed_in_time_that_does_not_grow_with_every_token():
    import time

    start = time.perf_counter()
    r = requests(concurrency=20000, at_once=True, input_tokens=128, output_tokens=4096, context=8192)
    assert time.perf_counter() - start < 10  # 82 million tokens, priced a run of identical steps at a time
    assert r.duration_ms > r.request_latency_ms
    with pytest.raises(RequestError, match="at most 100,000"):
        # as many as the cache holds, past the LLM API's default cap of 2,048 (a deployment's own --max_batch_size)
        requests("trtllm", concurrency="max", at_once=True, model="qwen2.5-0.5b", hardware="h200-sxm",
                 input_tokens=1, output_tokens=1, context=16, max_running=10**6)


def test_slos_count_the_requests_of_the_burst_that_meet_them():
    r = requests(concurrency=64, at_once=True)
    slo = requests(concurrency=64, at_once=True, ttft_slo_ms=r.ttft_ms)  # about half come in under the mean
    assert not slo.meets_slo
    assert 0 < slo.goodput_requests_per_s < slo.requests_per_s
    everyone = requests(concurrency=64, at_once=True, ttft_slo_ms=r.duration_ms)
    assert everyone.meets_slo and everyone.goodput_requests_per_s == pytest.approx(everyone.requests_per_s)
    # each request's own inter-token latency: those that decode after the last prompt is in meet a tight one
    tight = requests(concurrency=64, at_once=True, itl_slo_ms=r.itl_ms)
    assert 0 < tight.goodput_requests_per_s < tight.requests_per_s


def test_a_front_end_that_takes_requests_in_turn_bounds_a_burst_of_short_ones():
    # vLLM's API server: some 20 ms of host time per request, one after another
    assert 0.5 <= ADMIT < 1
    r = requests(concurrency=1000, at_once=True, input_tokens=128, output_tokens=4)
    assert r.duration_ms / 1e3 >= 1000 * HOST_S * 0.99
    assert "front end" in r.scheduling and r.running < 10  # each is done before the next comes in
    # it takes the whole burst in before it streams a token back (GPUStack's vLLM 0.11 bursts: mean TTFTs of
    # 0.63-0.91 of the burst's length), then starts the streams in turn: a mean TTFT past half the burst
    assert r.ttft_ms / r.duration_ms == pytest.approx(ADMIT + (1 - ADMIT) / 2, rel=0.01)
    assert r.queue_wait_ms == pytest.approx(1000 * HOST_S * 1e3 * ADMIT / 2, rel=0.01)  # taken in evenly
    # its streams keep the device's pace: the inter-token latency is the device's, not squeezed by the late start
    assert r.itl_ms < 50


def test_the_cli_reports_the_burst_and_refuses_it_without_requests():
    out = CliRunner().invoke(main, ["profile", "llama-3.1-8b", "--engine", "vllm", "--input-tokens", "512",
                                    "--output-tokens", "64", "--concurrency", "32", "--at-once"])
    assert out.exit_code == 0, out.output
    assert "sent at once" in out.output and "the burst ends after" in out.output
    out = CliRunner().invoke(main, ["profile", "llama-3.1-8b", "--engine", "vllm", "--input-tokens", "512",
                                    "--output-tokens", "64", "--concurrency", "32", "--at-once", "--slo-ttft-ms", "500"])
    assert out.exit_code == 0 and "in steady state" in " ".join(out.output.split())  # the table wraps its lines
    with pytest.raises(RequestError, match="--at-once"):
        profile(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", at_once=True))


def test_an_engine_that_runs_prompts_first_gives_them_steps_of_their_own(monkeypatch):
    from optiplan.planner.analytic.profile import setup_for_request
    from optiplan.planner.analytic.steps import decode_step, mixed_step
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model

    assert not engine_mixes_prefill("sglang") and engine_mixes_prefill("vllm") and engine_mixes_prefill("trtllm")
    # its data-parallel ranks decode beside the prefills, unless it speculates (then a rank never mixes them)
    assert engine_mixes_prefill("sglang", attention_dp=8) and not engine_mixes_prefill("sglang", 8, "eagle3")
    # the device's schedule alone: no front end, no server latency before the first token
    monkeypatch.setitem(engine_table()["sglang"], "request_host_s", None)
    monkeypatch.setitem(engine_table()["sglang"], "first_token_latency_s", None)
    monkeypatch.setitem(engine_table()["sglang"], "eager_prefill", None)  # no host time of its prompt steps
    first = requests("sglang", concurrency=64, at_once=True)
    # the 64 prompts of 2,048 tokens go in back to back, four to a step of its 8,192-token budget, no decoding beside
    # them; then the 64 sequences decode their 127 tokens together in plain steps
    request = ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="sglang", input_tokens=2048,
                             output_tokens=128, context=4096)
    s = setup_for_request(request, resolve_model("llama-3.1-8b"), resolve_hardware("h100-sxm"))
    held = 2048 + 64  # the mean cache of a decoding sequence over its life
    prompt_step, decode = mixed_step(s, 0, held, 8192, 2048).time_s, decode_step(s, 64, held).time_s
    assert first.duration_ms / 1e3 == pytest.approx(16 * prompt_step + 127 * decode, rel=1e-9)
    assert first.ttft_ms / 1e3 == pytest.approx(8.5 * prompt_step, rel=1e-9)  # the k-th four after k prompt steps
    # each first token waits for the rest of the prompts before its second: (16 - k) prompt steps, 7.5 on average
    assert first.itl_ms / 1e3 == pytest.approx((7.5 * prompt_step + 127 * decode) / 127, rel=1e-9)
    monkeypatch.setitem(engine_table()["sglang"], "mixed_prefill", True)
    mixed = requests("sglang", concurrency=64, at_once=True)
    # mixed, the first prompts' tokens come out beside the later prompts' chunks: the burst is the same work, each
    # prompt step of their own reading the weights once more
    assert first.ttft_ms < mixed.ttft_ms and first.duration_ms == pytest.approx(mixed.duration_ms, rel=0.02)
