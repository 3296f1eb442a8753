"""TensorRT-LLM's configs for gpt-oss on Hopper name the TRITON MoE backend, whose MXFP4 kernel the prediction prices
(profiles/engines/trtllm.yaml kernels: mxfp4), where the plan's layout lets it run."""

from __future__ import annotations

from optiplan.planner.deploy.render import engine_config
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest


def _config(model, hardware, devices=1):
    plan = advise(AdviseRequest(model=model, hardware=hardware, num_devices=devices, workload="chat", engine="trtllm"))
    return plan, engine_config(plan, "trtllm")


def test_gpt_oss_on_hopper_runs_the_triton_moe_backend():
    _, cfg = _config("gpt-oss-120b", "h100-sxm")
    assert cfg.extra["moe_config"] == {"backend": "TRITON"}
    assert any(note.startswith("moe_config.backend TRITON") for note in cfg.notes)


def test_blackwell_and_other_models_keep_the_default_backend():
    for model, hardware in (("gpt-oss-120b", "b200"), ("qwen3-30b-a3b", "h100-sxm")):
        _, cfg = _config(model, hardware)
        assert "moe_config" not in cfg.extra, (model, hardware)


def test_tensor_parallel_experts_say_the_backend_cannot_run_them():
    plan, cfg = _config("gpt-oss-120b", "h100-sxm", devices=2)
    assert (plan.plan.predicted.tensor_parallel, plan.plan.predicted.expert_parallel) == (2, 1)
    assert "moe_config" not in cfg.extra  # TRITON would refuse the tensor-parallel experts
    assert any("expert parallel only" in note for note in cfg.notes)
