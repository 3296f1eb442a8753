"""Continuous-batching steps that carry prompt tokens beside the decode tokens (`steps.mixed_step`), and the share at
which paged serving engines read the KV cache."""

from __future__ import annotations

import pytest
from optiplan import profiles
from optiplan.planner.analytic.profile import setup_for_request
from optiplan.planner.analytic.steps import decode_step, mixed_step, prefill_step
from optiplan.planner.catalog.engines import engine_table
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.schema import ProfileRequest


def setup(model="llama-3.1-8b", hardware="h100-sxm", **kw):
    request = ProfileRequest(model=model, hardware=hardware, **kw)
    return setup_for_request(request, resolve_model(model), resolve_hardware(hardware))


def test_a_prompt_does_not_hide_under_the_decode_attentions_cache_reads():
    """Qwen3-30B-A3B in NVFP4 on a B200 at 1,770 sequences: the step's bytes are mostly the cache, read by the decode
    attention, a kernel no GEMM overlaps. Two 1,000-token prompts in the step grow the linear layers' rows, and their
    matmuls take their time although the step as a whole moves bytes far longer than it computes (hidden under the
    step's bytes, they cost nothing: TensorRT-LLM's measured 25.8k tokens/s came out 2.1x)."""
    s = setup("qwen3-30b-a3b", "b200", dtype="fp4", kv_dtype="fp8", engine="trtllm")
    decode, prompt = decode_step(s, 1770, 1500), prefill_step(s, 1, 1000)
    assert decode.memory_s > decode.compute_s + 2 * prompt.compute_s
    mixed = mixed_step(s, 1770, 1500, 2000, 1000)
    assert mixed.time_s - decode.time_s > 0.8 * 2 * prompt.compute_s
    assert mixed.kv_bytes_per_device > decode.kv_bytes_per_device  # the prompts' own cache is written too


def test_a_step_without_prompt_tokens_is_the_decode_step():
    s = setup(engine="vllm")
    assert mixed_step(s, 64, 1024, 0, 512) == decode_step(s, 64, 1024)


def test_a_chunk_of_a_prompt_costs_its_share_of_the_prompt():
    """Half a 4,096-token prompt beside 8 decode tokens costs about half of the whole prompt beside them: the linear
    layers' rows, the chunk's share of the prompt's attention and activations."""
    s = setup(engine="vllm")
    decode = decode_step(s, 8, 1024).time_s
    half, whole = (mixed_step(s, 8, 1024, n, 4096).time_s - decode for n in (2048, 4096))
    assert half == pytest.approx(whole / 2, rel=0.1)


def test_under_data_parallel_attention_a_prompt_is_its_groups_alone(monkeypatch):
    """DeepSeek-V3 on 8 H200s with attention data-parallel over all 8: one prompt is prefilled by the one group
    holding it while the others wait at each MoE exchange; eight prompts, one per group, prefill side by side, so
    they cost far less than eight times one (only the routed experts' work, spread over every device, grows). The
    device's work alone: SGLang's host time launching an eager prompt step would floor the small ones."""
    monkeypatch.setitem(engine_table()["sglang"], "eager_prefill", None)
    s = setup("deepseek-v3", "h200-sxm", num_devices=8, dtype="fp8", attention_data_parallel=8, expert_parallel=8,
              engine="sglang")
    decode = decode_step(s, 512, 2048).time_s
    one, eight = (mixed_step(s, 512, 2048, n, 1024).time_s - decode for n in (1024, 8 * 1024))
    assert one < eight < 2 * one
    # the decode sequences' caches stay spread over the groups: only the prompt's own work lands on one of them, so
    # a step costs more the more prompt tokens it carries, at any context (the busiest group's share of the tokens
    # once scaled the whole decode cache and took a 1,024-token prompt's step above a 2,048-token one's)
    # (prompt counts between whole multiples of the groups too: 8 prompts load each group once, a ninth stacks)
    sizes = (256, 512, 1024, 2048, 4096, 7 * 1024, 8 * 1024, 8 * 1024 + 64, 9 * 1024, 16384)
    for batch in (0, 4, 512):
        for context in (2048, 32768):
            plain = decode_step(s, batch, context) if batch else None
            times = [mixed_step(s, batch, context, n, 1024) for n in sizes]
            assert all(a.time_s < b.time_s for a, b in zip(times, times[1:])), (batch, context)
            if plain is not None:
                assert plain.time_s < times[0].time_s
            if batch == 512:  # 512 sequences' caches: a 256-token chunk's own cache adds next to nothing
                assert times[0].kv_bytes_per_device < 1.01 * plain.kv_bytes_per_device
    # the busiest group's load is continuous in the prompt tokens: a few more tokens than eight prompts cost a little
    at_eight, past = (mixed_step(s, 512, 2048, n, 1024).time_s for n in (8 * 1024, 8 * 1024 + 8))
    assert past - at_eight < 0.01 * at_eight


def test_paged_engines_read_the_cache_at_their_decode_attentions_share():
    """The serving runtime's paged decode-attention kernels read the cache at their measured share, whatever its format;
    engines that keep a contiguous cache (llama.cpp) and transformers read it at the format's share. Both scale
    with the device's measured bandwidth."""
    paged = profiles.efficiency_table()["runtimes"]["serving"]["gpu"]["paged_kv_bandwidth_efficiency"]
    formats = profiles.efficiency_table()["device_kinds"]["gpu"]["bandwidth_efficiency"]
    h100 = {e: setup(engine=e).eff.kv_bandwidth_efficiency for e in ("vllm", "trtllm", "serving", "llama.cpp")}
    assert h100["vllm"] == h100["trtllm"] == h100["serving"]
    assert h100["vllm"] / h100["llama.cpp"] == pytest.approx(paged / formats["bf16"])
    fp8 = setup(engine="vllm", dtype="fp8", kv_dtype="fp8").eff.kv_bandwidth_efficiency
    assert fp8 == h100["vllm"]  # the kernel streams an fp8 cache at the same share
    a100 = setup(hardware="a100-80gb-sxm", engine="vllm").eff.kv_bandwidth_efficiency
    assert a100 == pytest.approx(paged)  # the reference device of the shares


def test_sequences_go_to_the_data_parallel_groups_whole():
    """Nine sequences on eight attention groups put two on one, and the step waits for that group: its cache reads are
    sixteen's, twice eight's (the routed experts, spread over every device, still follow the tokens)."""
    from optiplan.planner.analytic.steps import busiest_group_multiple

    s = setup("deepseek-v3", "h200-sxm", num_devices=8, dtype="fp8", attention_data_parallel=8, expert_parallel=8,
              engine="sglang")
    assert [busiest_group_multiple(s, n) for n in (1, 4, 8, 9, 16)] == [8.0, 2.0, 1.0, 16 / 9, 1.0]
    eight, nine, sixteen = (decode_step(s, n, 131072) for n in (8, 9, 16))
    assert nine.kv_bytes_per_device == sixteen.kv_bytes_per_device == pytest.approx(2 * eight.kv_bytes_per_device)
    assert eight.time_s < nine.time_s < sixteen.time_s
    assert busiest_group_multiple(setup(engine="vllm"), 9) == 1.0  # no data-parallel attention: one group
