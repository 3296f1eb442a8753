"""SGLang's fused all-reduces (`engine_fusions`, its profile's `allreduce_fusion`): which deployments of which releases
fuse each tensor-parallel all-reduce with the residual add and RMSNorm after it, and what the fusion takes off a step
(`EfficiencyFactors.allreduce_fusion_saving_s`, in steps of up to the tokens the engine fuses)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from optiplan import profiles
from optiplan.planner.analytic.profile import setup_for_request
from optiplan.planner.analytic.steps import decode_step, prefill_step
from optiplan.planner.catalog.engine_fusions import fused_allreduce_tokens
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.schema import ProfileRequest


def fused(engine, model, hardware, tp=8, attention_dp=1, hw=None):
    return fused_allreduce_tokens(engine, resolve_model(model), hw or resolve_hardware(hardware), tp, 1, attention_dp)


@pytest.mark.parametrize(("engine", "model", "hardware", "tokens"), [
    ("sglang==0.5.6", "deepseek-v3", "b200", 2048),  # DeepSeek on SM100 from 0.5.4
    ("sglang==0.5.6", "gpt-oss-120b", "b200", 2048),
    ("sglang==0.5.6", "qwen3-235b-a22b", "b200", 0),  # Qwen3's MoE only from 0.5.7
    ("sglang==0.5.6", "deepseek-v3", "h200-sxm", 0),  # Hopper only from 0.5.7
    ("sglang==0.5.3", "deepseek-v3", "b200", 0),  # 0.5.3: gpt-oss alone
    ("sglang==0.5.3", "gpt-oss-120b", "b200", 2048),
    ("sglang==0.5.7", "qwen3-235b-a22b", "h100-sxm", 2048),
    ("sglang", "qwen3-235b-a22b", "h200-sxm", 2048),  # the profile's release (0.5.9)
    ("sglang", "llama-3.1-70b", "h200-sxm", 0),  # an architecture the rule does not name
    ("sglang", "deepseek-v3", "mi300x", 0),  # FlashInfer's kernel: CUDA only
    ("vllm", "deepseek-v3", "b200", 0),  # no rule in its profile
    ("serving", "deepseek-v3", "b200", 0),
])
def test_the_release_rules_say_which_deployments_fuse(engine, model, hardware, tokens):
    assert fused(engine, model, hardware) == tokens


def test_only_tensor_parallel_within_one_host_without_data_parallel_attention():
    assert fused("sglang", "deepseek-v3", "b200", tp=1) == 0
    assert fused("sglang", "deepseek-v3", "b200", attention_dp=8) == 0
    # a GB200 NVL72's NVLink domain spans 72 GPUs on hosts of 4: eight are two hosts, which SGLang does not fuse over
    assert fused("sglang", "deepseek-v3", "gb200", tp=8) == 0
    assert fused("sglang", "deepseek-v3", "gb200", tp=4) == 2048
    h20 = resolve_hardware("h100-sxm").model_copy(update={"id": "h20", "name": "NVIDIA H20 96GB"})
    assert fused("sglang", "deepseek-v3", None, hw=h20) == 0  # SGLang leaves the H20 out, not the H200
    h200 = h20.model_copy(update={"id": "h200-sxm", "name": "NVIDIA H200 SXM"})
    assert fused("sglang", "deepseek-v3", None, hw=h200) == 2048
    # pipeline stages count towards the host too
    assert fused_allreduce_tokens("sglang", resolve_model("deepseek-v3"), resolve_hardware("gb200"), 4, 2, 1) == 0


def test_sglang_keys_on_the_architecture_the_model_on_its_type():
    spec = resolve_model("deepseek-v3")
    kimi = spec.model_copy(update={"model_type": "kimi_k2"})  # Kimi-K2 (and K2.5's text model): DeepseekV3ForCausalLM
    qwen35 = resolve_model("qwen3-235b-a22b").model_copy(update={"model_type": "qwen3_5_moe_text"})
    b200 = resolve_hardware("b200")
    assert fused_allreduce_tokens("sglang==0.5.6", kimi, b200, 8) == 2048
    assert fused_allreduce_tokens("sglang==0.5.9", qwen35, b200, 8) == 0  # Qwen3.5 from 0.5.10
    assert fused_allreduce_tokens("sglang==0.5.10", qwen35, b200, 8) == 2048


def setup(engine="sglang==0.5.6", model="deepseek-v3", hardware="b200"):
    request = ProfileRequest(model=model, hardware=hardware, engine=engine, num_devices=8, tensor_parallel=8,
                             dtype="fp8")
    return setup_for_request(request, resolve_model(model), resolve_hardware(hardware))


def test_a_fused_step_saves_the_runtimes_time_for_each_fused_all_reduce():
    s = setup()
    saving = profiles.efficiency_table()["runtimes"]["serving"]["gpu"]["allreduce_fusion_saving_s"]
    assert s.fused_allreduce_tokens == 2048 and s.eff.allreduce_fusion_saving_s == saving > 0
    unfused = replace(s, fused_allreduce_tokens=0)
    layers = s.spec.num_layers
    for batch in (1, 16, 256):  # every layer's two all-reduces but the last layer's after its MLP
        assert decode_step(unfused, batch, 1000).overhead_s - decode_step(s, batch, 1000).overhead_s == \
            pytest.approx((2 * layers - 1) * saving)
    assert prefill_step(s, 1, 2048).overhead_s < prefill_step(unfused, 1, 2048).overhead_s
    assert prefill_step(s, 1, 4096).overhead_s == prefill_step(unfused, 1, 4096).overhead_s  # too long to fuse
    # a step without tokens fuses nothing, whether the deployment fuses or not
    for setup_ in (s, unfused):
        no_saving = replace(setup_, eff=setup_.eff.model_copy(update={"allreduce_fusion_saving_s": 0.0}))
        assert decode_step(setup_, 0, 1000).overhead_s == decode_step(no_saving, 0, 1000).overhead_s
    # the 0.5.3 release did not fuse DeepSeek's
    assert setup("sglang==0.5.3").fused_allreduce_tokens == 0
