"""The analytic model on state-space and hybrid models: the cache in the profile's memory breakdown,
decode cost of recurrent layers constant in context, and the limits that follow."""

from __future__ import annotations

import pytest
from optiplan.planner.analytic.kvcache import attention_kv_bytes, kv_cache_bytes
from optiplan.planner.analytic.memory import max_batch, max_context, per_device_bytes
from optiplan.planner.analytic.profile import profile_setup, setup_for_request
from optiplan.planner.analytic.steps import (
    decode_attention_flops,
    decode_step,
    kv_bytes_per_device,
    prefill_attention_flops,
)
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.model_spec import model_spec_from_config
from optiplan.planner.schema import ProfileRequest

JAMBA = {"model_type": "jamba", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
         "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 65536, "num_experts": 16,
         "max_position_embeddings": 262144}
MAMBA2 = {"model_type": "mamba2", "hidden_size": 4096, "num_hidden_layers": 64, "num_heads": 128, "head_dim": 64,
          "n_groups": 8, "state_size": 128, "vocab_size": 32768}
LLAMA = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
         "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256, "max_position_embeddings": 262144}


def _setup(fields: dict, hardware: str = "h200-sxm", **kw):
    spec = model_spec_from_config(fields, fields["model_type"], "test")
    request = ProfileRequest(model="x", hardware=hardware, **kw)
    return request, setup_for_request(request, spec, resolve_hardware(hardware))


def test_memory_breakdown_is_attention_kv_plus_state():
    request, s = _setup(JAMBA, context=65536, batch=2)
    memory = profile_setup(request, s).memory
    assert memory.attention_kv_bytes == attention_kv_bytes(s.spec, 65536, "bf16") == 4 * 8 * 128 * 2 * 2 * 65536
    # 28 Mamba layers, d_inner 8192: a 16-wide state and the 3 newest inputs of the 4-wide convolution, bf16
    assert memory.state_bytes == 28 * 8192 * (16 + 3) * 2
    assert memory.kv_cache_bytes == memory.attention_kv_bytes + memory.state_bytes == kv_cache_bytes(s.spec, 65536)
    assert memory.kv_cache_batch_bytes == 2 * memory.kv_cache_bytes
    assert memory.kv_cache_bytes_per_token == 4 * 8 * 128 * 2 * 2  # the 4 attention layers only
    dense = profile_setup(*_setup(LLAMA, context=65536)).memory
    assert dense.attention_kv_bytes is None and dense.state_bytes is None
    assert "state_bytes" not in dense.model_dump_json()


def test_pure_ssm_decode_is_constant_in_context():
    _, s = _setup(MAMBA2)
    short, long = decode_step(s, 8, 1024), decode_step(s, 8, 1_000_000)
    assert short.time_s == long.time_s and short.bytes_per_device == long.bytes_per_device
    assert decode_attention_flops(s, 1, 1024) == decode_attention_flops(s, 1, 1_000_000) > 0
    # prefill's scan grows linearly with the prompt, not quadratically
    assert prefill_attention_flops(s, 1, 20000) == pytest.approx(2 * prefill_attention_flops(s, 1, 10000))


def test_hybrid_decode_grows_only_with_its_attention_layers():
    _, hybrid = _setup(JAMBA)
    _, dense = _setup(LLAMA)
    grow = decode_step(hybrid, 1, 131072).kv_bytes_per_device - decode_step(hybrid, 1, 1024).kv_bytes_per_device
    grow_dense = decode_step(dense, 1, 131072).kv_bytes_per_device - decode_step(dense, 1, 1024).kv_bytes_per_device
    assert grow == pytest.approx(grow_dense * 4 / 32)  # 4 of 32 layers attend, with Llama-3-8B's KV shape


def test_limits_follow_the_small_cache():
    request, s = _setup(MAMBA2, context=1_000_000)
    assert max_context(s, 64) == s.spec.max_position_embeddings  # nothing grows: any context fits
    _, hybrid = _setup(JAMBA, context=131072)
    _, dense = _setup(LLAMA, context=131072)
    per_seq = kv_bytes_per_device(hybrid, 131072)
    assert per_seq < kv_bytes_per_device(dense, 131072) / 7.9  # 4 attention layers of 32, plus a small state
    free = hybrid.hw.memory_bytes - hybrid.hw.runtime_overhead_bytes - per_device_bytes(hybrid, 1, 131072, 131072)[0] \
        - per_device_bytes(hybrid, 1, 131072, 131072)[2]
    assert max_batch(hybrid, 131072, 131072) == int(free // per_seq) == 21


def test_fp8_kv_cache_leaves_the_state_at_16_bits():
    request, s = _setup(JAMBA, context=8192, kv_dtype="fp8")
    memory = profile_setup(request, s).memory
    assert memory.state_bytes == 28 * 8192 * (16 + 3) * 2
    assert memory.attention_kv_bytes == 4 * 8 * 128 * 2 * 8192


def test_tensor_parallel_splits_a_pure_ssm_and_its_state():
    _, one = _setup(MAMBA2, hardware="h100-sxm")
    _, two = _setup(MAMBA2, hardware="h100-sxm", num_devices=2)  # 128 Mamba heads; no attention head to divide
    assert two.tp == 2 and kv_bytes_per_device(two, 4096) == kv_bytes_per_device(one, 4096) / 2


def test_planner_rejects_cache_techniques_for_a_pure_ssm():
    """Techniques that act on keys and values (KV quantization, a sliding window, attention kernels) are
    rejected for a model with no attention layer, with the reason; a hybrid keeps them for its attention."""
    from optiplan import advise

    def rejected(model, hardware, devices=1, **kw):
        doc = advise(model=model, hardware=hardware, workload="rag-long-context", engine="transformers",
                     num_devices=devices, **kw).model_dump()
        return {r["technique"]: r["reason"] for r in doc["rejected"]}, [s["technique"] for s in doc["plan"]["steps"]]

    reasons, steps = rejected("mamba-codestral-7b", "h100-sxm")
    for technique in ("kv-fp8", "kv-int8", "kv-int4", "sliding-window-sinks", "flash-attention"):
        assert "has no attention layer" in reasons[technique], (technique, reasons[technique])
        assert technique not in steps
    # eager `generate` prefills its batch's 120k-token prompts together: 4 of them on four H100s (two had held them
    # with its weights quantized, which transformers leaves in full precision for its fused experts)
    reasons, _ = rejected("jamba-1.5-mini", "h100-sxm", devices=4, concurrency=4)
    assert not any("no attention layer" in reasons.get(t, "") for t in ("kv-fp8", "kv-int8", "sliding-window-sinks"))


def test_zamba2_shared_block_is_stored_once_and_computed_at_every_use():
    from optiplan.planner.analytic.steps import matmul_flops

    fields = {"model_type": "zamba2", "hidden_size": 256, "vocab_size": 1000, "num_attention_heads": 4,
              "intermediate_size": 512, "num_mem_blocks": 2, "max_position_embeddings": 4096, "num_hidden_layers": 6,
              "layers_block_type": ["mamba", "hybrid", "mamba", "hybrid", "mamba", "hybrid"]}
    _, s = _setup(fields)
    attention = 512 * (4 + 2 * 4) * 128 + 4 * 128 * 256  # q, k, v on the 2 x hidden input; o back to hidden
    mlp = 256 * 2 * 512 + 512 * 256
    assert s.spec.extra_linear_reuse == (3 - 2) * (attention + mlp)  # three uses of two stored blocks
    assert matmul_flops(s, 1, 0) == 2 * (s.counts.active_linear + attention + mlp)
    assert s.spec.attention_layers == 3 and s.spec.head_dim == 128


def test_model_summary_names_the_layer_mix():
    import optiplan

    assert optiplan.profile("jamba-1.5-mini", "h200-sxm").model.layer_mix == "28 mamba, 4 attention"
    assert optiplan.profile("nemotron-h-8b", "h200-sxm").model.layer_mix == "24 mamba2, 24 MLP only, 4 attention"
    ssm = optiplan.profile("mamba-codestral-7b", "h200-sxm", context=500_000)
    assert ssm.model.layer_mix == "64 mamba2" and ssm.model.attention == "none"
    assert ssm.memory.attention_kv_bytes == 0 and ssm.memory.kv_cache_bytes == ssm.memory.state_bytes
    assert "layer_mix" not in optiplan.profile("llama-3.2-1b", "h200-sxm").model.model_dump_json()
