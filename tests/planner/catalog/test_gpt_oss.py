"""gpt-oss: read as its checkpoint is, its routed experts in MXFP4 beside 16-bit layers, and profiled so."""

from __future__ import annotations

import pytest
from optiplan import profiles
from optiplan.planner.analytic.params import param_counts
from optiplan.planner.analytic.profile import profile
from optiplan.planner.analytic.setup import build_setup, total_weight_bytes
from optiplan.planner.catalog.dtypes import canonical, weight_format
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.model_spec import model_spec_from_config
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.catalog.served import served_checkpoint_dtype
from optiplan.planner.schema import ProfileRequest


def test_config_is_read_as_gpt_oss():
    spec = resolve_model("gpt-oss-120b")
    assert spec.model_type == "gpt_oss" and not spec.warnings
    assert (spec.moe.num_experts, spec.moe.top_k, spec.moe.expert_intermediate_size) == (128, 4, 2880)
    assert spec.moe.router_bias and spec.moe.expert_bias and spec.attention_sinks
    assert spec.layer_windows[:4] == (128, None, 128, None) and sum(map(bool, spec.layer_windows)) == 18
    assert (spec.checkpoint_dtype, spec.checkpoint_modules) == ("mxfp4", "experts")


def test_layer_types_left_out_alternate_from_a_windowed_first_layer():
    spec = model_spec_from_config({"model_type": "gpt_oss", "hidden_size": 64, "num_hidden_layers": 4,
                                   "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
                                   "intermediate_size": 32, "max_position_embeddings": 1024}, "tiny", "test")
    assert spec.layer_windows == (128, None, 128, None)  # transformers' default sliding_window and layer_types
    assert spec.checkpoint_dtype is None  # no quantization_config: a 16-bit checkpoint


@pytest.mark.parametrize("name, total, active", [("gpt-oss-120b", 116.83e9, 5.13e9), ("gpt-oss-20b", 20.91e9, 3.61e9)])
def test_parameters_are_the_model_cards(name, total, active):
    """OpenAI's model card counts 116.83B and 20.91B, 5.13B and 3.61B active without the embedding: the routed
    experts' biases and the attention sinks are in them."""
    counts = param_counts(resolve_model(name))
    assert counts.total == pytest.approx(total, rel=5e-4)
    # the card's active count takes each token's 4 experts' biases; optiplan keeps every expert's with the small ones
    assert counts.active - counts.embedding == pytest.approx(active, rel=0.01)


def test_mxfp4_is_its_own_weight_only_format():
    assert canonical("mxfp4") == "mxfp4" and canonical("nvfp4") == "fp4"
    assert weight_format("mxfp4").bits_per_weight(2880) == 4.25  # 4 bits and an 8-bit scale per 32
    assert weight_format("fp4").bits_per_weight(2880) == 4.5  # NVFP4: an 8-bit scale per 16


def test_only_the_experts_are_4_bit():
    spec, hw = resolve_model("gpt-oss-120b"), resolve_hardware("h100-sxm")
    s = build_setup(spec, hw, weight_dtype="mxfp4", runtime="serving", layout="serving", attention="flash")
    c = param_counts(spec)
    experts = c.num_moe_layers * c.num_experts * c.layer.expert_linear
    assert s.weights.dtype == "bf16" and s.expert_weights.dtype == "mxfp4" and s.compute_dtype == "bf16"
    expected = experts * 4.25 / 8 + (c.total - experts) * 2
    assert total_weight_bytes(s) == pytest.approx(expected, rel=1e-6)
    assert total_weight_bytes(s) == pytest.approx(65.3e9, rel=0.01)  # the checkpoint's safetensors, about 65 GB
    # the experts are read by the MXFP4 MoE kernel, at its own share, the other layers at the 16-bit one
    assert s.expert_weight_share < s.eff.bandwidth_efficiency


def test_the_experts_share_is_a_factor_shown_and_settable():
    spec, hw = resolve_model("gpt-oss-120b"), resolve_hardware("h100-sxm")
    p = profile(ProfileRequest(model="gpt-oss-120b", hardware="h100-sxm", engine="vllm"))
    shown = p.efficiency.expert_bandwidth_efficiency
    assert shown is not None and shown < p.efficiency.bandwidth_efficiency
    assert "Routed experts (mxfp4) read at" in p.efficiency.source
    # a caller's factors state it, and decode reads the experts at it
    slower = build_setup(spec, hw, weight_dtype="mxfp4", runtime="serving", layout="serving", attention="flash",
                         efficiency=p.efficiency.model_copy(update={"expert_bandwidth_efficiency": shown / 2}))
    assert slower.expert_weight_share == pytest.approx(shown / 2)
    again = profile(ProfileRequest(model="gpt-oss-120b", hardware="h100-sxm", engine="vllm"),
                    p.efficiency.model_copy(update={"expert_bandwidth_efficiency": shown / 2}))
    assert again.latency.tpot_ms > 1.2 * p.latency.tpot_ms  # the experts are some 45% of a token's bytes
    # a dense model's factors do not carry it, nor keep a caller's
    dense = ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm")
    assert profile(dense).efficiency.expert_bandwidth_efficiency is None
    assert profile(dense, p.efficiency).efficiency.expert_bandwidth_efficiency is None


def test_vllm_reads_the_experts_with_its_hopper_kernel_only_on_hopper():
    """vLLM runs gpt-oss's MXFP4 experts through Triton's matmul_ogs on Hopper (triton-mxfp4-moe, its fitted share),
    Marlin's MXFP4 MoE before it (its profile's fallback: the 16-bit GEMM's share) and FlashInfer's on Blackwell,
    which keeps the devices' MXFP4 share."""
    from optiplan.planner.analytic.efficiency import weight_kernel_refusal

    def efficiency(hardware: str):
        return profile(ProfileRequest(model="gpt-oss-120b", hardware=hardware, engine="vllm")).efficiency

    assert "vllm's kernel for them, triton-mxfp4-moe" in efficiency("h100-sxm").source
    assert "vllm's kernel for them, triton-mxfp4-moe" in efficiency("h200-sxm").source
    a100 = efficiency("a100-80gb-sxm")
    assert "vllm's kernel for them, marlin" in a100.source
    gpu = profiles.efficiency_table()["device_kinds"]["gpu"]["bandwidth_efficiency"]
    assert a100.expert_bandwidth_efficiency == gpu["bf16"] > gpu["mxfp4"]
    assert "the gpu devices' share for mxfp4" in efficiency("b200").source  # Marlin's fallback is for before Hopper
    assert "runs below compute capability 10" in weight_kernel_refusal(resolve_hardware("b200"), "triton-mxfp4-moe",
                                                                       "mxfp4")
    # SGLang names no kernel of its own for them on Hopper: the devices' share
    assert "the gpu devices' share for mxfp4" in profile(ProfileRequest(model="gpt-oss-120b", hardware="h100-sxm",
                                                                        engine="sglang")).efficiency.source


def test_profile_defaults_to_the_checkpoint_where_the_device_runs_it():
    one_h100 = profile(ProfileRequest(model="gpt-oss-120b", hardware="h100-sxm"))
    assert one_h100.request.dtype == "mxfp4" and one_h100.fits
    dequantized = profile(ProfileRequest(model="gpt-oss-120b", hardware="h100-sxm", dtype="bf16"))
    assert not dequantized.fits
    assert dequantized.memory.weights_bytes > 3.5 * one_h100.memory.weights_bytes
    assert served_checkpoint_dtype(resolve_model("gpt-oss-20b"), resolve_hardware("a100-80gb-sxm")) == "mxfp4"
    assert served_checkpoint_dtype(resolve_model("gpt-oss-20b"), resolve_hardware("t4")) is None  # no bf16
    assert profile(ProfileRequest(model="gpt-oss-20b", hardware="t4")).request.dtype == "fp16"
    assert served_checkpoint_dtype(resolve_model("llama-3.1-8b"), resolve_hardware("h100-sxm")) is None


def test_mxfp4_on_a_dense_model_quantizes_every_linear_layer():
    spec, hw = resolve_model("llama-3.1-8b"), resolve_hardware("h100-sxm")
    s = build_setup(spec, hw, weight_dtype="mxfp4", runtime="serving", layout="serving", attention="flash")
    assert s.weights.dtype == "mxfp4" and s.expert_weights is None and s.compute_dtype == "bf16"
    assert s.bits_per_weight == 4.25


def test_a_plan_does_not_requantize_the_mxfp4_checkpoint():
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.schema import AdviseRequest

    a = advise(AdviseRequest(model="gpt-oss-120b", hardware="h100-sxm", workload="chat"))
    assert a.plan.predicted.weight_dtype == "mxfp4"  # the baseline is the checkpoint as published
    why = {r.technique: r.reason for r in a.rejected}
    for technique in ("weight-int4-awq", "weight-int4-gptq", "weight-int8", "weight-fp8"):
        assert not any(s.technique == technique for s in a.plan.steps)
        assert "published MXFP4 checkpoint" in why[technique], technique


def test_configs_serve_the_mxfp4_checkpoint_at_its_size():
    from optiplan.planner.deploy.render import render
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.schema import AdviseRequest

    a = advise(AdviseRequest(model="gpt-oss-120b", hardware="h100-sxm", workload="chat", engine="vllm"))
    files = render(a, "kubernetes")
    volume = next(t for name, t in files.items() if "the mxfp4 checkpoint" in t)
    assert "(83 GiB: the mxfp4 checkpoint" in volume  # 65 GB, a fifth and 10 GiB to spare; not 2 bytes a weight (272)
    small = advise(AdviseRequest(model="gpt-oss-20b", hardware="rtx-4090", workload="chat", engine="llama.cpp",
                                 concurrency=1))
    # TensorRT-LLM's equal pools per window size, named with their option
    trt = render(advise(AdviseRequest(model="gpt-oss-120b", hardware="h200-sxm", workload="chat", engine="trtllm")),
                 "trtllm")["README.md"]
    assert "2 attention window sizes a pool of the same share" in trt and "TRTLLM_WINDOW_SIZE_SHARES" in trt
    readme = render(small, "llama.cpp")["README.md"]
    assert "gpt-oss-20b-MXFP4.gguf" in readme and "routed experts stay MXFP4" in readme
    assert "--outtype bf16" in readme and "gpt-oss-20b-MXFP4.gguf MXFP4_MOE`" in readme  # the rest to Q8_0
    # a T4 has no bf16: llama.cpp keeps the experts MXFP4 there and converts the other tensors through f16
    t4 = advise(AdviseRequest(model="gpt-oss-20b", hardware="t4", workload="chat", engine="llama.cpp", concurrency=1))
    readme = render(t4, "llama.cpp")["README.md"]
    assert "routed experts stay MXFP4" in readme and "--outtype f16" in readme and "bf16" not in readme
    assert "MXFP4_MOE" in readme


def test_mxfp4_blocks_are_32_values():
    from optiplan.planner.errors import RequestError

    with pytest.raises(RequestError, match="blocks of 32"):
        profile(ProfileRequest(model="gpt-oss-20b", hardware="h100-sxm", group_size=64))
    assert profile(ProfileRequest(model="gpt-oss-20b", hardware="h100-sxm", group_size=32)).fits


def test_the_engine_decides_which_checkpoint_formats_it_serves():
    # llama.cpp keeps gpt-oss's MXFP4 experts in its GGUF on every backend (Metal, the CPU, a GPU without bf16), and
    # has no fp8 type for DeepSeek-V3's checkpoint; an engine that states no formats follows the device
    gpt_oss, deepseek = resolve_model("gpt-oss-20b"), resolve_model("deepseek-v3")
    for hw in ("m3-max", "epyc-9004", "t4"):
        assert served_checkpoint_dtype(gpt_oss, resolve_hardware(hw), "llama.cpp") == "mxfp4", hw
        assert served_checkpoint_dtype(gpt_oss, resolve_hardware(hw)) is None, hw
    assert served_checkpoint_dtype(deepseek, resolve_hardware("h200-sxm"), "llama.cpp") is None
    assert served_checkpoint_dtype(deepseek, resolve_hardware("h200-sxm"), "vllm") == "fp8"
    on_a_mac = profile(ProfileRequest(model="gpt-oss-20b", hardware="m3-max", engine="llama.cpp"))
    # its MXFP4_MOE GGUF: the experts MXFP4, every other tensor Q8_0; llama-bench lists the file at 11.27 GiB
    # (ggml-org/llama.cpp#16991), the experts' 4.25 bits and Q8_0's 8.5 come to 11.25 GiB (norms and biases aside)
    assert on_a_mac.request.dtype == "mxfp4"
    assert on_a_mac.memory.weights_bytes / 2**30 == pytest.approx(11.27, rel=0.005)
    assert profile(ProfileRequest(model="gpt-oss-20b", hardware="m3-max")).memory.weights_bytes > 40e9


def test_tgi_refuses_gpt_oss_with_its_source():
    from optiplan.planner.errors import RequestError
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.schema import AdviseRequest

    with pytest.raises(RequestError, match="tgi cannot run gpt_oss models: .*issues/3309"):
        profile(ProfileRequest(model="gpt-oss-20b", hardware="h100-sxm", engine="tgi"))
    with pytest.raises(RequestError, match="tgi cannot run gpt_oss models"):
        advise(AdviseRequest(model="gpt-oss-20b", hardware="h100-sxm", engine="tgi"))
    assert profile(ProfileRequest(model="gpt-oss-20b", hardware="h100-sxm", engine="vllm")).fits


def test_tensorrt_llm_keeps_gpt_oss_cache_16_bit_on_hopper():
    from optiplan.planner.catalog.engine_refusals import engine_step_refusal

    spec = resolve_model("gpt-oss-120b")
    why = engine_step_refusal("trtllm", resolve_hardware("h100-sxm"), spec.model_type, "kv-fp8")
    assert why and "Blackwell only" in why and "gpt_oss/README.md" in why
    assert engine_step_refusal("trtllm", resolve_hardware("b200"), spec.model_type, "kv-fp8") is None
    assert engine_step_refusal("trtllm", resolve_hardware("h100-sxm"), "llama", "kv-fp8") is None
    assert engine_step_refusal("vllm", resolve_hardware("h100-sxm"), spec.model_type, "kv-fp8") is None
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.schema import AdviseRequest

    a = advise(AdviseRequest(model="gpt-oss-120b", hardware="h100-sxm", engine="trtllm", workload="batch-offline",
                             concurrency=64))
    assert "kv-fp8" not in [s.technique for s in a.plan.steps]
    assert any(r.technique == "kv-fp8" and "Blackwell only" in r.reason for r in a.rejected)


def test_a_profile_in_a_format_the_engine_refuses_is_refused_with_the_source():
    """The README's promise: 'a plan or a profile that asks for one of those is refused with that source'. profile
    priced TensorRT-LLM's gpt-oss cache in FP8 on Hopper (twice the sequences it holds) and TGI's nf4 Mixtral as a
    sparse MoE, which TGI runs densely."""
    from optiplan.planner.errors import RequestError

    with pytest.raises(RequestError, match="Blackwell only .*gpt_oss/README.md"):
        profile(ProfileRequest(model="gpt-oss-120b", hardware="h100-sxm", engine="trtllm", kv_dtype="fp8"))
    assert profile(ProfileRequest(model="gpt-oss-120b", hardware="b200", engine="trtllm", kv_dtype="fp8")).fits
    with pytest.raises(RequestError, match="dense MoE layer"):
        profile(ProfileRequest(model="mixtral-8x7b", hardware="h100-sxm", num_devices=2, engine="tgi", dtype="nf4"))
    with pytest.raises(RequestError, match="dense MoE layer"):  # int4: TGI's GPTQ and AWQ MoE kernel needs sm_80
        profile(ProfileRequest(model="mixtral-8x7b", hardware="t4", num_devices=4, engine="tgi", dtype="int4"))
    assert profile(ProfileRequest(model="mixtral-8x7b", hardware="h100-sxm", num_devices=2, engine="tgi",
                                  dtype="int4")).fits
