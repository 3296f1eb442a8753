"""Calibration's fit prices a step's attention as the analytic model does: at the rate attention runs at (the 16-bit
rate beside fp8 linear layers) and at the share of the linear layers' efficiency its kernel and dtype reach."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from optiplan.planner.analytic.profile import setup_for_request
from optiplan.planner.analytic.steps import prefill_step
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.measure import fit
from optiplan.planner.schema import ProfileRequest


@pytest.mark.parametrize("dtype, attention", [("bf16", "flash"), ("fp8", "sdpa"), ("fp8", "flash")])
def test_a_fitted_sample_costs_what_the_step_costs(dtype, attention):
    request = ProfileRequest(model="llama-3.2-1b", hardware="h100-sxm", dtype=dtype, attention=attention)
    s = setup_for_request(request, resolve_model(request.model), resolve_hardware(request.hardware))
    point = SimpleNamespace(kind="prefill", batch=1, tokens=32768, median_s=1.0, spread_s=0.0)
    sample = fit.samples(SimpleNamespace(points=[point], model="m"), s)[0]
    factors = {"flop_efficiency": s.eff.flop_efficiency, "bandwidth_efficiency": s.eff.bandwidth_efficiency,
               "step_overhead_s": s.eff.step_overhead_s, "layer_overhead_s": s.eff.layer_overhead_s,
               "matmul_half_tokens": 0.0}
    step = prefill_step(s, 1, 32768)  # compute-bound: the attention's price decides it
    assert fit.predict_seconds(sample, factors) == pytest.approx(step.roofline_s + step.overhead_s, rel=0.03)
