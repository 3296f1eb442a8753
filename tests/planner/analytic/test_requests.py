"""Request-level predictions (`profile --input-tokens I --output-tokens O --concurrency C|max`): prefill included,
the engine's scheduling, SLO goodput; the identities between the figures, and the direction of every effect."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from optiplan.planner.analytic.profile import profile
from optiplan.planner.catalog.engines import engine_first_token_latency_s
from optiplan.planner.cli.main import main
from optiplan.planner.errors import RequestError
from optiplan.planner.schema import ProfileRequest


def requests(engine: str = "vllm", **kw):
    base = {"model": "llama-3.1-8b", "hardware": "h100-sxm", "engine": engine, "input_tokens": 1024,
            "output_tokens": 256, "context": 2048}
    return profile(ProfileRequest(**{**base, **kw}))


@pytest.mark.parametrize("engine", ["vllm", "sglang", "transformers"])
def test_figures_agree_with_each_other(engine):
    for c in (1, 8, 64):
        r = requests(engine, concurrency=c).requests
        assert r.request_latency_ms == pytest.approx(r.ttft_ms + (r.output_tokens - 1) * r.itl_ms)
        assert r.requests_per_s == pytest.approx(c / (r.request_latency_ms / 1e3))
        assert r.output_tokens_per_s == pytest.approx(r.requests_per_s * r.output_tokens)
        assert r.concurrency == c and r.fits


def test_alone_a_request_sees_its_prefill_and_the_decode_steps():
    # over HTTP its first token comes the server's latency later than the device's step view has it; in the engine's
    # own process it does not
    p = requests(concurrency=1, prompt_tokens=1024, context=1024 + 128)  # the step view at the mean context
    latency_ms = engine_first_token_latency_s("vllm") * 1e3
    assert latency_ms > 0 and p.requests.ttft_ms == pytest.approx(p.latency.ttft_ms + latency_ms)
    assert p.requests.itl_ms == pytest.approx(p.latency.tpot_ms)
    own = requests(concurrency=1, prompt_tokens=1024, context=1024 + 128, in_process=True).requests
    assert own.ttft_ms == pytest.approx(p.latency.ttft_ms)
    assert own.request_latency_ms == pytest.approx(p.requests.request_latency_ms - latency_ms)
    # transformers `generate` has no server: nothing added
    t = requests("transformers", concurrency=1, prompt_tokens=1024, context=1024 + 128)
    assert t.requests.ttft_ms == pytest.approx(t.latency.ttft_ms)


def test_an_old_runtime_spends_its_own_time_on_a_call_in_process():
    # TensorRT-LLM's v0.5-v0.6 C++ runtime: a batch-1 call's first token comes its fitted per-call cost after the
    # device's work even in the caller's process; later releases state none, and over HTTP the server's latency counts
    kw = {"hardware": "h100-sxm", "input_tokens": 128, "output_tokens": 1, "context": None, "concurrency": 1,
          "in_process": True}
    old, new = (requests(engine, **kw).requests for engine in ("trtllm==0.5", "trtllm"))
    call_ms = engine_first_token_latency_s("trtllm==0.5", in_process=True) * 1e3
    assert call_ms > 0 and engine_first_token_latency_s("trtllm", in_process=True) == 0
    assert old.ttft_ms == pytest.approx(new.ttft_ms + call_ms)
    served = requests("trtllm==0.5", **{**kw, "in_process": False}).requests
    assert served.ttft_ms == pytest.approx(new.ttft_ms + engine_first_token_latency_s("trtllm==0.5") * 1e3)


def test_the_server_latency_holds_a_clients_slot_not_the_devices():
    # a client waits the latency on top of its request's cycle; where the device is the bound (more requests than it
    # runs at once), the queue absorbs it and the rate stays the device's
    kw = {"hardware": "l4", "input_tokens": 2048, "output_tokens": 512, "context": None}
    full = requests(concurrency="max", **kw).requests
    over = requests(concurrency=4 * full.concurrency, **kw).requests
    own = requests(concurrency=4 * full.concurrency, in_process=True, **kw).requests
    assert over.output_tokens_per_s == pytest.approx(own.output_tokens_per_s, rel=1e-6)
    one, one_own = (requests(concurrency=1, in_process=flag, **kw).requests for flag in (False, True))
    latency_s = engine_first_token_latency_s("vllm")
    assert one.request_latency_ms == pytest.approx(one_own.request_latency_ms + latency_s * 1e3)
    assert one.output_tokens_per_s < one_own.output_tokens_per_s


def test_without_a_context_the_step_view_is_the_requests_own():
    # the memory, the limits and the step view describe the requests the report is about, not a 4,096-token default
    p = requests(concurrency=1, context=None)
    assert p.request.context == 1024 + 256 and p.request.prompt_tokens == 1024
    assert p.latency.prefill_tokens == 1024
    assert p.latency.ttft_ms == pytest.approx(p.requests.ttft_ms - engine_first_token_latency_s("vllm") * 1e3)
    assert p.memory.kv_cache_bytes == requests(concurrency=1, context=1280).memory.kv_cache_bytes
    assert requests(concurrency=1, context=None, prompt_tokens=512).latency.prefill_tokens == 512  # as given
    assert requests(concurrency=1).latency.prefill_tokens == 1024  # a stated context keeps the requests' prompt
    assert requests(concurrency=1, context=512).latency.prefill_tokens == 512  # ... as far as it fits
    assert profile(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm")).request.context == 4096


def test_the_step_rate_is_not_a_serving_throughput():
    # long prompts, short outputs: the prompts' prefill takes most of the device; the decode-step rate leaves it out
    p = requests(input_tokens=7936, output_tokens=128, context=8064, batch=64, concurrency=64)
    assert p.requests.output_tokens_per_s < 0.5 * p.throughput.tokens_per_s


def test_more_concurrency_more_throughput_slower_tokens():
    rs = [requests(concurrency=c).requests for c in (1, 4, 16, 64, 256)]
    assert all(a.output_tokens_per_s < b.output_tokens_per_s for a, b in zip(rs, rs[1:]))
    assert all(a.itl_ms <= b.itl_ms + 1e-9 for a, b in zip(rs, rs[1:]))


def test_static_batches_lose_to_continuous_batching_under_load():
    static = requests("transformers", concurrency=32, attention="sdpa").requests
    continuous = requests("vllm", concurrency=32).requests
    assert "static" in static.scheduling and "chunks" in continuous.scheduling
    assert static.output_tokens_per_s < continuous.output_tokens_per_s


def test_max_concurrency_is_as_many_as_fit():
    r = requests(concurrency="max").requests
    assert r.concurrency == r.max_concurrency > 64 and r.fits
    assert not requests(concurrency=r.max_concurrency + 1).requests.fits
    over = requests(concurrency=2 * r.max_concurrency, ttft_slo_ms=r.ttft_ms * 2).requests
    assert not over.fits and not over.meets_slo  # half of them wait a whole cycle for a slot


@pytest.mark.parametrize("engine", ["vllm", "transformers"])
def test_requests_beyond_what_fits_wait_for_a_slot(engine):
    # in the engine's own process (over HTTP each client also waits the server's latency outside the device:
    # `test_the_server_latency_holds_a_clients_slot_not_the_devices`)
    kw = {"input_tokens": 4096, "output_tokens": 1024, "context": 5120, "attention": "sdpa", "in_process": True}
    full = requests(engine, concurrency="max", **kw).requests
    twice = requests(engine, concurrency=2 * full.max_concurrency, **kw).requests
    assert full.running == full.concurrency and full.queue_wait_ms == 0
    assert twice.running == full.max_concurrency and not twice.fits
    # the device serves as many as fit, at their rate; the others wait a whole cycle of theirs (Little's law)
    assert twice.output_tokens_per_s == pytest.approx(full.output_tokens_per_s)
    assert twice.queue_wait_ms == pytest.approx(full.request_latency_ms)
    assert twice.ttft_ms == pytest.approx(full.ttft_ms + twice.queue_wait_ms)
    assert twice.itl_ms == pytest.approx(full.itl_ms)
    assert twice.request_latency_ms == pytest.approx(2 * full.request_latency_ms)


def test_scheduling_can_be_set_apart_from_the_engine():
    static = requests("vllm", concurrency=32, scheduling="static").requests
    assert "static" in static.scheduling
    assert static.output_tokens_per_s < requests("vllm", concurrency=32).requests.output_tokens_per_s


def test_attention_data_parallel_with_experts_split_holds_more_sequences():
    base = {"model": "deepseek-v3", "hardware": "h200-sxm", "num_devices": 8, "dtype": "fp8", "engine": "sglang",
            "input_tokens": 1024, "output_tokens": 1024, "context": 2048, "concurrency": "max"}
    tp = profile(ProfileRequest(**base)).requests
    dp = profile(ProfileRequest(**base, attention_data_parallel=8, expert_parallel=8)).requests
    assert dp.max_concurrency > 4 * tp.max_concurrency  # each device holds its own sequences' latent cache


def test_attention_data_parallel_beside_tensor_parallel_experts():
    """SGLang's `--tp 8 --enable-dp-attention` without expert parallelism: each device attends its own sequences and
    slices every expert, gathering all groups' tokens at each MoE layer; its step budget is divided over the groups, so
    a long prompt's chunks spread over them (GPUStack's DeepSeek-R1 32K burst on 8 H200: 1.04x of the measured
    throughput, 6x slow when one group took a whole chunk)."""
    from optiplan.planner.analytic.profile import setup_for_request
    from optiplan.planner.analytic.steps import allreduce_s, decode_step, mixed_step
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model

    base = {"model": "deepseek-v3", "hardware": "h200-sxm", "num_devices": 8, "dtype": "fp8", "engine": "sglang",
            "context": 4096}
    spec, hw = resolve_model("deepseek-v3"), resolve_hardware("h200-sxm")
    tp_experts = setup_for_request(ProfileRequest(**base, attention_data_parallel=8), spec, hw)
    ep = setup_for_request(ProfileRequest(**base, attention_data_parallel=8, expert_parallel=8), spec, hw)
    assert tp_experts.ep == 1 and tp_experts.tp == 1 and tp_experts.shards == 8
    # the same expert bytes per device as expert parallel, but every token's hidden state gathered and scattered
    assert tp_experts.stage_weights == pytest.approx(ep.stage_weights)
    message = 512 * spec.hidden_size * tp_experts.act_bytes  # every token's hidden state, onto every device
    layers = tp_experts.counts.num_moe_layers
    comm = decode_step(tp_experts, 512, 2048).comm_s  # 64 sequences a group
    assert comm == pytest.approx(allreduce_s(tp_experts, message, 8) * layers)
    assert 0.5 < comm / decode_step(ep, 512, 2048).comm_s < 2  # about the top-8 dispatch and combine's bytes
    # a chunk of a 32K prompt per group: the busiest group carries an eighth of the step's prompt tokens
    budget = tp_experts.prefill_chunk_tokens
    step = mixed_step(tp_experts, 0, 1, budget, 32000).time_s
    lone = mixed_step(tp_experts, 0, 1, budget / 8, 32000).time_s  # one group's share alone
    assert step < 2 * lone
    # a lone prompt sits on one group, chunk after chunk, at once or in steady state alike (its front end's turn aside)
    for engine, kw in (("sglang", {}), ("vllm", {"expert_parallel": 8})):
        lone = {**base, "engine": engine, "attention_data_parallel": 8, "input_tokens": 32000, "output_tokens": 2,
                "context": 32768, "concurrency": 1, **kw}
        steady, burst = profile(ProfileRequest(**lone)).requests, profile(ProfileRequest(**lone, at_once=True)).requests
        assert burst.ttft_ms == pytest.approx(steady.ttft_ms, rel=0.05), engine
    assert "chunks of 1,024 tokens per data-parallel attention group (8,192 a step)" in profile(ProfileRequest(
        **base, attention_data_parallel=8, input_tokens=2000, output_tokens=100, concurrency=64)).requests.scheduling
    with pytest.raises(RequestError, match="span more than the 8 devices of one"):
        profile(ProfileRequest(**{**base, "num_devices": 16}, attention_data_parallel=16))


def test_vllms_data_parallel_ranks_each_schedule_their_own_budget():
    """vLLM runs each data-parallel rank as an engine core with its own step budget: eight ranks take eight budgets a
    step. SGLang divides its one budget over its groups."""
    from optiplan.planner.analytic.profile import setup_for_request
    from optiplan.planner.catalog.engines import engine_budget_per_group
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model

    assert engine_budget_per_group("vllm") and not engine_budget_per_group("sglang")
    spec, hw = resolve_model("deepseek-v3"), resolve_hardware("h200-sxm")

    def setup(engine, **kw):
        return setup_for_request(ProfileRequest(model="deepseek-v3", hardware="h200-sxm", num_devices=8, dtype="fp8",
                                                engine=engine, context=4096, **kw), spec, hw)
    for engine, groups in (("vllm", 8), ("sglang", 1)):
        one = setup(engine).prefill_chunk_tokens
        assert setup(engine, attention_data_parallel=8, expert_parallel=8).prefill_chunk_tokens == groups * one
    assert setup("vllm", attention_data_parallel=8, prefill_chunk_tokens=4096).prefill_chunk_tokens == 8 * 4096


@pytest.mark.parametrize(("kw", "message"), [
    ({"model": "llama-3.1-8b", "num_devices": 2, "expert_parallel": 2}, "has no experts"),
    ({"model": "llama-3.1-70b", "num_devices": 8, "attention_data_parallel": 8}, "attention data parallel serves"),
    ({"model": "deepseek-v3", "num_devices": 8, "expert_parallel": 4}, "splits a MoE model's experts whole"),
    ({"model": "deepseek-v3", "num_devices": 8, "tensor_parallel": 8, "attention_data_parallel": 2,
      "expert_parallel": 16}, "must equal the device count"),
])
def test_parallel_layouts_that_cannot_run_are_refused(kw, message):
    with pytest.raises(RequestError, match=message):
        profile(ProfileRequest(hardware="h200-sxm", dtype="fp8", **kw))


def test_goodput_counts_requests_within_the_slos():
    loose = requests(concurrency=16, ttft_slo_ms=10_000, itl_slo_ms=1_000).requests
    assert loose.meets_slo and loose.goodput_requests_per_s == pytest.approx(loose.requests_per_s)
    tight_itl = requests(concurrency=16).requests.itl_ms * 0.9
    tight = requests(concurrency=16, itl_slo_ms=tight_itl).requests
    assert not tight.meets_slo and tight.goodput_requests_per_s == 0
    c = tight.slo_concurrency
    assert 1 <= c < 16
    assert requests(concurrency=c).requests.itl_ms <= tight_itl < requests(concurrency=c + 1).requests.itl_ms
    assert tight.slo_goodput_requests_per_s == pytest.approx(requests(concurrency=c).requests.requests_per_s)
    impossible = requests(concurrency=4, ttft_slo_ms=0.001).requests
    assert impossible.slo_concurrency == 0 and impossible.slo_goodput_requests_per_s == 0


def test_the_slo_concurrency_is_held_to_the_front_ends_rate():
    # vLLM's front end takes 24 ms of host time a request: no concurrency serves more than ~42 requests a second, and
    # the queue it builds counts in the TTFT the SLO is checked against
    kw = {"hardware": "b200", "dtype": "fp8", "input_tokens": 512, "output_tokens": 256, "context": None,
          "ttft_slo_ms": 500, "itl_slo_ms": 50}
    r = requests(concurrency=128, **kw).requests
    assert not r.meets_slo and 1 <= r.slo_concurrency < 128
    assert r.slo_goodput_requests_per_s <= 1 / 0.024 * 1.0001
    at = requests(concurrency=r.slo_concurrency, **kw).requests
    assert at.meets_slo and at.ttft_ms <= 500
    assert not requests(concurrency=r.slo_concurrency + 1, **kw).requests.meets_slo


def test_api_servers_share_the_front_ends_host_time():
    """vLLM's --api-server-count: N front-end processes take the requests, so a load its one server bounds (~42
    requests a second at 24 ms each) completes up to N times as many, until the device bounds it; an engine without
    the option refuses it."""
    kw = {"input_tokens": 128, "output_tokens": 4, "concurrency": 1000, "context": None}
    one = requests(**kw).requests
    assert "bound by the engine's front end" in one.scheduling
    assert one.requests_per_s == pytest.approx(1 / 0.024, rel=0.01)
    two = requests(api_servers=2, **kw).requests
    assert two.requests_per_s == pytest.approx(2 * one.requests_per_s, rel=0.01)
    eight = requests(api_servers=8, **kw).requests  # the device's bound comes first
    assert 2 * one.requests_per_s < eight.requests_per_s < 8 * one.requests_per_s
    assert "bound by the engine's front end" not in eight.scheduling
    with pytest.raises(RequestError, match="api-server-count"):
        requests("sglang", api_servers=2, **kw)


def test_vllm_starts_a_front_end_per_data_parallel_rank_from_0_15():
    """vLLM 0.15 and later start --api-server-count = --data-parallel-size front ends where the deployment sets none
    (serve.py: "args.api_server_count = args.data_parallel_size"); the releases before start one; a set count wins."""
    from optiplan.planner.analytic.profile import setup_for_request
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model

    def servers(engine, **kw):
        request = ProfileRequest(model="gpt-oss-120b", hardware="h100-sxm", num_devices=4, attention_data_parallel=4,
                                 expert_parallel=4, engine=engine, **kw)
        s = setup_for_request(request, resolve_model("gpt-oss-120b"), resolve_hardware("h100-sxm"))
        return s.api_servers, s.request_host_s

    (old, old_host), (new, new_host) = servers("vllm==0.11.0"), servers("vllm==0.19.0")
    assert (old, new) == (1, 4) and new_host == pytest.approx(old_host / 4)
    assert servers("vllm==0.19.0", api_servers=1) == (1, old_host)


def test_sglang_sizes_its_request_pool_from_a_set_running_cap():
    """SGLang runs at most its request pool (the cache's tokens per context length x 512, 2,048 to 4,096) unless
    --max-running-requests is set, which sizes the pool itself (model_runner.py: "if max_num_reqs is None")."""
    kw = {"model": "llama-3.2-1b", "hardware": "h200-sxm", "input_tokens": 128, "output_tokens": 128,
          "concurrency": 6000, "context": None}
    pooled = requests("sglang", **kw).requests
    assert pooled.running == 4096 and "the engine's default" in pooled.scheduling
    capped = requests("sglang", max_running=6000, **kw).requests
    assert capped.running == 6000 and "--max-running" in capped.scheduling


@settings(max_examples=25, deadline=None)
@given(i=st.integers(1, 4000), o=st.integers(1, 2000), c=st.integers(1, 300))
def test_any_request_shape_gives_finite_positive_figures(i, o, c):
    r = requests(input_tokens=i, output_tokens=o, concurrency=c).requests
    assert r.ttft_ms > 0 and r.itl_ms >= 0 and r.output_tokens_per_s > 0
    assert r.request_latency_ms >= r.ttft_ms


@pytest.mark.parametrize("kw, message", [
    ({"input_tokens": 128, "output_tokens": None}, "both --input-tokens and --output-tokens"),
    ({"input_tokens": None, "output_tokens": None, "concurrency": 4}, "--concurrency is for request-level"),
    ({"input_tokens": 200_000, "output_tokens": 200}, "exceed llama-3.1-8b's maximum"),
    ({"concurrency": 0}, "concurrency must be at least 1"),
    # the lengths are refused as given, not through the context they would set
    ({"input_tokens": 0, "output_tokens": 10, "context": None}, "input tokens must be at least 1"),
    ({"input_tokens": -20, "output_tokens": 10, "context": None}, "input tokens must be at least 1"),
    ({"input_tokens": 100, "output_tokens": 0}, "output tokens must be at least 1"),
])
def test_bad_requests_say_what_is_wrong(kw, message):
    with pytest.raises(RequestError, match=message):
        requests(**kw)


@pytest.mark.parametrize("option", ["--slo-ttft-ms", "--slo-itl-ms"])
def test_an_slo_is_a_positive_time(option):
    out = CliRunner().invoke(main, ["profile", "llama-3.1-8b", "--input-tokens", "100", "--output-tokens", "10",
                                    option, "-5"])
    assert out.exit_code == 2 and f"Invalid value for '{option}': -5.0 is not in the range x>0" in out.output


def test_cli_prints_the_requests_section():
    out = CliRunner().invoke(main, ["profile", "llama-3.1-8b", "-H", "l4", "--context", "2048", "--input-tokens",
                                    "512", "--output-tokens", "128", "--concurrency", "max", "--slo-itl-ms", "50",
                                    "--json"])
    assert out.exit_code == 0, out.output
    r = json.loads(out.output)["requests"]
    assert r["concurrency"] == r["max_concurrency"] and r["itl_slo_ms"] == 50
    text = CliRunner().invoke(main, ["profile", "llama-3.1-8b", "-H", "l4", "--context", "2048", "--input-tokens",
                                     "512", "--output-tokens", "128", "--concurrency", "8"])
    assert text.exit_code == 0 and "Requests" in text.output and "output tokens/s" in text.output
    bad = CliRunner().invoke(main, ["profile", "llama-3.1-8b", "--input-tokens", "5", "--output-tokens", "5",
                                    "--concurrency", "lots"])
    assert bad.exit_code == 2 and "neither a number nor 'max'" in bad.output


def test_prompt_chunks_slow_the_steps_that_carry_them():
    """NVIDIA NIM 1.8 (Llama-3.3-70B FP8 on 2 H100, 5,000 tokens in, 500 out): alone a token every 18.6 ms, at 25
    users every 38.8 ms. The 25 prompts arrive as whole chunks of the step budget, each step carrying one
    compute-bound; spread thinly over every step they hid under the weight reads and the inter-token latency
    stayed near the plain decode step's."""
    from optiplan.planner.analytic.profile import setup_for_request
    from optiplan.planner.analytic.requests import request_figures
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model

    kw = dict(model="llama-3.1-70b", num_devices=2, dtype="fp8", engine="serving", input_tokens=5000,
              output_tokens=500)
    alone, loaded = requests(concurrency=1, **kw).requests, requests(concurrency=25, **kw).requests
    s = setup_for_request(ProfileRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=2, dtype="fp8",
                                         engine="serving"), resolve_model("llama-3.1-70b"), resolve_hardware("h100-sxm"))
    plain = request_figures(s, 5000, 500, 25, continuous=True)["decode_s"] * 1e3  # the step at 25, no prompt in it
    assert loaded.itl_ms > 1.3 * plain
    assert loaded.itl_ms / alone.itl_ms == pytest.approx(38.75 / 18.58, rel=0.2)


def test_short_prompts_ride_a_step_each():
    """Requests arrive one by one, so a prompt shorter than the step budget takes a step of its own size: the budget
    fills only where the cycle's prompts need more than a chunk per step. 64 users of 128-token prompts on a
    2048-token budget (the generic serving engine, at the device's compute rate): about one prompt per step, not a
    full chunk every 16 steps."""
    from optiplan.planner.analytic.profile import setup_for_request
    from optiplan.planner.analytic.requests import request_figures
    from optiplan.planner.analytic.steps import decode_step
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model

    s = setup_for_request(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="serving"),
                          resolve_model("llama-3.1-8b"), resolve_hardware("h100-sxm"))
    assert s.prefill_chunk_tokens == 2048
    f = request_figures(s, 128, 256, 64, continuous=True)
    decode = decode_step(s, 64, 128 + 128)
    # 128 prompt rows beside 64 decode rows stay under the weights' read (a whole 8192-token chunk would not): the
    # cycle is the decode steps'
    assert f["cycle_s"] - f["ttft_s"] == pytest.approx(255 * decode.time_s, rel=0.02)


def test_a_compute_bound_step_takes_all_of_a_chunks_compute():
    """1,024 short requests at once (64 tokens in, 64 out): the decode steps are compute-bound, so the prompts'
    compute adds to the cycle in full, once (it was counted twice: the step's own excess over its bytes again), and
    so does their activations' traffic (the elementwise kernels run over every token of the step)."""
    from optiplan.planner.analytic.profile import setup_for_request
    from optiplan.planner.analytic.requests import request_figures
    from optiplan.planner.analytic.steps import activation_traffic_bytes, decode_step, prefill_step
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model

    request = ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="vllm")
    s = setup_for_request(request, resolve_model("llama-3.1-8b"), resolve_hardware("h100-sxm"))
    c, i, o = 1024, 64, 64
    decode = decode_step(s, c, i + o // 2)
    assert decode.compute_s > decode.memory_s
    prefill = prefill_step(s, 1, i)
    prompts = c * i * (prefill.compute_s + prefill.comm_s) / i
    stream = s.hw.memory_bandwidth_bytes_per_s * (s.eff.activation_bandwidth_efficiency or s.eff.bandwidth_efficiency)
    activations = activation_traffic_bytes(s, c * i) / stream
    with_prompts = request_figures(s, i, o, c, continuous=True)["cycle_s"]
    assert with_prompts - (o - 1) * decode.time_s == pytest.approx(prompts + activations, rel=0.02)


def test_one_token_out_still_waits_for_the_other_prompts():
    """With a single output token a request is its prompt: C of them share the device's prefill, so requests/s levels
    off at its prefill rate instead of growing with C."""
    # in the engine's own process: over HTTP each client also waits the server's first-token latency
    few, many = (requests(concurrency=c, output_tokens=1, in_process=True).requests for c in (8, 64))
    assert many.requests_per_s == pytest.approx(few.requests_per_s, rel=0.1)
    assert many.ttft_ms > 4 * few.ttft_ms and many.itl_ms == 0
    assert many.request_latency_ms == pytest.approx(many.ttft_ms)


def test_at_saturation_the_first_token_waits_for_a_step_as_full_as_the_others():
    """A steady stream of prompts fills every step that carries one: a new request's prompt shares its step with
    others', so its first token takes at least what such a step takes, and no less than the mean time between two
    tokens (a 1B at 1,000 users once came out at 19 ms to first token against 26 ms between tokens)."""
    # the generic serving engine: vLLM's and SGLang's servers would bound these 1,000 users (`request_host_s`)
    r = profile(ProfileRequest(model="llama-3.2-1b", hardware="h100-sxm", engine="serving", input_tokens=512,
                               output_tokens=128, concurrency=1000)).requests
    assert r.running == 1000 and r.queue_wait_ms == 0
    assert r.ttft_ms > r.itl_ms
    few = profile(ProfileRequest(model="llama-3.2-1b", hardware="h100-sxm", engine="sglang", input_tokens=512,
                                 output_tokens=128, concurrency=4)).requests
    assert few.ttft_ms < r.ttft_ms / 2  # alone in its step, a prompt is soon done


def test_a_run_may_set_its_own_step_budget():
    """`--prefill-chunk` sets the step's token budget as vLLM's --max-num-batched-tokens does: a larger one takes a
    long prompt in fewer steps; TensorRT-LLM, which does not chunk by default, chunks at it; transformers refuses it."""
    default = requests(input_tokens=16000, output_tokens=64, context=16384, concurrency=16).requests
    larger = requests(input_tokens=16000, output_tokens=64, context=16384, concurrency=16,
                      prefill_chunk_tokens=16384).requests
    assert "chunks of 8,192" in default.scheduling and "chunks of 16,384" in larger.scheduling
    assert larger.ttft_ms != pytest.approx(default.ttft_ms)
    trt = requests("trtllm", prefill_chunk_tokens=8192, concurrency=16).requests
    assert "chunks of 8,192" in trt.scheduling and "chunks" not in requests("trtllm", concurrency=16).requests.scheduling
    with pytest.raises(RequestError, match="prefills whole prompts"):
        requests("transformers", prefill_chunk_tokens=4096, concurrency=4)
    with pytest.raises(RequestError, match="at least 1"):
        requests(prefill_chunk_tokens=0, concurrency=4)


def test_prompts_run_first_wait_for_the_prompts_ahead_of_them(monkeypatch):
    """An engine that runs prompts first (SGLang) serves them as a queue the decoding waits behind: a prompt-heavy load
    waits most of its cycle for the first token, as the same requests sent at once do, and then decodes in plain
    steps; short prompts wait a fraction of a step; with one token out nothing decodes, mixed or not. (The overlap
    scheduler's step, which the budget's queue absorbs in a mixed engine, is left out: its own test.)"""
    from optiplan.planner.catalog.engines import engine_table

    monkeypatch.setitem(engine_table()["sglang"], "overlap_schedule", False)
    def figures(**kw):
        return requests("sglang", context=16384, **kw).requests

    heavy = {"concurrency": 32, "input_tokens": 8000, "output_tokens": 16}
    steady, burst = figures(**heavy), figures(at_once=True, **heavy)
    assert steady.ttft_ms == pytest.approx(burst.ttft_ms, rel=0.05)
    assert steady.itl_ms == pytest.approx(burst.itl_ms, rel=0.05)
    light = figures(concurrency=8, input_tokens=1024, output_tokens=256)
    alone = figures(concurrency=1, input_tokens=1024, output_tokens=256)
    assert light.ttft_ms < 2 * alone.ttft_ms and light.itl_ms > alone.itl_ms
    one = {"concurrency": 2, "input_tokens": 512, "output_tokens": 1}
    first = figures(**one)
    monkeypatch.setitem(engine_table()["sglang"], "mixed_prefill", True)
    assert first.ttft_ms == pytest.approx(figures(**one).ttft_ms, rel=0.02)  # no decode step to pay for
    # mixed, the heavy load's prompts ride in the decode steps: the first token comes later, the tokens after it sooner
    mixed = figures(**heavy)
    assert mixed.ttft_ms > steady.ttft_ms and mixed.itl_ms < steady.itl_ms


def test_mixed_chunk_puts_sglangs_prompts_in_the_decode_steps(monkeypatch):
    """`--mixed-chunk` (SGLang's --enable-mixed-chunk): a prompt-heavy load's prompts ride in the decode steps instead
    of steps of their own, the decoding no longer waiting for them, as an SGLang that mixed them by default would run
    them; an engine that mixes them already has nothing to turn on."""
    from optiplan.planner.catalog.engines import engine_table

    heavy = {"context": 16384, "concurrency": 32, "input_tokens": 8000, "output_tokens": 16}
    apart, mixed = requests("sglang", **heavy).requests, requests("sglang", mixed_chunk=True, **heavy).requests
    assert mixed.itl_ms < apart.itl_ms
    monkeypatch.setitem(engine_table()["sglang"], "mixed_prefill", True)
    default = requests("sglang", **heavy).requests
    assert (mixed.ttft_ms, mixed.itl_ms) == pytest.approx((default.ttft_ms, default.itl_ms))
    with pytest.raises(RequestError, match="mixes them already"):
        requests("vllm", mixed_chunk=True, concurrency=4)


def test_a_scheduler_a_batch_ahead_takes_a_new_prompt_a_step_later(monkeypatch):
    # SGLang's overlap scheduler and TensorRT-LLM's PyTorch executor have launched the next batch before they take in a
    # request that came during a step: the prompt joins the batch after it, one step later; a lone request finds
    # nothing launched ahead of it, and a burst's prompts all come in at once. SGLang's eager prompt steps, whose
    # launches come in series without the overlap scheduler, are left out: test_eager_prefill.py prices them
    from optiplan.planner.catalog.engines import engine_schedules_ahead, engine_table

    monkeypatch.setitem(engine_table()["sglang"], "eager_prefill", None)
    assert engine_schedules_ahead("sglang") and engine_schedules_ahead("trtllm") and not engine_schedules_ahead("vllm")
    assert not engine_schedules_ahead("sglang", speculative="eagle3") and not engine_schedules_ahead("sglang", pp=2)
    cases = {"loaded": {"concurrency": 16}, "alone": {"concurrency": 1}, "burst": {"concurrency": 16, "at_once": True},
             "one token": {"concurrency": 8, "input_tokens": 512, "output_tokens": 1}}
    ahead = {name: requests("sglang", **kw).requests for name, kw in cases.items()}
    monkeypatch.setitem(engine_table()["sglang"], "overlap_schedule", False)
    eager = {name: requests("sglang", **kw).requests for name, kw in cases.items()}
    for name in ("alone", "burst"):
        assert ahead[name].ttft_ms == pytest.approx(eager[name].ttft_ms), name
        assert "a batch ahead" not in ahead[name].scheduling + eager[name].scheduling, name
    assert "a batch ahead" in ahead["loaded"].scheduling + ahead["one token"].scheduling
    for name in ("loaded", "one token"):
        a, e = ahead[name], eager[name]
        step_ms = a.ttft_ms - e.ttft_ms
        # a mean step of the cycle: more than none, at most the mean time between tokens (which also carries the
        # prompts' steps) or, with one token out, the cycle of prompt steps itself
        assert 0 < step_ms <= (e.itl_ms or e.request_latency_ms) * 1.01, name
        # the wait is outside the batch: the tokens after the first come as fast, the round trip a step later
        assert a.itl_ms == pytest.approx(e.itl_ms), name
        assert a.request_latency_ms == pytest.approx(e.request_latency_ms + step_ms), name
        assert a.output_tokens_per_s < e.output_tokens_per_s, name


def test_a_p95_prompts_first_token_is_taken_under_the_mean_prompts_load():
    # a plan's p95 TTFT is one long prompt among the mean ones: pricing every request at the p95 length once made a
    # chunked TensorRT-LLM plan's budget bind (1,979 sequences of 2,000-token prompts on a B200) and its TTFT 19 s
    from optiplan.planner.analytic.requests import request_figures
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model
    from optiplan.planner.plan.state import baseline_state, to_setup

    state = baseline_state(resolve_model("gpt-oss-120b"), resolve_hardware("b200"), 1, "trtllm").with_(
        engine="trtllm", paged_kv=True, continuous_batching=True, chunked_prefill=True, graphs=True, kv_dtype="fp8")
    s = to_setup(state)
    mean = request_figures(s, 800, 400, 1979, True)
    assert request_figures(s, 800, 400, 1979, True, own=(800, 0)) == mean
    p95 = request_figures(s, 800, 400, 1979, True, own=(2000, 0))
    everyone = request_figures(s, 2000, 400, 1979, True)
    assert (p95["cycle_s"], p95["itl_s"]) == (mean["cycle_s"], mean["itl_s"])  # the load is the mean's
    assert mean["ttft_s"] <= p95["ttft_s"] < 2 * mean["ttft_s"] < everyone["ttft_s"] / 10
    # alone, its own prefill; in a static batch, the batch padded to it
    for c, continuous in ((1, True), (8, False)):
        longer = request_figures(s, 800, 400, c, continuous, own=(2000, 0))
        assert longer["ttft_s"] > request_figures(s, 800, 400, c, continuous)["ttft_s"]


def test_an_engine_that_does_not_chunk_takes_at_most_its_step_budget_a_step():
    # TensorRT-LLM without chunked prefill takes whole prompts beside the decode tokens, up to max_num_tokens (8,192)
    # a step: 256 requests of 4,000 tokens in and 100 out need more steps than their 99 decode steps
    from optiplan.planner.analytic.profile import setup_for_request
    from optiplan.planner.analytic.requests import request_figures
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model

    s = setup_for_request(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="trtllm"),
                          resolve_model("llama-3.1-8b"), resolve_hardware("h100-sxm"))
    assert s.prefill_chunk_tokens is None and s.step_tokens == 8192
    f = request_figures(s, 4000, 100, 256, True)
    steps = f["cycle_s"] / f["itl_s"]  # the budget binds: every step a decode step of the running sequences
    assert 256 * (4000 + 99) / steps <= 8192 * 1.01
