"""SGLang runs its prompt steps eagerly (CUDA graphs hold decode batches only): each costs the host's time launching
its kernels, layer by layer, in series with them when the step runs alone and overlapping the step before it under
load."""

from __future__ import annotations

from dataclasses import replace

import pytest
from optiplan.planner.analytic.profile import profile, setup_for_request
from optiplan.planner.analytic.steps import decode_step, mixed_step, prefill_step
from optiplan.planner.catalog.engine_graphs import eager_prefill_host_s
from optiplan.planner.catalog.engines import engine_table
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.schema import ProfileRequest

FACTS = engine_table()["sglang"]["eager_prefill"]


def setup(model: str = "qwen3-8b", engine: str = "sglang", **kw):
    request = ProfileRequest(model=model, hardware="h100-sxm", engine=engine, **kw)
    return setup_for_request(request, resolve_model(model), resolve_hardware("h100-sxm"))


def test_the_host_time_grows_with_the_layers_and_their_kinds():
    dense, mla, hybrid = (resolve_model(m) for m in ("qwen3-8b", "deepseek-v3", "qwen3-next-80b-a3b"))
    assert eager_prefill_host_s(dense, "sglang") == pytest.approx(36 * FACTS["layer_s"])
    assert eager_prefill_host_s(mla, "sglang") == pytest.approx(61 * (FACTS["layer_s"] + FACTS["mla_layer_s"]))
    assert eager_prefill_host_s(hybrid, "sglang") == pytest.approx(48 * FACTS["layer_s"] + 36 * FACTS["state_layer_s"])
    # engines whose prompt steps replay graphs (vLLM's piecewise ones) or state nothing: none
    assert eager_prefill_host_s(dense, "vllm") == 0.0 and eager_prefill_host_s(dense, None) == 0.0
    assert setup(engine="vllm").prefill_host_s == 0.0


def test_alone_the_host_time_comes_in_series_and_under_load_it_overlaps():
    s = setup()
    host = s.prefill_host_s
    step = prefill_step(s, 1, 64)
    device = replace(step, host_floor_s=0.0).time_s
    assert step.host_floor_s == pytest.approx(host) and device < host  # a short prompt: the launches outlast it
    assert step.alone_s == pytest.approx(device + host)  # nothing before it to hide them under
    assert step.time_s == pytest.approx(host) and step.launch_bound and step.bound == "launch"
    long = prefill_step(s, 1, 32768)  # a long prompt's kernels outlast the launches: under load they hide
    assert long.time_s == pytest.approx(replace(long, host_floor_s=0.0).time_s)
    assert decode_step(s, 8, 1024).host_floor_s == 0.0  # decode steps replay CUDA graphs


def test_one_request_waits_for_the_launches():
    base = {"model": "qwen3-8b", "hardware": "h100-sxm", "engine": "sglang", "input_tokens": 300, "output_tokens": 200}
    alone = profile(ProfileRequest(**base, concurrency=1)).requests
    s = setup(input_tokens=300, output_tokens=200)
    first = prefill_step(s, 1, 300).alone_s + engine_table()["sglang"]["first_token_latency_s"]["one_device"]
    assert alone.ttft_ms / 1e3 == pytest.approx(first, rel=1e-6)
    # under load each prompt step's launches overlap the decode step before it: the loaded TTFT is not the lone one's
    # plus a queue of lone prefills
    loaded = profile(ProfileRequest(**base, concurrency=64)).requests
    assert loaded.ttft_ms < alone.ttft_ms + 64 * prefill_step(s, 1, 300).alone_s * 1e3 / 2


def test_without_the_overlap_scheduler_the_host_time_comes_in_series_under_load_too():
    # SGLang 0.5.6 turns its overlap scheduler off for Qwen3-Next, whose prefix cache (MambaRadixCache) it does not
    # run under; 0.5.5 kept it on; from 0.5.7 Nemotron-H too, from 0.5.9 LFM2 (the releases read: the profile)
    from optiplan.planner.catalog.engines import engine_schedules_ahead

    assert engine_schedules_ahead("sglang==0.5.5", model_type="qwen3_next")
    assert not engine_schedules_ahead("sglang==0.5.6", model_type="qwen3_next")
    assert engine_schedules_ahead("sglang==0.5.6", model_type="qwen3")
    assert engine_schedules_ahead("sglang", model_type="qwen3")
    # under speculative decoding: TensorRT-LLM keeps it with MTP and one-model EAGLE-3, not with a draft model or
    # n-grams; SGLang turns it off under every method
    assert engine_schedules_ahead("trtllm", "mtp") and engine_schedules_ahead("trtllm", "eagle3")
    assert not engine_schedules_ahead("trtllm", "draft") and not engine_schedules_ahead("trtllm", "ngram")
    assert not any(engine_schedules_ahead("sglang", m) for m in ("mtp", "eagle3", "draft", "ngram"))
    assert engine_schedules_ahead("sglang==0.5.6", model_type="nemotron_h")
    assert not engine_schedules_ahead("sglang==0.5.7", model_type="nemotron_h")
    assert engine_schedules_ahead("sglang==0.5.8", model_type="lfm2")
    assert not engine_schedules_ahead("sglang", model_type="lfm2")
    assert engine_schedules_ahead("trtllm", model_type="qwen3_next")  # another engine's rule is its own
    kw = {"num_devices": 4, "tensor_parallel": 4}
    on, off = (setup("qwen3-next-80b-a3b", f"sglang=={v}", **kw) for v in ("0.5.5", "0.5.6"))
    assert on.schedules_ahead and not off.schedules_ahead and on.prefill_host_s == off.prefill_host_s > 0
    for step_on, step_off in ((prefill_step(on, 1, 64), prefill_step(off, 1, 64)),
                              (mixed_step(on, 32, 1024, 256, 256), mixed_step(off, 32, 1024, 256, 256))):
        assert step_off.host_in_series and not step_on.host_in_series
        assert step_off.alone_s == pytest.approx(step_on.alone_s)  # alone they are the same step
        # under load the launches hide under the step before only where the scheduler has run ahead
        assert step_on.time_s < step_on.alone_s and step_off.time_s == pytest.approx(step_off.alone_s)
        assert step_off.time_with(1e-3) == pytest.approx(step_on.alone_s + 1e-3)
    assert prefill_step(off, 1, 64).launch_bound  # a short prompt's launches still outlast its kernels
    assert decode_step(off, 8, 1024).time_s == pytest.approx(decode_step(on, 8, 1024).time_s)  # graphs: no launches


def test_the_report_says_why_the_prompt_steps_launch_in_series():
    base = {"model": "qwen3-next-80b-a3b", "hardware": "b200", "num_devices": 8, "tensor_parallel": 8,
            "input_tokens": 300, "output_tokens": 200, "concurrency": 32}
    off, on = (profile(ProfileRequest(**base, engine=f"sglang=={v}")).requests.scheduling for v in ("0.5.6", "0.5.5"))
    assert "no overlap scheduler here" in off and "a batch ahead" not in off
    assert "a batch ahead" in on and "no overlap scheduler" not in on
    alone = profile(ProfileRequest(**{**base, "concurrency": 1}, engine="sglang==0.5.6")).requests.scheduling
    assert "overlap scheduler" not in alone  # alone every engine's launches come in series
