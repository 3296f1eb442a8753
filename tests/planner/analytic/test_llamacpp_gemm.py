"""llama.cpp's prompt GEMMs on a GPU: cuBLAS accumulating in fp16 (a GeForce card's doubled fp16 rate), at the share
of that peak and the bound per SM fitted to llama-bench's published prompt runs; its quantized prompts priced as that
GEMM (MMQ since b3216), before b3216 after a pass converting the weights to fp16 each physical batch
(profiles/engines/llama.cpp.yaml `gemm_accumulate`, `gemm_share`, `gemm_unit_tflops`, its `versions` rule)."""

from __future__ import annotations

import pytest
from optiplan import profiles
from optiplan.planner.analytic.engine_rates import dequantize_pass, kernel_peak_tflops, kernel_unit_tflops
from optiplan.planner.analytic.profile import profile, setup_for_request
from optiplan.planner.analytic.steps import prefill_step
from optiplan.planner.catalog.engines import engine_activations, engine_profile
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest, ProfileRequest


def _request(hardware: str, dtype: str, engine: str = "llama.cpp") -> ProfileRequest:
    return ProfileRequest(model="llama-3.1-8b", hardware=hardware, engine=engine, dtype=dtype, context=1024,
                          prompt_tokens=512)


def _setup(hardware: str, dtype: str, engine: str = "llama.cpp"):
    request = _request(hardware, dtype, engine)
    return setup_for_request(request, resolve_model("llama-3.1-8b"), resolve_hardware(hardware))


def test_a_gguf_prompt_runs_at_the_16_bit_rate_on_a_gpu_and_int8_on_a_cpu():
    # the int8 peak had priced a 4090's Llama-3-8B Q4_K_M prompt at 18,930 tokens/s, 2.7x llama-bench's 7,139
    assert engine_activations("llama.cpp", "int4", resolve_hardware("rtx-4090")) is None
    assert _setup("rtx-4090", "int4").compute_dtype in ("bf16", "fp16")
    assert engine_activations("llama.cpp", "int4", resolve_hardware("epyc-9004")) == "int8"  # ggml's vec_dot on a CPU


def test_its_fp16_gemms_run_a_geforce_cards_fp16_accumulate_peak_and_bf16_the_documented_one():
    rtx, h100 = resolve_hardware("rtx-4090"), resolve_hardware("h100-pcie")
    assert rtx.fp16_accumulate_tflops == pytest.approx(2 * rtx.peak_tflops["fp16"], rel=0.01)
    assert kernel_peak_tflops("llama.cpp", "fp16", "fp16", rtx) == rtx.fp16_accumulate_tflops
    s = _setup("rtx-4090", "fp16")
    assert s.peak_flops == pytest.approx(rtx.fp16_accumulate_tflops * 1e12)
    share = engine_profile("llama.cpp")["kernels"]["fp16"]["gemm_share"]["cuda"]
    assert 0.3 < share < 0.6 and s.eff.flop_efficiency == pytest.approx(share) and "gemm_share" in s.eff.source
    # BF16 (the same cuBLAS GEMM accumulating in fp32): the same share of the listed rate, which it runs at; as fast as
    # F16 on a data-centre GPU, where the fp16-accumulate rate is no higher
    bf16 = _setup("rtx-4090", "bf16")
    assert bf16.peak_flops == pytest.approx(rtx.peak_tflops["bf16"] * 1e12) and bf16.eff.flop_efficiency == share
    assert _setup("a100-80gb-sxm", "bf16").eff.flop_efficiency == _setup("a100-80gb-sxm", "fp16").eff.flop_efficiency
    # BF16 accumulates in fp32; a data-centre GPU has no faster fp16-accumulate rate; other engines run their own GEMMs
    assert kernel_peak_tflops("llama.cpp", "bf16", "bf16", rtx) is None
    assert kernel_peak_tflops("llama.cpp", "fp16", "fp16", h100) is None
    assert kernel_peak_tflops("vllm", "fp16", "fp16", rtx) is None
    assert _setup("rtx-4090", "fp16", "vllm").peak_flops == pytest.approx(rtx.peak_tflops["fp16"] * 1e12)


def test_every_geforce_card_in_the_catalog_states_its_fp16_accumulate_rate():
    # a GeForce card runs fp16 with fp16 accumulation at twice its listed (fp32-accumulate) rate: one without it would
    # price llama.cpp's prompts at half speed (the RTX 5060 Ti's had, 2,111 -> 1,449 tokens/s)
    geforce = [resolve_hardware(h) for h in profiles.hardware_ids() if "GeForce" in resolve_hardware(h).name]
    assert len(geforce) >= 4
    for hw in geforce:
        assert hw.fp16_accumulate_tflops == pytest.approx(2 * hw.peak_tflops["fp16"], rel=0.01), hw.id
        assert hw.fp16_accumulate_source, hw.id


def test_the_bound_per_sm_binds_on_a_data_centre_gpu_and_not_on_a_geforce_card():
    a100, h100 = resolve_hardware("a100-80gb-sxm"), resolve_hardware("h100-pcie")
    rate = kernel_unit_tflops("llama.cpp", "int4", a100)
    assert rate == kernel_unit_tflops("llama.cpp", "fp16", a100) == pytest.approx(1.55)
    assert kernel_unit_tflops("llama.cpp", "int4", resolve_hardware("m2-ultra")) is None
    s = _setup(h100.id, "int4")
    assert s.eff.flop_efficiency == pytest.approx(rate * h100.compute_units / h100.peak_tflops[s.compute_dtype])
    assert "gemm_unit_tflops" in s.eff.source
    assert "gemm_unit_tflops" not in _setup("rtx-4090", "fp16").eff.source  # 0.46 of 330 is below 1.55 x 128
    assert "gemm_unit_tflops" not in _setup("a100-80gb-sxm", "int4", "vllm").eff.source  # nor another engine's kernel


def test_builds_before_b3216_convert_quantized_weights_to_fp16_each_physical_batch_of_a_prompt():
    rtx = resolve_hardware("rtx-3090")
    assert dequantize_pass("llama.cpp==b2824", "int4", rtx) == (33, 512)
    assert dequantize_pass("llama.cpp", "int4", rtx) is None  # MMQ reads them as they are
    assert dequantize_pass("llama.cpp==b2824", "fp16", rtx) is None
    old, new = _setup(rtx.id, "int4", "llama.cpp==b2824"), _setup(rtx.id, "int4")
    assert old.dequantize_rows == (33, 512) and new.dequantize_rows is None
    # the pass reads the quantized weights and writes their fp16 copies: a 512-token prompt takes longer...
    extra = prefill_step(old, 1, 512).roofline_s - prefill_step(new, 1, 512).roofline_s
    # (the blocks' linear layers only: the output projection runs the prompt's last row, no GEMM)
    moved = old.counts.linear * (old.bits_per_weight / 8 + 2)  # the linear layers' weights read, their copies written
    stream = old.eff.activation_bandwidth_efficiency or old.eff.bandwidth_efficiency  # a streaming elementwise pass
    assert extra == pytest.approx(moved / (rtx.memory_bandwidth_bytes_per_s * stream), rel=1e-6)
    # ... twice as long a pass for 513 tokens, and none at 32 rows (MMQ's)
    assert prefill_step(old, 1, 32).roofline_s == pytest.approx(prefill_step(new, 1, 32).roofline_s)
    two = prefill_step(old, 1, 513).roofline_s - prefill_step(new, 1, 513).roofline_s
    assert two == pytest.approx(2 * extra, rel=0.01)
    # and the request's prompt rate shows it
    slow = profile(_request(rtx.id, "int4", "llama.cpp==b2824")).latency.ttft_ms
    assert slow > profile(_request(rtx.id, "int4")).latency.ttft_ms


def test_a_prompt_priced_from_other_gpus_runs_says_so_and_a_pinned_build_names_its_rules():
    # current builds' MMQ is priced as the cuBLAS GEMM from GeForce runs alone: a data-centre GPU's profile says so
    h100 = profile(_request("h100-pcie", "int4"))
    assert any("measured on rtx-3090, rtx-4090 only" in w and "h100-pcie" in w for w in h100.warnings)
    assert not any("measured on" in w for w in profile(_request("rtx-4090", "int4")).warnings)
    # a build before b3216 ran cuBLAS, fitted on all five GPUs: no such caveat; its warning names the rules applied
    old = profile(_request("h100-pcie", "int4", "llama.cpp==b2824")).warnings
    assert not any("measured on" in w for w in old)
    assert any("its rules for" in w and "<3216" in w for w in old)
    # and a plan whose weights that kernel reads says it too
    plan = advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=2, workload="chat",
                                engine="llama.cpp"))
    assert plan.plan.predicted.weight_dtype in ("int8", "int4")
    assert any("measured on rtx-3090, rtx-4090 only" in w for w in plan.warnings)
