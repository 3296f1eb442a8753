"""The analytic model against hand-computed figures and its own invariants."""

from __future__ import annotations

import json
from dataclasses import replace
from unittest.mock import patch

import optiplan
import pytest
from optiplan.planner.analytic.kvcache import kv_cache_bytes
from optiplan.planner.analytic.memory import cache_bytes_per_device, fits, max_batch, max_context
from optiplan.planner.analytic.params import expected_experts_touched, param_counts
from optiplan.planner.analytic.profile import setup_for_request
from optiplan.planner.analytic.requests import running_cap
from optiplan.planner.analytic.steps import (
    decode_step,
    kv_bytes_per_device,
    matmul_efficiency,
    matmul_flops,
    prefill_step,
)
from optiplan.planner.analytic.weight_reads import weights_read_bytes
from optiplan.planner.catalog.engines import engine_profile, engine_table
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.catalog.served import WINDOW_SPLITS, engine_window_pools
from optiplan.planner.errors import RequestError
from optiplan.planner.schema import ProfileRequest

KIB = 1024


def setup(model="llama-3.1-8b", hardware="h100-sxm", **kw):
    request = ProfileRequest(model=model, hardware=hardware, **kw)
    return setup_for_request(request, resolve_model(model), resolve_hardware(hardware))


def test_kv_per_token_matches_reference_figures():
    # 2 (K and V) x layers x KV heads x head_dim x 2 bytes
    assert optiplan.profile("llama-3.1-8b").memory.kv_cache_bytes_per_token == 128 * KIB
    assert optiplan.profile("llama-3.1-70b").memory.kv_cache_bytes_per_token == 320 * KIB
    assert optiplan.profile("qwen2.5-7b").memory.kv_cache_bytes_per_token == 56 * KIB
    # MLA: the latent and rope key, 61 x (512 + 64) x 2 bytes, about 68.6 KiB
    assert optiplan.profile("deepseek-v3", "h200-sxm", num_devices=8, dtype="fp8").memory.kv_cache_bytes_per_token \
        == 61 * 576 * 2


def test_sliding_windows_cap_the_cache():
    mistral = resolve_model("mistral-7b-v0.1")
    assert kv_cache_bytes(mistral, 32768) == kv_cache_bytes(mistral, 4096) == 4096 * 128 * KIB
    gemma = resolve_model("gemma-2-9b")  # 21 full layers, 21 layers capped at 4096
    per_layer_token = 2 * 8 * 256 * 2
    assert kv_cache_bytes(gemma, 8192) == 21 * per_layer_token * (8192 + 4096)
    # transformers keeps window - 1 tokens between steps
    assert kv_cache_bytes(mistral, 8000, layout="transformers") == 4095 * 128 * KIB


def test_window_pools_in_equal_shares_hold_as_many_sequences_as_full_attention():
    """TensorRT-LLM gives each window size a pool, the same share of the cache each: gpt-oss-20b (12 full layers, 12
    windowed to 128 tokens) fits as many sequences as if all 24 held the whole context; vLLM's shared pool fits more.
    A decode step still reads only the windows, and a model of one window size is the same in both."""
    context = 8192
    trt = setup("gpt-oss-20b", "h200-sxm", engine="trtllm", context=context)
    vllm = setup("gpt-oss-20b", "h200-sxm", engine="vllm", context=context)
    assert (trt.window_pools[0], vllm.window_pools[0]) == ("equal", "shared")
    per_layer_token = 2 * 8 * 64 * 2  # keys and values, 8 KV heads of 64, bf16
    held = 12 * per_layer_token * (context + 128)  # 12 full layers and 12 of 128 tokens
    assert kv_bytes_per_device(trt, context) == kv_bytes_per_device(vllm, context) == held
    assert cache_bytes_per_device(vllm, context) == held
    assert cache_bytes_per_device(trt, context) == 2 * 12 * per_layer_token * context
    assert max_batch(trt, context, 1024) < max_batch(vllm, context, 1024)
    # the profile shows the room beside what a sequence holds, and its total per device counts the room
    shown = optiplan.profile("gpt-oss-20b", "h200-sxm", engine="trtllm", context=context, batch=8).memory
    assert (shown.kv_cache_bytes, shown.kv_cache_pool_bytes) == (held, 2 * 12 * per_layer_token * context)
    assert optiplan.profile("gpt-oss-20b", "h200-sxm", engine="vllm", context=context).memory.kv_cache_pool_bytes \
        is None
    llama = setup("llama-3.1-8b", engine="trtllm", context=context)
    assert cache_bytes_per_device(llama, context) == kv_bytes_per_device(llama, context)


def test_llama_cpp_keeps_windows_only_of_the_architectures_it_windows():
    """llama.cpp keeps a window-sized cache only where its model code sets a window type (Gemma 2's layers); Mistral-7B-
    v0.1 converts to its llama architecture, which reads none, so every layer caches and attends over the whole
    context: a 248,000-token --ctx-size had been priced at 4,096 tokens a layer (32 GB of cache on a 24 GB card), and
    its decode at the window's reads."""
    context = 32768
    mistral = setup("mistral-7b-v0.1", engine="llama.cpp", context=context)
    assert not any(mistral.spec.layer_windows)  # priced as a model without windows: its cache and its reads
    assert cache_bytes_per_device(mistral, context) == context * 128 * KIB  # every layer, every token
    assert decode_step(mistral, 1, context).bytes_per_device > decode_step(mistral, 1, 4096).bytes_per_device \
        + 20000 * 128 * KIB
    assert cache_bytes_per_device(setup("mistral-7b-v0.1", engine="vllm", context=context), context) == \
        4096 * 128 * KIB
    gemma = setup("gemma-2-9b", engine="llama.cpp", context=8192)
    assert gemma.window_pools[0] == "shared"
    assert cache_bytes_per_device(gemma, 8192) == kv_bytes_per_device(gemma, 8192)
    assert max_batch(mistral, context, 1024) < max_batch(setup("mistral-7b-v0.1", engine="vllm", context=context),
                                                         context, 1024)


def test_sglang_sizes_a_hybrid_models_window_pool_at_a_ratio_and_other_windows_whole():
    """SGLang's hybrid sliding-window models (gpt-oss) get a full layers' pool and a windowed layers' one of 0.8 times
    its tokens, sized together; any other model's token slot holds every layer (Gemma 2's windowed layers too)."""
    context = 8192
    sglang = setup("gpt-oss-20b", "h200-sxm", engine="sglang", context=context)
    assert sglang.window_pools == ("ratio", 0.8)
    per_layer_token = 2 * 8 * 64 * 2
    assert cache_bytes_per_device(sglang, context) == pytest.approx((12 + 0.8 * 12) * per_layer_token * context)
    gemma = setup("gemma-2-9b", "h100-sxm", engine="sglang", context=context)
    assert gemma.window_pools[0] == "whole"
    per_token = 42 * 2 * 8 * 256 * 2  # 42 layers, 8 KV heads of 256, bf16
    assert cache_bytes_per_device(gemma, context) == per_token * context > kv_bytes_per_device(gemma, context)
    assert cache_bytes_per_device(gemma, 2048) == kv_bytes_per_device(gemma, 2048)  # within the window
    # every engine profile's rule names a split the model knows; a misspelt one is refused, not read as another
    for engine in engine_table():
        for model_type in ("gpt_oss", "gemma2"):
            assert engine_window_pools(engine, model_type)[0] in WINDOW_SPLITS
    with patch.dict(engine_profile("trtllm"), {"window_pools": {"split": "equals"}}), \
            pytest.raises(ValueError, match="split 'equals' is none of shared, equal, ratio, whole"):
        engine_window_pools("trtllm", "gpt_oss")
    # its request pool is sized from the cache's tokens before they are split among the pools, as if one pool
    big = setup("gpt-oss-120b", "h200-sxm", engine="sglang", context=context)
    one_pool = replace(big, window_pools=("shared", 1.0))
    assert 2048 < running_cap(big) == running_cap(one_pool) < 4096  # between the pool's bounds: set by the tokens
    assert max_batch(big, 1, 1) < max_batch(one_pool, 1, 1)
    # a pipeline stage of windowed layers alone keeps its own pool: what it holds
    staged = setup("gpt-oss-20b", "h200-sxm", engine="sglang", context=context, num_devices=2, pipeline_parallel=2)
    for stage in range(2):
        assert cache_bytes_per_device(staged, context, stage) > kv_bytes_per_device(staged, context, stage)


def test_kv_dtype_and_quantized_kv_overhead():
    spec = resolve_model("llama-3.1-8b")
    assert kv_cache_bytes(spec, 1000, "fp8") == kv_cache_bytes(spec, 1000) / 2
    int4 = kv_cache_bytes(spec, 1000, "int4")  # 4 bits + 32 bits of scale and zero per 64 values
    assert int4 == pytest.approx(kv_cache_bytes(spec, 1000) * 4.5 / 16)


def test_weight_bytes_with_group_scales():
    counts = param_counts(resolve_model("llama-3.1-8b"))
    p = optiplan.profile("llama-3.1-8b", dtype="int4")
    expected = counts.linear * (4 + 20 / 128) / 8 + (counts.total - counts.linear) * 2
    assert p.memory.weights_bytes == pytest.approx(expected, rel=1e-9)
    g32 = optiplan.profile("llama-3.1-8b", dtype="int4", group_size=32).memory.weights_bytes
    assert g32 > p.memory.weights_bytes
    assert optiplan.profile("llama-3.1-8b", dtype="fp32").memory.weights_bytes == counts.total * 4


def test_tensor_parallel_splits_weights_and_kv():
    one = optiplan.profile("llama-3.1-70b", "h100-sxm", num_devices=1, context=2048)
    four = optiplan.profile("llama-3.1-70b", "h100-sxm", num_devices=4, context=2048)
    w1 = one.memory.per_device_bytes - one.memory.kv_cache_batch_bytes - one.memory.activation_peak_bytes
    w4 = four.memory.per_device_bytes - four.memory.activation_peak_bytes
    assert w4 < w1 / 3.5
    assert four.latency.allreduce_ms_per_layer > 0 and one.latency.allreduce_ms_per_layer == 0
    assert four.latency.tpot_ms < one.latency.tpot_ms


def test_few_kv_heads_are_replicated_across_tensor_parallel(tmp_path):
    cfg = {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 4096, "num_hidden_layers": 4,
           "num_attention_heads": 16, "num_key_value_heads": 2, "vocab_size": 1000, "max_position_embeddings": 4096}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    assert setup(str(path), num_devices=4).kv_share == 0.5  # each device keeps one of the two heads
    assert setup(str(path), num_devices=2).kv_share == 0.5
    assert setup("deepseek-v3", "h200-sxm", num_devices=8, dtype="fp8").kv_share == 1.0  # latent replicated


def test_interconnect_matters():
    nvlink = optiplan.profile("llama-3.1-8b", "h100-sxm", num_devices=4)
    pcie = optiplan.profile("llama-3.1-8b", "h100-pcie", num_devices=4)
    assert pcie.latency.communication_share > nvlink.latency.communication_share


def test_decode_is_bandwidth_bound_at_batch_one_and_intensity_grows_with_batch():
    s = setup()
    one, many = decode_step(s, 1, 1024), decode_step(s, 256, 1024)
    assert one.bound == "memory"
    assert one.flops / one.bytes_per_device < 2.5  # ~2 FLOP per weight byte at bf16
    assert many.flops / many.bytes_per_device > 50 * one.flops / one.bytes_per_device
    p = optiplan.profile("llama-3.1-8b", context=4096)
    assert p.compute.prefill_bound == "compute" and p.compute.decode_bound == "memory"


def test_moe_decode_reads_only_routed_experts():
    s = setup("mixtral-8x7b", num_devices=2)
    counts = s.counts
    one = weights_read_bytes(s, 1) * s.tp
    assert one == pytest.approx(counts.active * 2, rel=0.02)  # batch 1 reads the active parameters
    assert weights_read_bytes(s, 512) * s.tp == pytest.approx(counts.total * 2, rel=0.01)
    assert expected_experts_touched(8, 2, 1) == pytest.approx(2)
    assert expected_experts_touched(256, 8, 10_000) == pytest.approx(256)


def test_transformers_runs_llama_4s_experts_densely_and_the_serving_engines_do_not():
    """transformers' Llama 4 takes no experts implementation: every token goes through all of a layer's experts, each
    weighted by its router score (Llama4TextMoe repeats the input per expert; Llama4TextExperts is one bmm over all of
    them). Under its engine (or a plan without one) a step reads and computes every expert; vLLM's reads and computes
    a token's top-1 of 16. Mixtral, whose experts transformers runs through grouped_mm, reads its top-2 either way."""
    dense, routed = (setup("llama-4-scout", engine=e) for e in ("transformers", "vllm"))
    counts = dense.counts
    assert dense.dense_experts and not routed.dense_experts
    unrouted = (counts.num_experts - counts.top_k) * counts.num_moe_layers * counts.layer.expert_linear
    assert weights_read_bytes(dense, 1) == pytest.approx(counts.total * 2, rel=0.01)
    assert weights_read_bytes(dense, 1) - weights_read_bytes(routed, 1) == pytest.approx(2 * unrouted)
    assert matmul_flops(dense, 1, 0) - matmul_flops(routed, 1, 0) == pytest.approx(2 * unrouted)
    assert not setup("mixtral-8x7b", engine="transformers").dense_experts


@pytest.mark.parametrize("dtype, measured_tok_s", [("bf16", 104.9), ("int8", 155.6), ("int4", 196.8)])
def test_gpt_fast_anchors(dtype, measured_tok_s):
    """gpt-fast, Llama-2-7B on an A100-80GB at batch 1 (profiles/efficiency.yaml): the composed model (bytes per
    format, its own weight-only kernels' bandwidth efficiency, int4 in its default groups of 32, the compiled step's
    overheads) lands within 15% of the measurement."""
    p = optiplan.profile("llama-2-7b", "a100-80gb-sxm", dtype=dtype, context=256, engine="gpt-fast")
    assert p.throughput.tokens_per_s == pytest.approx(measured_tok_s, rel=0.15)


def test_compute_dtype_follows_weights_and_activations():
    assert setup(dtype="int4").compute_dtype == "bf16"  # weight-only: dequantized to 16 bits
    assert setup(dtype="int8").compute_dtype == "bf16"
    assert setup(dtype="int8", activations="int8").compute_dtype == "int8"
    assert setup(dtype="fp8").compute_dtype == "fp8"
    assert setup(hardware="t4", dtype="fp16", context=1024).compute_dtype == "fp16"
    w8a8 = optiplan.profile("llama-3.1-8b", dtype="int8", activations="int8", context=4096)
    w8a16 = optiplan.profile("llama-3.1-8b", dtype="int8", context=4096)
    assert w8a8.latency.ttft_ms < w8a16.latency.ttft_ms
    # an 8-bit matrix product takes 8-bit (or packed 4-bit) weights: 16-bit weights with int8 activations were once
    # profiled as an int8 GEMM, 32% faster to the first token
    assert setup(dtype="int4", activations="fp8").compute_dtype == "fp8"  # W4A8
    with pytest.raises(RequestError, match="int8 activations run int8 matrix products"):
        setup(dtype="bf16", activations="int8")
    with pytest.raises(RequestError, match="take fp4 weights"):
        setup(dtype="fp8", activations="fp4")
    for weights, acts in (("fp8", "int8"), ("int8", "fp8"), ("nf4", "int8")):  # no such GEMM either
        with pytest.raises(RequestError, match=f"{acts} activations run"):
            setup(dtype=weights, activations=acts)


def test_eager_attention_materialises_scores():
    me = optiplan.profile("llama-3.1-8b", context=8192, engine="transformers")
    eager = optiplan.profile("llama-3.1-8b", context=8192, engine="transformers", attention="eager")
    scores = 32 * 8192 * 8192 * (2 * 2 + 4)  # heads x P x P x (bf16 scores, bf16 probs, fp32 softmax)
    assert eager.memory.activation_peak_bytes - me.memory.activation_peak_bytes == scores


def test_transformers_runs_a_model_it_has_no_sdpa_for_eagerly():
    """transformers has no SDPA attention for Gemma 2 and falls back to eager attention: under its engine, a profile
    that names no kernel is of eager attention (the score matrix in its activations), as its report says; one that
    names a kernel (a model loaded with attn_implementation) is of that kernel, and a serving engine is not
    affected."""
    default = optiplan.profile("gemma-2-9b", context=8192, engine="transformers")
    named = optiplan.profile("gemma-2-9b", context=8192, engine="transformers", attention="memory-efficient")
    assert default.request.attention == "eager" and named.request.attention == "memory-efficient"
    assert default.memory.activation_peak_bytes > 5 * named.memory.activation_peak_bytes
    assert optiplan.profile("gemma-2-9b", context=8192, engine="vllm").request.attention == "memory-efficient"
    assert optiplan.profile("llama-3.1-8b", context=8192, engine="transformers").request.attention == \
        "memory-efficient"
    # a request that went through JSON, its default written out, is the same request (the service's round trip)
    from optiplan.planner.analytic.profile import profile

    request = ProfileRequest(model="gemma-2-9b", hardware="h100-sxm", engine="transformers", context=8192)
    again = ProfileRequest.model_validate_json(request.model_dump_json())
    assert profile(again).request.attention == profile(request).request.attention == "eager"
    with pytest.raises(RequestError, match="no SDPA attention for gemma2"):
        optiplan.profile("gemma-2-9b", context=8192, engine="transformers", attention="sdpa")


def test_chunked_prefill_bounds_activations():
    serving = optiplan.profile("llama-3.1-8b", context=32768, batch=4)
    eager_generate = optiplan.profile("llama-3.1-8b", context=32768, batch=4, engine="transformers")
    assert serving.memory.activation_peak_bytes < eager_generate.memory.activation_peak_bytes / 10


def test_limits_are_consistent_with_fit():
    s = setup("llama-3.1-8b", "l4", context=8192)
    b = max_batch(s, 8192, 8192)
    assert b > 0 and fits(s, b, 8192, 8192) and not fits(s, b + 1, 8192, 8192)
    n = max_context(s, 8)
    assert fits(s, 8, n, n) and not fits(s, 8, n + 1, n + 1)
    assert max_context(s, 16) < n
    big = setup("llama-3.1-8b", "h200-sxm")
    assert max_context(big, 1) == 131072  # capped at the model's maximum


def test_pipeline_parallel_splits_layers():
    s = setup("llama-3.1-70b", num_devices=4, pipeline_parallel=2)
    assert s.stages == ((0, 40), (40, 80)) and s.tp == 2
    p = optiplan.profile("llama-3.1-70b", num_devices=4, pipeline_parallel=2, context=2048)
    assert p.fits and p.hardware.pipeline_parallel == 2


def test_throughput_curve_and_prefill_scaling():
    p = optiplan.profile("llama-3.1-8b", "a100-80gb-sxm", context=2048, batch=8)
    tps = [pt.tokens_per_s for pt in p.throughput.curve]
    assert tps == sorted(tps) and p.throughput.curve[0].batch == 1
    assert any(pt.batch == 8 for pt in p.throughput.curve)
    short = optiplan.profile("llama-3.1-8b", context=2048).latency.ttft_ms
    long = optiplan.profile("llama-3.1-8b", context=8192).latency.ttft_ms
    assert 4 < long / short < 5  # linear matmuls plus a quadratic attention share


def test_profile_json_round_trips():
    from optiplan.planner.schema import Profile

    p = optiplan.profile("qwen3-30b-a3b", "h100-sxm", context=4096, batch=4)
    assert Profile.model_validate_json(p.model_dump_json()) == p


def test_prefix_cache_hit_still_attends_to_the_prefix():
    from optiplan.planner.analytic.steps import prefill_attention_flops, prefill_step

    s = setup(context=8192)
    full = prefill_attention_flops(s, 1, 8192)
    hit = prefill_attention_flops(s, 1, 8192, cached=6144)
    # pairs of the last 2048 queries: 2048 x 6144 with the prefix plus 2048 x 2049 / 2 among themselves
    dims = 2 * 32 * (128 + 128) * 32
    assert hit == dims * (2048 * 6144 + 2048 * 2049 / 2)
    assert full / 4 < hit < full
    assert prefill_step(s, 1, 8192, cached=6144).time_s < prefill_step(s, 1, 8192).time_s


def test_allreduce_latency_grows_with_log2_of_the_group():
    from optiplan.planner.analytic.steps import allreduce_s

    small = 16 * 1024
    two, eight = setup(num_devices=2), setup(num_devices=8)
    link = two.hw.interconnect
    assert allreduce_s(two, small) == pytest.approx(small / (link.bandwidth_gbps / 2 * 1e9 * 0.8) + 1 * 3e-6)
    assert allreduce_s(eight, small) == pytest.approx(2 * 7 / 8 * small / (link.bandwidth_gbps / 2 * 1e9 * 0.8) + 3 * 3e-6)


def test_an_allreduce_wider_than_a_node_crosses_it_at_the_scale_out_rate():
    from optiplan.planner.analytic.steps import allreduce_s

    # 16 H100s in two nodes: NVLink inside each node, then each device's eighth of the message over its own
    # scale-out port between the two (NCCL's hierarchical all-reduce), not 16 devices on one NVLink domain
    message = 64 * 2**20
    eight, sixteen = setup(num_devices=8), setup(num_devices=16, tensor_parallel=8, pipeline_parallel=2)
    link = sixteen.hw.interconnect
    across = 2 * 1 / 2 * message / 8 / (link.scale_out_gbps * 1e9 * 0.8) + link.scale_out_latency_us * 1e-6
    assert allreduce_s(sixteen, message, 16) == pytest.approx(allreduce_s(eight, message, 8) + across)
    assert allreduce_s(sixteen, message, 16) > 1.5 * allreduce_s(eight, message, 8)  # the network is the slow part


def test_attention_cache_traffic_adds_to_compute_bound_linear_layers():
    # batch 512 on an H100: the linear layers are compute-bound, yet a longer context still costs its cache bytes,
    # because attention is its own kernel with its own roof (one roof over the step hid them under the matmuls)
    s = setup()
    bandwidth = s.hw.memory_bandwidth_bytes_per_s * s.eff.bandwidth_efficiency
    linear_compute = matmul_flops(s, 512, 512) / (s.peak_flops * matmul_efficiency(s.eff, 512))
    assert linear_compute > weights_read_bytes(s, 512) / bandwidth
    short, long = decode_step(s, 512, 64), decode_step(s, 512, 256)
    assert linear_compute > short.memory_s  # the step as a whole would still have looked compute-bound
    cache = s.hw.memory_bandwidth_bytes_per_s * (s.eff.kv_bandwidth_efficiency or s.eff.bandwidth_efficiency)
    extra_kv = (long.kv_bytes_per_device - short.kv_bytes_per_device) / cache
    assert long.time_s - short.time_s == pytest.approx(extra_kv, rel=0.05)


@pytest.mark.parametrize("dtype, activations, kv, rate", [
    ("fp8", None, None, "bf16"), ("fp8", None, "fp8", "fp8"), ("int8", "int8", None, "bf16"),
    ("bf16", None, "fp8", "bf16"), ("int4", None, None, "bf16")])
def test_attention_runs_at_the_rate_of_what_it_multiplies(dtype, activations, kv, rate):
    """QK^T and PV multiply activations by the cache: fp8 linear layers over a 16-bit cache attend at the 16-bit rate
    (DeepSeek's MLA decode, whose attention FLOPs rival its matmuls', ran at the fp8 rate before)."""
    s = setup(dtype=dtype, activations=activations, kv_dtype=kv)
    assert s.attention_peak_flops == s.hw.peak_tflops[rate] * 1e12
    # DeepSeek's fp8 layers: MLA attends at the 16-bit rate over a 16-bit cache, at the fp8 rate over an fp8 one
    mla = setup(model="deepseek-v3", hardware="h200-sxm", num_devices=8, dtype="fp8", kv_dtype=kv)
    assert mla.attention_peak_flops == mla.hw.peak_tflops["fp8" if kv == "fp8" else "bf16"] * 1e12


def test_fp8_layers_beside_a_16bit_attention_keep_its_16bit_share():
    """Attention beside fp8 linear layers runs at the 16-bit rate and reaches the 16-bit share of it: a long prompt
    prefills faster with fp8 weights than with bf16 ones (its linear layers are faster, its attention the same)."""
    from optiplan.planner.analytic.steps import prefill_step

    bf16, fp8 = setup(dtype="bf16"), setup(dtype="fp8")
    assert fp8.attention_efficiency == pytest.approx(bf16.attention_efficiency)
    assert prefill_step(fp8, 1, 65536).time_s < prefill_step(bf16, 1, 65536).time_s


def _adp(**kw):
    return setup(model="deepseek-v3", hardware="h200-sxm", num_devices=8, attention_data_parallel=8,
                 expert_parallel=8, dtype="fp8", **kw)


def test_under_attention_dp_a_lone_prompt_prefills_on_one_group():
    """Each attention group prefills its own sequences; the others wait for it at every MoE exchange. Eight prompts,
    one per group, run side by side (only their routed experts and exchanges add up); one prompt is not spread over
    the eight groups."""
    from optiplan.planner.analytic.steps import prefill_step

    s = _adp()
    one, eight = prefill_step(s, 1, 4096), prefill_step(s, 8, 4096)
    assert eight.time_s < 3 * one.time_s
    assert one.compute_s > 3 * eight.compute_s / 8
    assert one.flops == pytest.approx(eight.flops / 8)  # the work itself is that of one prompt
    # its group sends all of its tokens' top-k copies itself: as much per device as eight groups with one prompt each
    assert one.comm_s == pytest.approx(eight.comm_s)
    # and the intensity reported is the busy device's, not the even average's
    assert one.intensity(s.shards) > 4 * one.flops / s.shards / one.bytes_per_device


def test_under_attention_dp_a_device_holds_its_groups_sequences():
    """Activations and caches per device are those of its group's sequences: a batch of 1024 over 8 groups moves
    what 128 sequences do; a lone sequence's whole cache sits on its group."""
    from optiplan.planner.analytic.steps import activation_traffic_bytes, kv_bytes_per_device

    s = _adp()
    assert activation_traffic_bytes(s, 1024) == pytest.approx(
        128 * s.act_bytes * s.spec.num_layers * (6 * s.spec.hidden_size + 3 * 8 * 2048 + 3 * 2048))
    lone = decode_step(s, 1, 32768)
    assert lone.kv_bytes_per_device == pytest.approx(kv_bytes_per_device(s, 32768) * 8, rel=0.01)
    assert decode_step(s, 8, 32768).kv_bytes_per_device == pytest.approx(lone.kv_bytes_per_device, rel=0.01)
    # memory: a lone prompt's activations and cache sit whole on its group
    from optiplan.planner.analytic.memory import activation_peak_bytes, fits, whole_sequences

    assert activation_peak_bytes(s, 1, 8192) == activation_peak_bytes(s, 8, 8192)
    assert whole_sequences(s, 1) == whole_sequences(s, 8) == 8 and whole_sequences(s, 9) == 16
    assert fits(s, 1, 32768, 32768) == fits(s, 8, 32768, 32768)


def test_a_step_is_bound_by_the_kernels_that_take_most_of_it():
    """llama.cpp on a CPU at batch 32: the linear layers' GEMMs are compute-bound and take most of the step, while
    the caches' reads are memory-bound; the step is compute-bound although its FLOPs over all its bytes fall below
    the ridge (which once labelled it memory-bound, and weight quantization 'no gain')."""
    s = setup(hardware="epyc-9004", model="llama-3.2-3b", engine="llama.cpp", context=2048, batch=32)
    step = decode_step(s, 32, 2048)
    assert step.flops / s.shards / step.bytes_per_device < s.ridge
    assert step.bound == "compute" and step.compute_bound_s > step.roofline_s / 2
    # a single sequence reads the weights for one token: memory-bound
    assert decode_step(s, 1, 2048).bound == "memory"


def test_llama_cpp_quantized_weights_run_int8_dot_products():
    """GGUF Q4_K / Q8_0 weights multiply 8-bit quantized activations (ggml's vec_dot_q4_K_q8_K, MMQ on GPUs): the
    matrix products run at the int8 rate where the device has one, so a quantized prompt prefills faster on a CPU."""
    int4 = setup(hardware="epyc-9004", model="llama-3.2-3b", engine="llama.cpp", dtype="int4", context=2048)
    bf16 = setup(hardware="epyc-9004", model="llama-3.2-3b", engine="llama.cpp", dtype="bf16", context=2048)
    assert int4.compute_dtype == "int8" and bf16.compute_dtype == "bf16"
    assert prefill_step(int4, 1, 2048).time_s < 0.6 * prefill_step(bf16, 1, 2048).time_s
