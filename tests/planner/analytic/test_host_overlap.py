"""Eager transformers on a GPU: the host launches kernels ahead of the device, so a step takes the longer of its
launch costs and its kernels (measured on an H200: decode at any batch and context took the same time, a 2048-token
prefill of a 1B model as long as a 128-token one). Engines with CUDA graphs and the CPU keep the sum."""

from __future__ import annotations

import pytest
from optiplan.planner.analytic.profile import profile, setup_for_request
from optiplan.planner.analytic.steps import decode_step
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.schema import ProfileRequest


def _setup(engine: str, hardware: str = "h200-sxm", model: str = "llama-3.1-8b"):
    request = ProfileRequest(model=model, hardware=hardware, engine=engine, dtype="bf16", context=4096)
    return setup_for_request(request, resolve_model(model), resolve_hardware(hardware))


def test_a_launch_bound_step_costs_its_launches_and_a_kernel_bound_one_its_kernels():
    s = _setup("transformers")
    assert s.eff.host_overlap
    launches = s.eff.step_overhead_s + s.eff.layer_overhead_s * 32
    small, large = decode_step(s, 1, 2048), decode_step(s, 256, 4096)
    assert small.roofline_s < launches and small.time_s == pytest.approx(launches)
    assert large.roofline_s > launches and large.time_s == pytest.approx(large.roofline_s)
    assert small.launch_bound and small.bound == "launch" and not large.launch_bound
    # prompt tokens riding on a launch-bound decode step cost nothing until its kernels outgrow the launches
    assert small.time_with(0.5 * (launches - small.roofline_s)) == pytest.approx(launches)
    assert small.time_with(launches - small.roofline_s + 0.001) == pytest.approx(launches + 0.001)


@pytest.mark.parametrize("engine,hardware", [("serving", "h200-sxm"), ("vllm", "h100-sxm"),
                                             ("transformers", "epyc-9004")])
def test_engines_with_graphs_and_the_cpu_add_their_fixed_costs(engine, hardware):
    s = _setup(engine, hardware)
    assert not s.eff.host_overlap
    step = decode_step(s, 1, 2048)
    assert step.overhead_s > 0 and not step.launch_bound
    assert step.time_with(0.001) == pytest.approx(step.time_s + 0.001)  # extra work adds


def test_eager_decode_on_a_gpu_is_launch_bound_at_any_batch_as_measured():
    """The H200 measurement: Llama-3.1-8B decode 23.3-24.4 ms per step at batch 1 and 16, context 192 and 2112."""
    tpots = [profile(ProfileRequest(model="llama-3.1-8b", hardware="h200-sxm", engine="transformers", dtype="bf16",
                                    batch=b, prompt_tokens=p, context=p + 64)).latency.tpot_ms
             for b in (1, 16) for p in (128, 2048)]
    assert max(tpots) / min(tpots) < 1.1
    assert all(23.3 * 0.85 < t < 24.4 * 1.15 for t in tpots)
