"""Llama 4's chunked local attention: a token attends to its own chunk's keys, in the parsed spec, the step costs and
TensorRT-LLM's per-query-head decode kernel before Blackwell."""

from __future__ import annotations

from dataclasses import replace

from optiplan.planner.analytic.chunked_attention import chunk_keys, chunk_pairs
from optiplan.planner.analytic.profile import setup_for_request
from optiplan.planner.analytic.steps import (
    decode_attention_flops,
    decode_step,
    kv_bytes_per_device,
    prefill_attention_flops,
)
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.model_spec import model_spec_from_config
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.schema import ProfileRequest

CHUNK = 8192


def setup(model="llama-4-scout", hardware="h200-sxm", **kw):
    request = ProfileRequest(model=model, hardware=hardware, **kw)
    return setup_for_request(request, resolve_model(model), resolve_hardware(hardware))


def spec(config):
    return model_spec_from_config(config, "tiny-llama4", "test")


def unchunked(s):
    return replace(s, spec=s.spec.model_copy(update={"layer_chunks": ()}))


def test_a_token_attends_to_its_own_chunk_up_to_itself():
    assert chunk_keys(1, CHUNK) == 1 and chunk_keys(CHUNK, CHUNK) == CHUNK
    assert chunk_keys(CHUNK + 1, CHUNK) == 1 and chunk_keys(21000, CHUNK) == 21000 - 2 * CHUNK
    # causal pairs over whole chunks and the rest: a chunk's triangle each
    assert chunk_pairs(100, CHUNK) == 100 * 101 / 2
    assert chunk_pairs(2 * CHUNK + 10, CHUNK) == 2 * CHUNK * (CHUNK + 1) / 2 + 10 * 11 / 2


def test_llama_4_chunks_three_layers_of_four():
    for name in ("llama-4-scout", "llama-4-maverick"):
        spec = resolve_model(name)
        assert len(spec.layer_chunks) == spec.num_layers == 48
        assert [c for c in spec.layer_chunks[:4]] == [CHUNK, CHUNK, CHUNK, None]  # every fourth is NoPE, global
        assert sum(1 for c in spec.layer_chunks if c) == 36
    assert resolve_model("llama-3.1-8b").layer_chunks == ()


def test_a_configs_own_layer_list_sets_the_chunked_layers():
    config = {"model_type": "llama4_text", "architectures": ["Llama4ForCausalLM"], "hidden_size": 512,
              "intermediate_size": 1024, "intermediate_size_mlp": 1024, "num_hidden_layers": 4,
              "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64, "vocab_size": 1000,
              "max_position_embeddings": 65536, "num_local_experts": 4, "num_experts_per_tok": 1,
              "interleave_moe_layer_step": 1, "attention_chunk_size": 1024}
    assert spec(config | {"no_rope_layers": [1, 0, 1, 0]}).layer_chunks == (1024, None, 1024, None)
    assert spec(config).layer_chunks == (1024, 1024, 1024, None)
    types = ["full_attention", "chunked_attention", "chunked_attention", "full_attention"]
    assert spec(config | {"layer_types": types}).layer_chunks == (None, 1024, 1024, None)


def test_past_a_chunk_the_chunked_layers_cost_their_chunk_not_the_context():
    s = setup(engine="vllm", context=21000)
    whole = unchunked(s)
    keys = 36 * (21000 - 2 * CHUNK) + 12 * 21000
    assert decode_attention_flops(s, 1, 21000) / decode_attention_flops(whole, 1, 21000) \
        == keys / (48 * 21000)
    # within the first chunk nothing changes
    assert decode_attention_flops(s, 1, 4000) == decode_attention_flops(whole, 1, 4000)
    assert prefill_attention_flops(s, 1, 4000) == prefill_attention_flops(whole, 1, 4000)
    assert prefill_attention_flops(s, 1, 20000) < 0.6 * prefill_attention_flops(whole, 1, 20000)
    # the cache keeps every key (memory as before); the step reads the chunk's
    assert kv_bytes_per_device(s, 21000) == kv_bytes_per_device(whole, 21000)
    read, read_whole = decode_step(s, 8, 21000).kv_bytes_per_device, decode_step(whole, 8, 21000).kv_bytes_per_device
    assert 0.4 < read / read_whole < 0.5  # (36 x 4,616 + 12 x 21,000) / (48 x 21,000) = 0.41, plus the new keys


def test_tensorrt_llm_before_blackwell_reads_a_chunk_once_per_query_head():
    hopper = setup(engine="trtllm", context=22000)
    assert hopper.chunk_rereads == 40 / 8  # Llama 4: 40 query heads over 8 KV heads
    # a deployment shorter than a chunk runs without chunking (XQA): no re-reads
    assert setup(engine="trtllm", context=4096).chunk_rereads == 1.0
    # Blackwell's kernels, and the other engines', read a KV head once
    assert setup(engine="trtllm", hardware="b200", context=22000).chunk_rereads == 1.0
    assert setup(engine="vllm", context=22000).chunk_rereads == 1.0
    assert setup(model="llama-3.1-8b", engine="trtllm", context=22000).chunk_rereads == 1.0
    plain = setup(engine="vllm", context=22000)
    ratio = decode_step(hopper, 8, 21000).kv_bytes_per_device / decode_step(plain, 8, 21000).kv_bytes_per_device
    assert 2.5 < ratio < 2.65  # (36 x 4,616 x 5 + 12 x 21,000) / (36 x 4,616 + 12 x 21,000) = 2.59


def test_a_plan_prices_the_reads_its_config_admits_as_profile_does():
    # the plan's setup takes the engine's chunk reads at the longest sequence its configs admit (TensorRT-LLM's
    # max_seq_len, the workload's), as `profile` takes them at its context
    from optiplan.planner.catalog.workloads import load_workload, with_overrides
    from optiplan.planner.plan.advise import build_context
    from optiplan.planner.plan.search import search
    from optiplan.planner.plan.state import baseline_state, to_setup

    spec, hw = resolve_model("llama-4-scout"), resolve_hardware("h100-sxm")
    state = baseline_state(spec, hw, 4, "trtllm").with_(engine="trtllm", paged_kv=True)
    assert to_setup(state.with_(max_seq_len=32768)).chunk_rereads == 5
    assert to_setup(state.with_(max_seq_len=4096)).chunk_rereads == to_setup(state).chunk_rereads == 1
    workload = with_overrides(load_workload("rag-long-context"), engine="trtllm")
    base = search(build_context(spec, hw, 4, workload), only_groups=frozenset()).baseline
    assert base.max_seq_len == workload.context_needed >= CHUNK and to_setup(base).chunk_rereads == 5
