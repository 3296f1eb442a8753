"""gpt-fast's own formats and transients (profiles/engines/gpt-fast.yaml) against what torchao and gpt-fast print and
what torch allocates here."""

from __future__ import annotations

import pytest
from optiplan.planner.analytic.memory import decode_attention_bytes
from optiplan.planner.analytic.profile import setup_for_request
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.schema import ProfileRequest


def setup(model: str, **kw):
    request = ProfileRequest(model=model, hardware="a100-80gb-sxm", engine="gpt-fast", context=256, **kw)
    return setup_for_request(request, resolve_model(model), resolve_hardware("a100-80gb-sxm"))


@pytest.mark.parametrize("model, dtype, group, model_size_gb", [
    ("llama-2-7b", "bf16", None, 13.21), ("llama-2-7b", "int4", 64, 3.74),
    ("llama-3.1-8b", "bf16", None, 15.01), ("llama-3.1-8b", "int8", None, 7.52), ("llama-3.1-8b", "int4", 64, 4.22)])
def test_weights_match_torchao_model_size(model, dtype, group, model_size_gb):
    """torchao's quantization README prints each model's "Model Size (GB)" without the embedding: every linear layer
    in the format, the head included, and int4 with tinygemm's bf16 scale and zero per group."""
    s = setup(model, dtype=dtype, group_size=group)
    without_embedding = s.stage_weights[0] - s.counts.embedding * s.embedding_bytes
    assert without_embedding / 1e9 == pytest.approx(model_size_gb, rel=0.01)


def test_int4_groups_default_to_gpt_fast_quantizer():
    """quantize.py's --groupsize defaults to 32: 4 bits and a bf16 pair per 32 weights, 5 bits per weight."""
    assert setup("llama-2-7b", dtype="int4").bits_per_weight == 5.0
    assert setup("llama-2-7b", dtype="int4", group_size=128).bits_per_weight == 4.25
    serving = setup_for_request(ProfileRequest(model="llama-2-7b", hardware="a100-80gb-sxm", dtype="int4"),
                                resolve_model("llama-2-7b"), resolve_hardware("a100-80gb-sxm"))
    assert serving.weights.output_bits is None and serving.bits_per_weight < 4.2  # g128, 4-bit zeros, 16-bit head


def test_math_decode_attention_matches_torch_allocations():
    """The decode transient of gpt-fast's attention (K and V repeated to every query head, then torch SDPA's math
    backend) against the peak that torch's profiler counts for the same calls on this CPU, one layer of
    Llama-3-8B's shape in bf16 at 2048 cached tokens."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch.nn.attention", reason="torch.nn.attention.sdpa_kernel came in torch 2.3")
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.profiler import ProfilerActivity, profile

    context, heads, kv_heads, head_dim = 2048, 32, 8, 128
    q = torch.randn(1, heads, 1, head_dim, dtype=torch.bfloat16)
    k_cache = torch.randn(1, kv_heads, context, head_dim, dtype=torch.bfloat16)
    v_cache = torch.randn_like(k_cache)
    mask = torch.ones(1, 1, 1, context, dtype=torch.bool)

    def attend():
        k = k_cache.repeat_interleave(heads // kv_heads, dim=1)
        v = v_cache.repeat_interleave(heads // kv_heads, dim=1)
        with sdpa_kernel(SDPBackend.MATH):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    attend()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        attend()
    # an op's own allocations count from its start; what it frees inside (its negative self usage) from its end;
    # frees after it come as "[memory]" events
    deltas = []
    for e in prof.events():
        change = e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage
        deltas.append((e.time_range.start if change > 0 or e.name == "[memory]" else e.time_range.end, change))
    live = peak = 0
    for _, change in sorted(deltas):
        live += change
        peak = max(peak, live)
    predicted = decode_attention_bytes(setup("llama-3.1-8b"), batch=1, context=context)
    assert predicted == context * 64 * 1024
    assert peak == pytest.approx(predicted, rel=0.03)


def test_only_engines_with_math_decode_hold_the_transient():
    assert decode_attention_bytes(setup("llama-3.1-8b"), 1, 131072) == 131072 * 64 * 1024
    vllm = ProfileRequest(model="llama-3.1-8b", hardware="a100-80gb-sxm", engine="vllm", context=131072)
    s = setup_for_request(vllm, resolve_model("llama-3.1-8b"), resolve_hardware("a100-80gb-sxm"))
    assert decode_attention_bytes(s, 1, 131072) == 0


def test_the_largest_batch_pays_for_its_cache_copies():
    """Each sequence brings its K/V copies to every decode step (64 KiB per cached token beside the cache's own 128):
    the largest batch is the one whose caches and copies fit, one more does not."""
    from optiplan.planner.analytic.memory import fits, max_batch

    s = setup("llama-3.1-8b")
    n = max_batch(s, 32768, 16)
    assert fits(s, n, 32768, 16) and not fits(s, n + 1, 32768, 16)
    assert n == 10  # 80 GB less 16 GB of weights and the 1 GB mask: 10 x (4.3 GB of cache + 2.1 GB of copies)


@pytest.mark.parametrize("attention_dp", [2, 8])
def test_the_largest_batch_counts_whole_sequences_per_device(attention_dp):
    """With attention data parallel a device copies the caches of its own sequences, a whole number of them."""
    from optiplan.planner.analytic.memory import fits, max_batch

    request = ProfileRequest(model="mixtral-8x7b", hardware="a100-80gb-sxm", num_devices=8, engine="gpt-fast",
                             context=8192, attention_data_parallel=attention_dp, expert_parallel=8,
                             tensor_parallel=8 // attention_dp)
    s = setup_for_request(request, resolve_model("mixtral-8x7b"), resolve_hardware("a100-80gb-sxm"))
    n = max_batch(s, 8192, 16)
    assert fits(s, n, 8192, 16) and not fits(s, n + 1, 8192, 16)
