"""llama.cpp's quantized GEMMs on a GPU (MMQ, or before b3216 dequantization into FP16 cuBLAS): at the 16-bit rate,
not the int8 tensor peak, and, with its 16-bit ones, at most a rate per SM fitted to llama-bench's published prompt
runs (profiles/engines/llama.cpp.yaml `activations_backends`, `gemm_unit_tflops`)."""

from __future__ import annotations

import pytest
from optiplan.planner.analytic.engine_rates import kernel_unit_tflops
from optiplan.planner.analytic.profile import setup_for_request
from optiplan.planner.catalog.engines import engine_activations
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.schema import ProfileRequest


def _setup(hardware: str, dtype: str, engine: str = "llama.cpp"):
    request = ProfileRequest(model="llama-3.1-8b", hardware=hardware, engine=engine, dtype=dtype, context=1024)
    return setup_for_request(request, resolve_model("llama-3.1-8b"), resolve_hardware(hardware))


def test_a_gguf_prompt_runs_at_the_16_bit_rate_on_a_gpu_and_int8_on_a_cpu():
    # the int8 peak had priced a 4090's Llama-3-8B Q4_K_M prompt at 18,930 tokens/s, 2.7x llama-bench's 7,139
    assert engine_activations("llama.cpp", "int4", resolve_hardware("rtx-4090")) is None
    assert _setup("rtx-4090", "int4").compute_dtype in ("bf16", "fp16")
    assert engine_activations("llama.cpp", "int4", resolve_hardware("epyc-9004")) == "int8"  # ggml's vec_dot on a CPU


def test_its_quantized_gemm_is_bounded_per_sm_where_the_tensor_peak_would_price_it_far_faster():
    a100, h100 = resolve_hardware("a100-80gb-sxm"), resolve_hardware("h100-pcie")
    rate = kernel_unit_tflops("llama.cpp", "int4", a100)
    assert rate == pytest.approx(0.72) and kernel_unit_tflops("llama.cpp", "int4", resolve_hardware("m2-ultra")) is None
    for hw in (a100, h100):
        s = _setup(hw.id, "int4")
        assert s.eff.flop_efficiency == pytest.approx(rate * hw.compute_units / hw.peak_tflops[s.compute_dtype])
        assert "gemm_unit_tflops" in s.eff.source
    # a 16-bit GGUF runs cuBLAS, bounded higher per SM: it binds on an H100, where a GeForce card's peak binds first
    sixteen = kernel_unit_tflops("llama.cpp", "bf16", h100)
    assert sixteen == pytest.approx(1.55) and "gemm_unit_tflops" in _setup("h100-pcie", "bf16").eff.source
    assert "gemm_unit_tflops" not in _setup("rtx-4090", "bf16").eff.source
    # nor does another engine's kernel take it
    assert "gemm_unit_tflops" not in _setup("a100-80gb-sxm", "int4", "vllm").eff.source

