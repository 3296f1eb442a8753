"""Efficiency by device, kernel and cache format: the defaults scaled by a device's microbenchmarks, the engine's
weight kernel and activation format, and the KV cache read at its own format's share."""

from __future__ import annotations

import dataclasses

import pytest
from optiplan import profiles
from optiplan.planner.analytic.efficiency import default_flop_efficiency, measured_factors
from optiplan.planner.analytic.kvcache import cache_tokens_held
from optiplan.planner.analytic.memory import (
    cache_capacity_tokens,
    cache_room,
    fits,
    max_batch,
    per_device_bytes,
    sampler_bytes,
)
from optiplan.planner.analytic.profile import profile, setup_for_request
from optiplan.planner.analytic.setup import build_setup
from optiplan.planner.analytic.steps import decode_step, kv_bytes_per_device, prefill_step
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.catalog.workloads import load_workload
from optiplan.planner.errors import RequestError
from optiplan.planner.plan.state import baseline_state, kv_reserved_tokens, to_setup
from optiplan.planner.schema import ProfileRequest

GPU = profiles.efficiency_table()["device_kinds"]["gpu"]


def setup(model="llama-3.1-8b", hardware="h100-sxm", **kw):
    request = ProfileRequest(model=model, hardware=hardware, **kw)
    return setup_for_request(request, resolve_model(model), resolve_hardware(hardware))


def test_measured_shares_scale_the_defaults_against_their_reference_device():
    mi300x, a100, h100 = (resolve_hardware(h) for h in ("mi300x", "a100-80gb-sxm", "h100-sxm"))
    bw, flop, why = measured_factors(mi300x, "bf16")
    assert bw == pytest.approx((3.95 / 5.3) / (1.70 / 2.039))  # STREAM triad shares: MI300X over the A100
    assert flop == pytest.approx((668.4 / 1307) / (271.2 / 312))  # MAMF bf16, both from one table
    assert "a100-80gb-sxm" in why
    # int8 has no figure of its own: the fp8 one, measured at the same tensor-core rate, stands in (on both sides)
    assert measured_factors(mi300x, "int8")[1] == pytest.approx(measured_factors(mi300x, "fp8")[1])
    assert measured_factors(mi300x, "fp8")[1] == pytest.approx((1273 / 2615) / (1402.6 / 1979))
    assert measured_factors(a100, "bf16")[:2] == (1.0, 1.0)  # the reference itself
    assert measured_factors(h100, "fp8")[1] == 1.0
    assert measured_factors(resolve_hardware("l4"), "bf16")[:2] == (1.0, 1.0)  # no microbenchmarks: unscaled


def test_a_device_with_lower_measured_shares_is_predicted_slower_at_the_same_peaks():
    mi300x = resolve_hardware("mi300x")
    unmeasured = mi300x.model_copy(update={"measured": None})
    spec = resolve_model("llama-3.1-70b")
    kw = {"weight_dtype": "fp8", "runtime": "serving", "layout": "serving", "attention": "flash"}
    scaled, plain = build_setup(spec, mi300x, **kw), build_setup(spec, unmeasured, **kw)
    assert "scaled to mi300x by microbenchmarks" in scaled.eff.source
    # a long prompt's prefill is compute-bound: it takes longer by the inverse of the measured GEMM share's ratio
    ratio = prefill_step(scaled, 1, 8192).time_s / prefill_step(plain, 1, 8192).time_s
    assert ratio == pytest.approx(1 / measured_factors(mi300x, "fp8")[1], rel=0.1)
    assert decode_step(scaled, 1, 1024).time_s > decode_step(plain, 1, 1024).time_s  # and its triad share is lower


def test_an_engine_that_reserves_whole_requests_holds_fewer_than_one_that_grows_them():
    kw = {"model": "llama-3.1-70b", "hardware": "h200-sxm", "num_devices": 2, "dtype": "fp8", "input_tokens": 1000,
          "output_tokens": 2000, "concurrency": "max", "context": 3000}
    vllm = profile(ProfileRequest(engine="vllm", **kw)).requests.max_concurrency
    trtllm = profile(ProfileRequest(engine="trtllm", **kw)).requests.max_concurrency
    # a request holds 2,000 of its 3,000 tokens on average, all 3,000 reserved; the pools differ too (vLLM runs within
    # 0.9 of the device, TensorRT-LLM's cache takes 0.9 of what is free), each as the engine sizes it at start-up
    held = {"vllm": cache_tokens_held(1000, 2000, on_demand=True), "trtllm": 3000}  # 2,000 and partly filled blocks
    for engine, running in (("vllm", vllm), ("trtllm", trtllm)):
        s = setup_for_request(ProfileRequest(engine=engine, **kw), resolve_model("llama-3.1-70b"),
                              resolve_hardware("h200-sxm"))
        assert running == cache_capacity_tokens(s, held[engine]) // held[engine], engine
    # TensorRT-LLM's pool is the larger (620,755 tokens against vLLM's 572,004), yet it holds fewer requests
    assert trtllm < vllm
    spec, h200 = resolve_model("llama-3.1-70b"), resolve_hardware("h200-sxm")
    work = load_workload("chat")
    state = baseline_state(spec, h200, 1).with_(paged_kv=True)
    assert kv_reserved_tokens(state.with_(engine="trtllm"), work) > kv_reserved_tokens(state.with_(engine="vllm"), work)


def test_the_kv_cache_is_read_at_its_own_formats_share_not_the_weights():
    # no microbenchmarks on an L4: the table's shares as they are; transformers reads int4 with the default kernel
    int4 = setup(dtype="int4", hardware="l4", engine="transformers", attention="sdpa")
    assert int4.eff.bandwidth_efficiency == GPU["bandwidth_efficiency"]["int4"]
    assert int4.eff.kv_bandwidth_efficiency == GPU["bandwidth_efficiency"]["bf16"]
    fp8_cache = setup(dtype="int4", hardware="l4", kv_dtype="fp8", engine="transformers", attention="sdpa")
    assert fp8_cache.eff.kv_bandwidth_efficiency == GPU["bandwidth_efficiency"]["fp8"]
    # a long-context step's cache time follows the cache's share: the same bytes at the int4 share took longer
    step = decode_step(int4, 32, 8192)
    slower = decode_step(dataclasses.replace(int4, eff=int4.eff.model_copy(update={"kv_bandwidth_efficiency": None})),
                         32, 8192)
    assert slower.time_s > step.time_s


def test_an_engines_weight_kernel_sets_the_weights_share_on_cuda():
    marlin = setup(dtype="int4", hardware="l4", engine="vllm")
    generic = setup(dtype="int4", hardware="l4", engine="serving")  # stands for vLLM, SGLang, TGI: Marlin too
    eager = setup(dtype="int4", hardware="l4", engine="transformers", attention="sdpa")  # torchao's tinygemm
    assert marlin.eff.bandwidth_efficiency == GPU["bandwidth_efficiency"]["bf16"]  # Marlin: the 16-bit GEMM's share
    assert generic.eff.bandwidth_efficiency == marlin.eff.bandwidth_efficiency
    assert eager.eff.bandwidth_efficiency == GPU["bandwidth_efficiency"]["int4"]
    assert "marlin" in marlin.eff.source.lower()
    chosen = setup(dtype="int4", hardware="l4", engine="vllm", weight_kernel="tinygemm")
    assert chosen.eff.bandwidth_efficiency == 0.42
    # on a ROCm device, or a CUDA one older than the kernel, Marlin's facts do not apply: vLLM on ROCm has no int4
    # kernel of its profile's (the device's defaults); TGI on a T4 neither (its exllama kernels need sm80 or ROCm)
    assert setup(dtype="int4", hardware="mi300x", engine="vllm").eff.bandwidth_efficiency < \
        GPU["bandwidth_efficiency"]["bf16"]
    assert setup(dtype="int4", hardware="t4", engine="tgi").eff.bandwidth_efficiency == \
        GPU["bandwidth_efficiency"]["int4"]  # Marlin needs compute capability 8.0; a T4 has 7.5


def test_below_marlins_device_vllm_reads_gptq_weights_with_its_exllama_derived_kernel():
    """vLLM runs GPTQ checkpoints on Volta and Turing with its own GPTQ kernel, adapted from exllamav2 (its profile's
    `fallback`), and TGI on ROCm with exllamav2's kernels: the kernel's share up to its 50 rows, above them the 16-bit
    matrix rebuilt and read by cuBLAS, at the share that traffic leaves."""
    entry = profiles.efficiency_table()["weight_kernels"]["exllama"]
    t4 = setup(dtype="int4", hardware="t4", engine="vllm")
    assert t4.eff.bandwidth_efficiency == entry["bandwidth_efficiency"] and "exllama" in t4.eff.source
    assert t4.eff.weight_kernel_max_rows == 50 and t4.eff.gemm_bandwidth_efficiency == entry["gemm_bandwidth_efficiency"]
    rocm = setup(dtype="int4", hardware="mi300x", engine="tgi")
    assert rocm.eff.weight_kernel_max_rows == 50 and "exllama" in rocm.eff.source
    assert "exllama" not in setup(dtype="int4", hardware="mi300x", engine="vllm").eff.source  # GPTQ: not on ROCm
    assert setup(dtype="int4", hardware="a100-80gb-sxm", engine="vllm").eff.weight_kernel_max_rows is None  # Marlin
    # the fallback is vLLM's GPTQ kernel: AWQ weights on a T4 run vLLM's AWQ GEMM, at the device's default share
    from optiplan.planner.plan.state import PlanState, to_setup
    state = PlanState(spec=resolve_model("llama-2-7b"), hw=resolve_hardware("t4"), devices=1, weight_dtype="int4",
                      group_size=128, engine="vllm", paged_kv=True, graphs=True)
    assert to_setup(state.with_(weight_method="gptq")).eff.weight_kernel_max_rows == 50
    awq = to_setup(state.with_(weight_method="awq")).eff
    assert awq.weight_kernel_max_rows is None and awq.bandwidth_efficiency == GPU["bandwidth_efficiency"]["int4"]
    # 50 rows read the int4 weights; 51 rebuild them in 16 bits first: the step takes several times as long
    at_50, at_51 = (decode_step(t4, rows, 1024).time_s for rows in (50, 51))
    assert at_51 > 3 * at_50


def test_a_step_beyond_the_weight_kernels_rows_reads_no_faster_than_the_kernel_did():
    """llama.cpp's mat-vec takes up to 8 rows as profiled (MMVF for 16-bit weights; profiles/efficiency.yaml), whose
    launches and SM-bound reads cost a 1B model on a B200 about 2.5 ms a step; its GEMM takes 9 and more. The engine's
    dispatch keeps the mat-vec where the GEMM is the slower, and a GEMM over more rows is no faster: the step does not
    drop at 9 rows (it had, 2.5x)."""
    b200 = setup(model="llama-3.2-1b", hardware="b200", dtype="bf16", engine="llama.cpp")
    assert b200.eff.weight_kernel_max_rows == 8 and b200.eff.weight_kernel_layer_s > 0
    steps = [decode_step(b200, rows, 1024).time_s for rows in (1, 8, 9, 16, 64)]
    assert steps == sorted(steps) and steps[2] < 1.05 * steps[1]
    # a 128-token prompt of llama-bench's pp runs the GEMM: at least the mat-vec's read of the weights
    assert prefill_step(b200, 1, 128).time_s >= decode_step(b200, 8, 128).time_s * 0.95
    # a MoE's floor is the kernel's read of what its most rows touch: the routed experts 8 rows route to, not 9's
    from optiplan.planner.analytic.weight_reads import routed_expert_bytes, shared_weight_bytes, weight_read_s
    moe = setup(model="qwen3-30b-a3b", hardware="a100-80gb-sxm", dtype="int4", engine="llama.cpp")
    shared, at_9, at_8 = shared_weight_bytes(moe), routed_expert_bytes(moe, 9), routed_expert_bytes(moe, 8)
    assert at_8 < at_9 and weight_read_s(moe, 9, shared, at_9, at_8) < weight_read_s(moe, 9, shared, at_9, at_9)
    moe_steps = [decode_step(moe, rows, 1024).time_s for rows in (1, 8, 9, 16)]
    assert moe_steps == sorted(moe_steps)
    # where the engine's GEMM reads slower than its kernel (exllama's rebuild above 50 rows), the GEMM's time stands
    t4 = setup(dtype="int4", hardware="t4", engine="vllm")
    assert decode_step(t4, 51, 1024).time_s > 3 * decode_step(t4, 50, 1024).time_s


def test_a_plan_carries_its_engine_into_the_prediction():
    spec, l4 = resolve_model("llama-3.1-8b"), resolve_hardware("l4")
    state = baseline_state(spec, l4, 1).with_(weight_dtype="int4", paged_kv=True, graphs=True)
    marlin, tinygemm = to_setup(state.with_(engine="vllm")), to_setup(state.with_(engine="transformers"))
    assert decode_step(marlin, 1, 1024).time_s < decode_step(tinygemm, 1, 1024).time_s


@pytest.mark.parametrize(("kw", "words"), [
    ({"dtype": "int4", "weight_kernel": "nope"}, "unknown weight kernel 'nope'"),
    ({"dtype": "int8", "weight_kernel": "marlin"}, "reads int4, mxfp4 weights, not int8"),
    ({"dtype": "int4", "weight_kernel": "marlin", "hardware": "epyc-9004"}, "is a CUDA kernel"),
    ({"dtype": "int4", "weight_kernel": "marlin", "hardware": "mi300x"}, "is a CUDA kernel"),
    ({"dtype": "int4", "weight_kernel": "marlin", "hardware": "t4"}, "compute capability 8 or newer"),
])
def test_a_weight_kernel_that_cannot_apply_is_refused(kw, words):
    with pytest.raises(RequestError, match=words):
        setup(**kw)


def test_nvfp4_runs_w4a4_where_the_device_has_an_fp4_rate():
    b200 = setup(model="llama-3.1-70b", hardware="b200", dtype="fp4", engine="trtllm")
    assert b200.compute_dtype == "fp4"
    # the generic engine too (the README's fp4: NVFP4, W4A4 on Blackwell); without the rate it cannot run at all
    assert setup(model="llama-3.1-70b", hardware="b200", dtype="fp4", engine="serving").compute_dtype == "fp4"
    # an explicit --activations wins over the engine's kernel
    assert setup(model="llama-3.1-70b", hardware="b200", dtype="fp4", engine="trtllm",
                 activations="bf16").compute_dtype == "bf16"
    prefill_fp4 = profile(ProfileRequest(model="llama-3.1-70b", hardware="b200", dtype="fp4", engine="trtllm",
                                         prompt_tokens=4096))
    prefill_16 = profile(ProfileRequest(model="llama-3.1-70b", hardware="b200", dtype="fp4", engine="trtllm",
                                        activations="bf16", prompt_tokens=4096))
    assert prefill_fp4.latency.ttft_ms < prefill_16.latency.ttft_ms


def test_a_calibrated_machine_reads_its_cache_and_activations_at_its_16_bit_fit(monkeypatch):
    from optiplan.planner.analytic import efficiency

    def fit(bandwidth):
        return {"factors": {"flop_efficiency": 0.5, "bandwidth_efficiency": bandwidth, "step_overhead_s": 0.001,
                            "layer_overhead_s": 0.0001}, "median_abs_error_pct": 5.0, "points": [1, 2, 3]}

    data = {"measured_at": "2026-11-29", "machine": {"device": "cpu"},
            "runtimes": {"transformers": {"bf16": fit(0.6), "int4": fit(0.3)}}}
    monkeypatch.setattr(efficiency, "load_calibration", lambda: data)
    local = resolve_hardware("epyc-9004").model_copy(update={"id": "local"})
    int4 = efficiency.calibrated_efficiency(local, "transformers", "int4", "bf16")
    assert int4.bandwidth_efficiency == 0.3  # the weights at their own fit
    assert int4.kv_bandwidth_efficiency == int4.activation_bandwidth_efficiency == 0.6
    uncalibrated_16bit = efficiency.calibrated_efficiency(local, "transformers", "int4", "fp16")
    assert uncalibrated_16bit.kv_bandwidth_efficiency is None  # no fp16 fit: the weights' share stands in
    # a machine whose `local` is its GPU: the CPU's fit says nothing of it (calibrate --device cpu on a GPU host)
    gpu = resolve_hardware("h200-sxm").model_copy(update={"id": "local"})
    assert efficiency.calibrated_efficiency(gpu, "transformers", "bf16", "bf16") is None


def test_a_cpu_calibration_keeps_the_estimated_rates_it_does_not_measure(monkeypatch):
    # calibrate measures fp32 and bf16 matmuls; the int8 rate the estimate gives stays (W8A8 on `local` still runs)
    from optiplan.planner.catalog import hardware
    from optiplan.planner.machine.probe import estimated_cpu

    data = {"measured_at": "2026-11-29", "machine": {"device": "cpu"}, "peak_tflops": {"fp32": 1.5, "bf16": 0.9},
            "bandwidth_bytes_per_s": 2e10, "runtime_overhead_bytes": 0}
    monkeypatch.setattr(hardware, "load_calibration", lambda: data)
    estimated = estimated_cpu()
    local = hardware.local_cpu()
    assert local.peak_tflops["fp32"] == 1.5 and local.peak_tflops["bf16"] == 0.9
    assert "int8" in estimated.peak_tflops and local.peak_tflops["int8"] == estimated.peak_tflops["int8"]


def test_vllm_holds_its_cache_in_its_share_of_the_device():
    """vLLM runs within --gpu-memory-utilization (0.9) of the device: the requests it holds at once are what that
    share leaves beside the weights, activations and runtime, not what the whole device leaves."""
    kw = {"model": "llama-3.1-8b", "hardware": "h100-sxm", "input_tokens": 1024, "output_tokens": 1024,
          "concurrency": "max"}
    held = cache_tokens_held(1024, 1024, on_demand=True)
    s = setup_for_request(ProfileRequest(engine="vllm", **kw), resolve_model("llama-3.1-8b"),
                          resolve_hardware("h100-sxm"))
    assert s.kv_memory == ("device", 0.9)
    weights, kv, act = per_device_bytes(s, 1, held, 1024)
    one_prompt = int((0.9 * s.hw.memory_bytes - weights - act - s.hw.runtime_overhead_bytes) // kv)
    most = profile(ProfileRequest(engine="vllm", **kw)).requests.max_concurrency
    # the batch's own transients (prompts prefilled together up to the 8,192-token chunk) take a little more
    assert fits(s, most, held, 1024) and not fits(s, most + 1, held, 1024) and 0.97 * one_prompt <= most <= one_prompt
    whole = int((s.hw.memory_bytes - weights - act - s.hw.runtime_overhead_bytes) // kv)
    assert most < 0.9 * whole  # the tenth of the device it leaves is a larger share of what the weights leave


def test_fits_and_the_largest_batch_agree_in_the_engines_share():
    """`fits`, the largest batch and the longest context all count the share of the device the engine takes: vLLM's
    8B on an H100 at 4,096 tokens holds 102 sequences (0.9 of the device, less its sampler's profiling peak), not the
    127 the generic engine would (profile once said more fit than its batch curve did)."""
    kw = {"model": "llama-3.1-8b", "hardware": "h100-sxm", "engine": "vllm", "context": 4096}
    most = profile(ProfileRequest(**kw)).throughput.max_batch
    assert profile(ProfileRequest(batch=most, **kw)).fits
    over = profile(ProfileRequest(batch=most + 1, **kw))
    assert not over.fits and over.memory.headroom_bytes < 0
    assert over.throughput.max_context < 4096
    assert profile(ProfileRequest(**(kw | {"engine": "serving"}))).throughput.max_batch > most


def test_a_batch_that_fits_beside_one_prompt_but_not_beside_the_engines_prefill_chunk_does_not_fit():
    """GPT-NeoX-20B in bf16 fills the 0.9 of a 48 GB L40S that TGI runs within (41.1 GB of weights): one 1,000-token
    prompt's activations leave room beside it, but TGI sizes its cache after a warm-up prefill of its whole token
    budget, which leaves none. The profile said `fits` with no warning while its batch curve and its requests held
    nothing; it now says why it does not fit. (First found with Phi-3.5-MoE on an 80 GB A100, when TGI's cache was
    priced in all of the device; within its 0.9 the weights alone no longer fit there.)"""
    r = profile(ProfileRequest(model="gpt-neox-20b", hardware="l40s", engine="tgi", dtype="bf16",
                               input_tokens=1000, output_tokens=16, concurrency=8))
    assert r.throughput.max_batch == 0 and r.requests.max_concurrency == 0 and not r.requests.fits
    assert not r.fits and any("prefill chunk's activations" in w for w in r.warnings)
    # the same model on two of them fits, and the curve agrees
    two = profile(ProfileRequest(model="gpt-neox-20b", hardware="l40s", num_devices=2, engine="tgi",
                                 dtype="bf16", input_tokens=1000, output_tokens=16, concurrency=8))
    assert two.fits and two.throughput.max_batch >= 1 and not any("does not fit" in w for w in two.warnings)


@pytest.mark.parametrize("model, devices, dtype, measured_gib", [
    ("qwen3-32b", 1, "bf16", 4.45), ("qwen3-32b", 2, "bf16", 34.49), ("llama-3.1-8b", 1, "bf16", 51.38),
    ("llama-3.1-70b", 2, "fp8", 32.0)])
def test_vllm_sizes_its_cache_after_its_sampler_profiling_peak(model, devices, dtype, measured_gib):
    """vLLM 0.11 gives its cache what 0.9 of the device leaves beside the weights and the peak of its profiling run,
    which is its sampler's over max_num_seqs (1,024 on an H100) rows of logits: 5.64 GiB for Qwen3-32B, 4.76-4.84
    GiB for the Llamas, at one or two GPUs. The pools match its logs on one H100 (llm-d-benchmark's
    empirical-vllm-memory-results.md: KV cache 4.45, 34.49, 51.38 and 32.0 GiB) within 3%, where the prefill's own
    transients alone had left Qwen3-32B 2.1x the room."""
    s = setup(model, num_devices=devices, dtype=dtype, engine="vllm")
    weights, _, act = per_device_bytes(s, 1, 2048, 2048)
    pool = cache_room(s, weights, s.hw.runtime_overhead_bytes + act) / 2**30
    assert pool == pytest.approx(measured_gib, rel=0.03)
    assert act == sampler_bytes(s, 1) == 39 * 1024 * s.spec.vocab_size  # per device, whatever the TP
    a100 = setup(model, hardware="a100-80gb-sxm", num_devices=devices, dtype="bf16", engine="vllm")
    assert sampler_bytes(a100, 1) == sampler_bytes(s, 1) / 4  # max_num_seqs 256 there
    assert sampler_bytes(setup(model, num_devices=devices, dtype=dtype, engine="trtllm"), 1) == 0


def test_a_plans_config_caps_vllms_sampler_peak_at_its_own_sequences():
    """The configs a plan writes set vLLM's --max-num-seqs to the sequences a server runs, so its profiling pass
    samples that many rows, not the default 1,024: the plan's cache holds more than stock vLLM's. Stock, Qwen3-32B
    on one H100 has 4.3 GiB of cache; capped at its own batch, the pool is what the batch's rows leave. The plan is
    priced at the image its configs run, whose sampler is FlashInfer's before 0.12 (14 bytes a logit, not 39)."""
    spec, h100 = resolve_model("qwen3-32b"), resolve_hardware("h100-sxm")
    stock = setup("qwen3-32b", engine="vllm")
    planned = to_setup(baseline_state(spec, h100, 1).with_(engine="vllm", paged_kv=True, continuous_batching=True,
                                                           chunked_prefill=True))
    assert stock.sampler_rows == 1024 and planned.sampler_rows is None
    assert stock.sampler_row_bytes == 39 * spec.vocab_size and planned.sampler_row_bytes == 14 * spec.vocab_size
    most_stock, most_planned = max_batch(stock, 4096, 2048), max_batch(planned, 4096, 2048)
    assert 0 < most_stock < most_planned
    # the largest batch is exact: its caches fit beside its own rows' sampler peak, one more does not
    assert fits(planned, most_planned, 4096, 2048) and not fits(planned, most_planned + 1, 4096, 2048)
    weights, _, act = per_device_bytes(planned, most_planned, 4096, 2048)
    assert act >= 14 * spec.vocab_size * most_planned


def test_profile_warns_where_vllm_would_refuse_to_start_at_the_models_context():
    """vLLM starts only if its cache holds one sequence of its --max-model-len (the model's own by default): Qwen3-32B
    on one H100 needs 10 GiB for its 40,960 tokens and stock vLLM leaves 4.3 GiB (llm-d's logs: Qwen3-32B at
    max-model-len 32000 failed there), so profile says so and names the longest context that starts; Llama-3.1-8B's
    128K tokens fit beside its weights, and TensorRT-LLM has no such check."""
    warned = profile(ProfileRequest(model="qwen3-32b", hardware="h100-sxm", engine="vllm", context=2048)).warnings
    refusal = next(w for w in warned if "refuses to start" in w)
    assert "40,960 tokens need 10.00 GiB" in refusal and "--max-model-len 17," in refusal
    s = setup("qwen3-32b", engine="vllm", context=2048)
    weights, _, act = per_device_bytes(s, 1, 2048, 2048)
    pool = cache_room(s, weights, act + s.hw.runtime_overhead_bytes)
    longest = int(refusal.split("--max-model-len ")[1].split(" ")[0].replace(",", ""))
    assert kv_bytes_per_device(s, longest) <= pool < kv_bytes_per_device(s, longest + 1)
    for kw in ({"model": "llama-3.1-8b", "engine": "vllm"}, {"model": "qwen3-32b", "engine": "trtllm"}):
        assert not any("refuses to start" in w for w in profile(ProfileRequest(hardware="h100-sxm", **kw)).warnings)


def test_the_startup_check_counts_one_sequence_on_its_own_devices():
    """vLLM checks each worker against its own layers' cache, and one sequence sits whole on one data-parallel
    attention group: a pipeline stage holds half the layers' cache (70B FP8 on two H100s starts with its 131,072
    tokens split in two stages as in two tensor-parallel halves), and under attention data parallelism the whole
    sequence's cache is one group's, not an eighth of it."""
    from optiplan.planner.analytic.memory import one_sequence_bytes

    for layout in ({"pipeline_parallel": 2}, {"tensor_parallel": 2}):
        p = profile(ProfileRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=2, dtype="fp8",
                                   engine="vllm", **layout))
        assert not any("refuses to start" in w for w in p.warnings), layout
    piped = setup("llama-3.1-70b", num_devices=2, pipeline_parallel=2, dtype="fp8", engine="vllm")
    tensor = setup("llama-3.1-70b", num_devices=2, tensor_parallel=2, dtype="fp8", engine="vllm")
    assert one_sequence_bytes(piped, 131072, 0) == pytest.approx(one_sequence_bytes(tensor, 131072, 0))
    dp = setup("qwen3-235b-a22b", num_devices=8, attention_data_parallel=8, expert_parallel=8, engine="vllm")
    one = setup("qwen3-235b-a22b", num_devices=8, tensor_parallel=8, engine="vllm")
    # a whole sequence's 4 KV heads on each device of its group, against one head on each of eight under TP 8
    assert one_sequence_bytes(dp, 40960, 0) == pytest.approx(4 * one_sequence_bytes(one, 40960, 0), rel=0.01)


def test_a_plan_holds_vllms_sampler_peak_at_the_batch_it_runs():
    """advise's plans count vLLM's profiling peak at the rows its config caps the server at (--max-num-seqs at the
    plan's sequences): an offline 8B plan on an H100 runs 256 sequences (more gain under 3%), and their sampler rows
    (1.8 MB each with the image's FlashInfer sampler) sit beside their caches within vLLM's 0.9 share, not the single
    row a batch-1 peak would give."""
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.schema import AdviseRequest

    advice = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", num_devices=1, workload="batch-offline",
                                  goal="throughput", engine="vllm"))
    p = advice.plan.predicted
    s = to_setup(baseline_state(resolve_model("llama-3.1-8b"), resolve_hardware("h100-sxm"), 1).with_(
        engine="vllm", paged_kv=True, chunked_prefill=True))
    assert p.batch >= 256 and p.activation_bytes >= sampler_bytes(s, p.batch) >= p.batch * 14 * s.spec.vocab_size
    assert p.memory_per_device_bytes <= 0.9 * s.hw.memory_bytes * 1.001


def test_a_serving_engines_prefill_attention_runs_at_its_kernels_measured_share():
    # the serving runtime states its fused attention kernels' own share of the 16-bit peak (measured: SDPA at 8K on
    # an H200, profiles/kernels/h200-sxm.json), scaled by the device's bf16 factor, in place of the engine's GEMM share
    share = profiles.efficiency_table()["runtimes"]["serving"]["gpu"]["prefill_attention_flop_efficiency"]
    for hardware in ("h100-sxm", "h200-sxm", "a100-80gb-sxm"):
        hw = resolve_hardware(hardware)
        expected = share * measured_factors(hw, "bf16")[1]
        for engine in ("vllm", "sglang", "trtllm"):
            s = setup(hardware=hardware, engine=engine, dtype="bf16")
            assert s.eff.attention_flop_efficiency == pytest.approx(expected), (hardware, engine)
            assert s.attention_efficiency == pytest.approx(expected), (hardware, engine)
    h100 = resolve_hardware("h100-sxm")
    # on Hopper vLLM's GEMMs run at its own share, below what its attention kernels reach
    vllm = setup(engine="vllm", dtype="bf16")
    assert vllm.eff.flop_efficiency < 0.6 * vllm.attention_efficiency
    # fp8 layers over an fp8 cache attend at the fp8 rate, the share moved by the two rates' documented shares
    fp8 = setup(engine="vllm", dtype="fp8", kv_dtype="fp8")
    assert fp8.attention_dtype == "fp8"
    moved = default_flop_efficiency(h100, "fp8") / default_flop_efficiency(h100, "bf16")
    assert fp8.attention_efficiency == pytest.approx(share * measured_factors(h100, "bf16")[1] * moved)
    # the eager runtime (transformers) keeps the linear layers' share: calibration measures its whole step
    eager = setup(engine="transformers", dtype="bf16")
    assert eager.eff.attention_flop_efficiency is None
    assert eager.attention_efficiency == pytest.approx(eager.eff.flop_efficiency)
    # a 32K prompt prefills faster than at the GEMM share
    slow = dataclasses.replace(vllm, attention_efficiency=vllm.eff.flop_efficiency)
    assert prefill_step(vllm, 1, 32768).time_s < 0.9 * prefill_step(slow, 1, 32768).time_s


def test_a_plan_that_fits_names_the_longest_context_it_holds():
    """A plan fits at the memory share it raises the engine to (up to 0.95), and its longest context is taken at
    that share too: Qwen3-30B-A3B on an RTX 4090 for code completion fits only so, and had a longest context of 0."""
    from optiplan.planner.errors import ImpossibleError
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.schema import AdviseRequest

    with pytest.raises(ImpossibleError) as missed:  # its 16 users do not fit beside the weights; one does
        advise(AdviseRequest(model="qwen3-30b-a3b", hardware="rtx-4090", workload="code-completion"))
    p = missed.value.document.plan.predicted
    assert p.fits and p.max_concurrency >= 1 and p.max_context > 0
