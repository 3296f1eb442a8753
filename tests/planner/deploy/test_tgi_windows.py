"""TGI's attention on ROCm (and FlashAttention 1 before Ampere) computes no sliding window, and TGI refuses to load a
model with one where --max-input-tokens exceeds the window: its configs cap the option there, or refuse where the
workload's prompts are longer."""

from __future__ import annotations

import pytest
from optiplan.planner.deploy.render import DeployError, engine_config
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest


def _tgi(model, hardware, **kw):
    return advise(AdviseRequest(model=model, hardware=hardware, num_devices=1, engine="tgi", workload="chat", **kw))


def test_tgi_on_rocm_caps_its_prompts_at_the_window():
    a = _tgi("mistral-7b-v0.1", "mi300x", max_context=16384)  # prompts of the chat workload stay under 4,096
    cfg = engine_config(a, "tgi")
    assert cfg.options["max-input-tokens"] == 4096 and cfg.options["max-total-tokens"] == 16384
    assert cfg.options["max-batch-prefill-tokens"] >= 4096  # its router refuses a budget under the longest prompt
    assert any("has no sliding window" in n for n in cfg.notes)


def test_tgi_on_rocm_refuses_prompts_longer_than_the_window():
    a = _tgi("phi-3-mini-4k", "mi300x")  # a 2,047-token window, chat prompts of 3,072 at p95
    with pytest.raises(DeployError, match="no sliding window.*2,047 tokens.*p95 prompt is 3,072"):
        engine_config(a, "tgi")


def test_tgi_with_flash_attention_2_keeps_the_model_window():
    a = _tgi("mistral-7b-v0.1", "a100-80gb-sxm", max_context=16384)
    assert engine_config(a, "tgi").options["max-input-tokens"] == 16383
