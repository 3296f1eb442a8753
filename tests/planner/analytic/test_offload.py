"""Weights kept in host memory: llama.cpp computes the layers --n-gpu-layers leaves there on the CPU at the host
memory's bandwidth (a prompt's steps send them over the link instead); the other engines stream offloaded weights
over the host link every pass."""

from __future__ import annotations

import pytest
from optiplan.planner.analytic.offload import (
    host_layers_s,
    host_repeating_layers,
    host_weight_bytes,
    streamed_weights_s,
)
from optiplan.planner.analytic.profile import profile, setup_for_request
from optiplan.planner.catalog.engines import engine_host_layers
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.errors import RequestError
from optiplan.planner.schema import ProfileRequest

# the rig of benchmarks/published/inventivehq-vram-offload-cliff.yaml: dual-channel DDR4-2400, a PCIe 3.0 x8 slot
RIG = {"host_memory_gbps": 38.4, "host_link_gbps": 7.88}


def _request(gpu_layers: int | None, **kw) -> ProfileRequest:
    fields = {"engine": "llama.cpp", "dtype": "int4", "context": 129, "prompt_tokens": 1} | RIG | kw
    return ProfileRequest(model="qwen2.5-14b", hardware="rtx-5060-ti", gpu_layers=gpu_layers, **fields)


def _setup(request: ProfileRequest):
    return setup_for_request(request, resolve_model(request.model), resolve_hardware(request.hardware))


def test_the_last_slots_go_to_the_gpu_the_output_head_first():
    # 48 layers and the head are 49 slots: -ngl 1 puts the head alone on the GPU, -ngl 49 and more everything
    assert host_repeating_layers(48, 0) == (48, True)
    assert host_repeating_layers(48, 1) == (48, False)
    assert host_repeating_layers(48, 40) == (9, False)
    assert host_repeating_layers(48, 49) == host_repeating_layers(48, 99) == (0, False)


def test_builds_before_pr_18148_fill_the_gpu_from_the_last_layer_and_the_head_last():
    """The configs' image (b7079) predates llama.cpp PR #18148 ("offload output layer to GPU first", 2025-12-17):
    its --n-gpu-layers N puts the last N repeating layers on the GPU and the head only at N = n_layer + 1. The configs
    had set Mixtral's -ngl for head-first placement: 15 layers' slots holding 1.4 GB more than the plan on an RTX 4090
    (14 layers and the head planned), the head computed on the CPU besides."""
    from optiplan.planner.catalog.engines import deployed_engine
    from optiplan.planner.deploy.prediction import configuration_fits, served_request
    from optiplan.planner.deploy.render import engine_config
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.schema import AdviseRequest

    assert host_repeating_layers(48, 1, head_first=False) == (47, True)
    assert host_repeating_layers(48, 48, head_first=False) == (0, True)
    assert host_repeating_layers(48, 49, head_first=False) == (0, False)
    hw = resolve_hardware("rtx-4090")
    assert engine_host_layers(deployed_engine("llama.cpp", hw))["head_first"] is False
    assert engine_host_layers("llama.cpp")["head_first"] is True  # the builds since
    a = advise(AdviseRequest(model="mixtral-8x7b", hardware="rtx-4090", engine="llama.cpp", workload="batch-offline",
                             concurrency=4))
    cfg = engine_config(a, "llama.cpp")
    assert cfg.options["n-gpu-layers"] == 14
    configured = profile(served_request(a, cfg, set()))
    assert configuration_fits(configured)
    assert configured.memory.per_device_bytes <= a.plan.predicted.memory_per_device_bytes * 1.01


def test_everything_on_the_host_is_the_whole_share():
    # a fraction of 1 (every weight in host memory) holds nothing on the device and everything on the host
    from dataclasses import replace

    s = _setup(_request(None))
    everything = replace(s, offload_fraction=1.0)
    assert max(everything.stage_weights) == 0 and host_weight_bytes(everything) == max(s.whole_stage_weights)


def test_llama_cpp_decodes_the_host_layers_on_the_cpu_at_its_memory_bandwidth():
    s = _setup(_request(0))
    host = host_weight_bytes(s)
    assert host == pytest.approx(8.5e9, rel=0.05)  # every layer and the Q6_K head of the 8.99 GB file
    share = engine_host_layers("llama.cpp")["bandwidth_efficiency"]
    assert host_layers_s(s, 1) == pytest.approx(host / (38.4e9 * share)) and streamed_weights_s(s) == 0
    # a prompt's step (32 rows and more) runs the host's layers on the GPU, their weights sent over the slot once per
    # physical batch of 512 rows
    assert host_layers_s(s, 512) == pytest.approx(host / 7.88e9)
    assert host_layers_s(s, 2048) == pytest.approx(4 * host / 7.88e9)
    # the whole step: 2.7-3.0 tokens/s where streaming the same bytes over the slot would give under 1
    tpot_ms = profile(_request(0)).latency.tpot_ms
    assert 2.6 < 1e3 / tpot_ms < 3.1 and 1e3 / tpot_ms > 2.5 * 7.88e9 / host


def test_a_mixture_of_experts_host_layers_read_the_experts_a_step_is_routed_to():
    # Qwen3-30B-A3B with every layer on the host: a one-token step reads its attention and 8 of each layer's 128
    # experts there, not every expert (a reviewer's 4090 plan came out at 186 ms a step for ~50 ms of reads)
    from optiplan.planner.analytic.steps import decode_step

    fields = {"engine": "llama.cpp", "dtype": "int8", "context": 129, "prompt_tokens": 1} | RIG
    s = _setup(ProfileRequest(model="qwen3-30b-a3b", hardware="rtx-4090", gpu_layers=0, **fields))
    whole = host_layers_s(s, 1)  # every host weight
    step = decode_step(s, 1, 129)
    assert step.memory_s < 0.2 * whole  # a token reads 8 of 128 experts (the attention and head besides)
    # a prompt's steps send whole tensors over the link, every expert
    assert host_layers_s(s, 512) == pytest.approx(host_weight_bytes(s) / 7.88e9)


def test_each_layer_moved_to_the_gpu_takes_its_bytes_off_the_host():
    rates = [1e3 / profile(_request(n)).latency.tpot_ms for n in (0, 16, 32, 40, 99)]
    assert rates == sorted(rates)
    # the harmonic mean: with 9 of 48 layers left on the host the model runs at a quarter of its all-GPU speed
    assert 0.2 < rates[3] / rates[4] < 0.4
    fits = profile(_request(40)).memory.per_device_bytes
    assert fits < profile(_request(None)).memory.per_device_bytes - 1e9


def test_a_prompt_pays_the_host_layers_copies_in_series_with_its_compute():
    # a 2,048-token prompt with 9 of 48 layers in host memory: four 512-row batches each send those layers' weights
    # over the PCIe 3.0 x8 slot before the GPU runs them
    s = _setup(_request(40, prompt_tokens=2048, context=2048))
    full = profile(_request(None, prompt_tokens=2048, context=2048)).latency.ttft_ms
    ttft = profile(_request(40, prompt_tokens=2048, context=2048)).latency.ttft_ms
    assert ttft - full == pytest.approx(4 * host_weight_bytes(s) / 7.88e9 * 1e3, rel=0.02)


def test_gpu_layers_are_llama_cpps_on_one_gpu():
    with pytest.raises(RequestError, match="llama.cpp's --n-gpu-layers"):
        profile(_request(20, engine="vllm", dtype="bf16"))
    with pytest.raises(RequestError, match="one device"):
        profile(ProfileRequest(model="qwen2.5-14b", hardware="rtx-4090", engine="llama.cpp", dtype="int4",
                               num_devices=2, gpu_layers=20))


def test_host_options_are_refused_where_nothing_sits_in_host_memory():
    """--host-memory-gbps and --host-link-gbps changed nothing for vLLM (or llama.cpp on a CPU) and said nothing."""
    with pytest.raises(RequestError, match="keeps nothing in host memory"):
        profile(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="vllm", host_memory_gbps=50))
    with pytest.raises(RequestError, match="keeps nothing in host memory"):
        profile(ProfileRequest(model="llama-3.1-8b", hardware="epyc-9004", engine="llama.cpp", host_link_gbps=20))
    slow, fast = (profile(_request(20, host_memory_gbps=g)).latency.tpot_ms for g in (40, 80))
    assert slow > fast  # the layers the GPU leaves to the host run at its memory's speed


def test_the_other_engines_stream_offloaded_weights_over_the_host_link():
    # vLLM's --cpu-offload-gb reads the host's share over the link every pass, whatever the step's size
    s = _setup(ProfileRequest(model="qwen2.5-14b", hardware="rtx-4090", engine="vllm", dtype="bf16"))
    assert s.host_layers is None
    from dataclasses import replace

    offloaded = replace(s, offload_fraction=0.25)
    assert streamed_weights_s(offloaded) == pytest.approx(host_weight_bytes(offloaded) / s.host_link_bytes_per_s)
    assert host_layers_s(offloaded, 1) == host_layers_s(offloaded, 4096) == 0


def test_the_host_layers_keep_their_caches_in_host_memory():
    # at -ngl 25 of 49 slots, 24 of the 48 layers (and their caches) are the host's: half the cache on the device
    from optiplan.planner.analytic.steps import kv_bytes_per_device

    whole, split = _setup(_request(None)), _setup(_request(25))
    assert kv_bytes_per_device(split, 8192) == pytest.approx(kv_bytes_per_device(whole, 8192) / 2)
    assert kv_bytes_per_device(split, 8192, host=True) == pytest.approx(kv_bytes_per_device(whole, 8192) / 2)
    # and the step reads them there, at the host's pace: a long context slows the split model more
    slow = profile(_request(25, context=8192)).latency.tpot_ms - profile(_request(25)).latency.tpot_ms
    fast = profile(_request(None, context=8192)).latency.tpot_ms - profile(_request(None)).latency.tpot_ms
    assert slow > 3 * fast


def test_a_llama_cpp_config_offloads_the_layers_the_plan_offloads():
    # a 70B in Q8_0 on one RTX 4090, planned for vLLM with CPU offload and rendered for llama.cpp: --n-gpu-layers
    # holds no more weights on the device than the plan does, and its own profile (--gpu-layers) fits
    from optiplan.planner.deploy.prediction import configured
    from optiplan.planner.deploy.render import engine_config
    from optiplan.planner.errors import ImpossibleError
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.schema import AdviseRequest

    try:
        a = advise(AdviseRequest(model="llama-3.1-70b", hardware="rtx-4090", workload="chat", engine="vllm"))
    except ImpossibleError as exc:  # the chat's SLOs are out of reach: the document still carries the plan
        a = exc.document
    assert "cpu-offload" in [s.technique for s in a.plan.steps]
    cfg = engine_config(a, "llama.cpp")
    layers = cfg.options["n-gpu-layers"]
    assert 0 < layers < 81
    c = configured(a, cfg)
    assert f"--gpu-layers {layers}" in c["command"] and c["fits"]
    assert c["profile"].memory.host_weights_bytes > 40e9


def test_with_every_layer_on_the_host_the_device_sets_no_cache_limit(capsys):
    # -ngl 1: the head alone on the GPU, every layer and cache in host memory, whose size is not modelled: the report
    # says so rather than print the device's unbounded count
    from optiplan.planner.analytic.memory import NO_DEVICE_LIMIT
    from optiplan.planner.report.console import print_profile

    result = profile(_request(1))
    assert result.throughput.max_batch == NO_DEVICE_LIMIT
    print_profile(result)
    assert "no cache on the device" in capsys.readouterr().out


def _streamed(gib: float | None, engine: str = "vllm", **kw) -> ProfileRequest:
    return ProfileRequest(model="llama-3.1-8b", hardware="l4", engine=engine, context=2048, cpu_offload_gb=gib, **kw)


def test_cpu_offload_gb_streams_that_many_gib_of_each_devices_weights():
    """vLLM's and SGLang's --cpu-offload-gb: the GiB leave the device and cross the host link every pass."""
    plain, offloaded = profile(_streamed(None)), profile(_streamed(4))
    assert offloaded.memory.host_weights_bytes == pytest.approx(4 * 2**30, rel=1e-6)
    assert plain.memory.per_device_bytes - offloaded.memory.per_device_bytes == pytest.approx(4 * 2**30, rel=0.01)
    l4 = resolve_hardware("l4")
    assert offloaded.latency.tpot_ms - plain.latency.tpot_ms == pytest.approx(
        4 * 2**30 / (l4.host_link_gbps * 1e9) * 1e3, rel=0.05)
    # a slower slot streams them slower
    slow = profile(_streamed(4, host_link_gbps=l4.host_link_gbps / 2))
    assert slow.latency.tpot_ms > offloaded.latency.tpot_ms * 1.5
    assert profile(_streamed(4, engine="sglang")).memory.host_weights_bytes == pytest.approx(4 * 2**30, rel=1e-6)


@pytest.mark.parametrize("engine", ["trtllm", "llama.cpp"])
def test_cpu_offload_gb_is_vllms_and_sglangs_option(engine):
    with pytest.raises(RequestError, match="--cpu-offload-gb"):
        profile(_streamed(4, engine=engine))


def test_a_vllm_or_sglang_plan_offloads_whole_gib_as_its_config_does():
    """The plan kept 1.73 GiB of each device's weights in host memory where its SGLang config, in whole GiB, keeps 2:
    the configuration streamed 9% slower than planned. The plan now offloads what the config does."""
    from optiplan.planner.deploy.render import engine_config
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.schema import AdviseRequest

    advice = advise(AdviseRequest(model="llama-3.1-70b", hardware="a100-40gb", num_devices=2,
                                  workload="batch-offline", engine="sglang", concurrency=1))
    assert "cpu-offload" in {s.technique for s in advice.plan.steps}
    offloaded = advice.plan.predicted.offload_bytes_per_device
    assert offloaded / 2**30 == pytest.approx(round(offloaded / 2**30), abs=1e-6)
    assert engine_config(advice, "sglang").options["cpu-offload-gb"] == round(offloaded / 2**30)


@pytest.mark.parametrize(("model", "engine", "refused"), [
    ("llama-3.1-8b", "vllm", False),  # 0.10-0.11: the V1 runner offloads
    ("llama-3.1-8b", "vllm==0.21.0", False),
    ("qwen3-8b", "vllm==0.22.1", True),  # the V2 runner's first default: Qwen3
    ("llama-3.1-8b", "vllm==0.22.1", False),
    ("llama-3.1-8b", "vllm==0.23.0", True),
    ("qwen2.5-14b", "vllm==0.24.0", False),  # Qwen2 was not on the 0.24 list
    ("qwen2.5-14b", "vllm==0.25.1", True),  # every dense model from 0.25
    ("qwen1.5-moe-a2.7b", "vllm==0.25.1", True),  # listed MoE
    ("qwen3-30b-a3b", "vllm==0.27.1", False),  # other MoE models keep the V1 runner
    ("qwen2.5-14b", "vllm==0.28.0", False),  # 0.28.0 installs the offloader in the V2 runner
])
def test_vllm_releases_whose_v2_runner_ignores_cpu_offload_gb_refuse_it(model, engine, refused):
    """vLLM 0.22-0.27 accept --cpu-offload-gb and, for the models their V2 model runner serves, load the whole model on
    the GPU anyway (no offloader installed): a profile of that run would price an offload that never happens."""
    request = ProfileRequest(model=model, hardware="h100-sxm", engine=engine, context=2048, cpu_offload_gb=2)
    if refused:
        with pytest.raises(RequestError, match="V2 model runner, which installs no weight offloader"):
            profile(request)
    else:
        assert profile(request).memory.host_weights_bytes == pytest.approx(2 * 2**30, rel=1e-6)


def test_a_model_summarys_kind_is_its_specs():
    """Configs read the kind off the advice's model summary, plans and profiles off the spec: the same refusal."""
    from optiplan.planner.analytic.accuracy import architecture_kind
    from optiplan.planner.analytic.model_summary import model_summary

    for name in ("llama-3.1-8b", "qwen3-30b-a3b", "jamba-1.5-mini", "mamba2-2.7b", "qwen3-next-80b-a3b"):
        spec = resolve_model(name)
        assert model_summary(spec).kind == architecture_kind(spec), name
