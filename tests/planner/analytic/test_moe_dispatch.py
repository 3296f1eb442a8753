"""Expert dispatch under data-parallel attention: a top-k all-to-all where the engine's release has the kernel on the
device (DeepEP, pplx on CUDA), else the all-gather of every token to every device its build runs (vLLM and SGLang on
ROCm before MoRI-EP), which the configs say, with what it measured against an all-to-all."""

from __future__ import annotations

from optiplan.planner.catalog.engines import engine_gathers_experts
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.deploy.render import engine_config
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest


def test_which_builds_gather_experts():
    mi300x, h200 = resolve_hardware("mi300x"), resolve_hardware("h200-sxm")
    assert engine_gathers_experts("sglang", mi300x) and engine_gathers_experts("vllm", mi300x)
    assert not engine_gathers_experts("sglang", h200) and not engine_gathers_experts("vllm", h200)
    assert not engine_gathers_experts("trtllm", h200)  # no fact on file: its own all-to-all


def test_a_rocm_config_says_the_dispatch_it_was_priced_at():
    a = advise(AdviseRequest(model="deepseek-v3", hardware="mi300x", num_devices=8, engine="sglang",
                             workload="batch-offline", goal="throughput"))
    assert a.plan.predicted.expert_parallel == 8 and a.plan.predicted.attention_data_parallel == 8
    notes = engine_config(a, "sglang").notes
    assert any("no top-k all-to-all kernel on rocm" in n and "sglang#17012" in n and "1.36x" in n for n in notes)
    assert not any("deepep" in n for n in notes)
