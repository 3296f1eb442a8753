"""TensorRT-LLM's configs for gpt-oss on Hopper say how to run the TRITON MoE backend, whose MXFP4 kernel the
prediction prices (profiles/engines/trtllm.yaml kernels: mxfp4) but whose kernels the pinned release does not ship."""

from __future__ import annotations

from optiplan.planner.deploy.render import engine_config
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest


def _config(model, hardware, devices=1):
    plan = advise(AdviseRequest(model=model, hardware=hardware, num_devices=devices, workload="chat", engine="trtllm"))
    return plan, engine_config(plan, "trtllm")


def _triton_notes(cfg):
    return [note for note in cfg.notes if "TRITON MoE backend" in note]


def test_gpt_oss_on_hopper_says_how_to_run_the_priced_backend():
    _, cfg = _config("gpt-oss-120b", "h100-sxm")
    assert "moe_config" not in cfg.extra  # a backend the stock image cannot start is not set for the user
    [note] = _triton_notes(cfg)
    assert "TRITON_ROOT" in note and "moe_config: {backend: TRITON}" in note and "tensor parallelism" not in note


def test_blackwell_and_other_models_have_no_such_note():
    for model, hardware in (("gpt-oss-120b", "b200"), ("qwen3-30b-a3b", "h100-sxm")):
        _, cfg = _config(model, hardware)
        assert not _triton_notes(cfg), (model, hardware)


def test_tensor_parallel_experts_say_the_backend_cannot_run_them():
    plan, cfg = _config("gpt-oss-120b", "h100-sxm", devices=2)
    assert (plan.plan.predicted.tensor_parallel, plan.plan.predicted.expert_parallel) == (2, 1)
    [note] = _triton_notes(cfg)
    assert "expert parallel only" in note
