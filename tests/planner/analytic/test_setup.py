"""One Setup builder: `profile` and the planner's baseline resolve the same configuration to the same figures."""

from __future__ import annotations

import math

import pytest
from optiplan.planner.analytic.profile import profile
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest, ProfileRequest


# eager `generate` on an L4 holds 23 chat users beside their prompts' prefill at best, not the preset's 32: 16
@pytest.mark.parametrize("model, hardware, workload, concurrency", [("llama-3.1-8b", "l4", "chat", 16),
                                                                    ("qwen2.5-7b", "h100-sxm", "code-completion", None),
                                                                    ("mixtral-8x7b", "mi300x", "chat", None)])
def test_advise_baseline_and_profile_agree_for_the_same_configuration(model, hardware, workload, concurrency):
    """The advise baseline is eager transformers `generate` with SDPA on one device, in the device's 16-bit
    format: `profile --engine transformers --attention sdpa` at the same batch, context and prompt must give
    the same TTFT (batch 1), TPOT and weights."""
    advice = advise(AdviseRequest(model=model, hardware=hardware, workload=workload, engine="transformers",
                                  concurrency=concurrency))
    base, w = advice.baseline, advice.workload
    common = dict(model=model, hardware=hardware, dtype=base.weight_dtype, engine="transformers", attention="sdpa")
    decode = profile(ProfileRequest(**common, batch=base.batch, context=int(w.mean_context),
                                    prompt_tokens=min(w.prompt_tokens_p95, int(w.mean_context))))
    prefill = profile(ProfileRequest(**common, batch=1, context=w.prompt_tokens_p95, prompt_tokens=w.prompt_tokens_p95))
    assert math.isclose(decode.latency.tpot_ms, base.tpot_ms, rel_tol=1e-9)
    assert math.isclose(prefill.latency.ttft_ms, base.ttft_ms, rel_tol=1e-9)
    assert decode.memory.weights_bytes == pytest.approx(base.weights_per_device_bytes, rel=1e-9)
    assert decode.hardware.compute_dtype == base.compute_dtype


def test_attention_kernels_are_data_with_a_source():
    from optiplan import profiles

    table = profiles.efficiency_table()
    assert table["attention_kernels"]["flash"] >= table["attention_kernels"]["sdpa"] >= \
        table["attention_kernels"]["eager"] > 0
    assert "arXiv" in table["attention_kernels_source"]
    flash = profile(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", context=32768, attention="flash"))
    sdpa = profile(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", context=32768, attention="sdpa"))
    assert sdpa.latency.ttft_ms > flash.latency.ttft_ms  # long prompts are attention-heavy
