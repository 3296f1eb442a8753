"""`profile --graph-padding`: a serving engine that pads each decode-only step up to its next CUDA-graph batch size
(TensorRT-LLM's cuda_graph_config with enable_padding) runs the padding's dummy sequences through the linear layers
and experts, not through attention."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner
from optiplan.planner.analytic.profile import profile, setup_for_request
from optiplan.planner.analytic.cuda_graphs import graph_rows, graph_sizes
from optiplan.planner.analytic.steps import decode_step, matmul_flops, mixed_step
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.cli.main import main
from optiplan.planner.errors import RequestError
from optiplan.planner.schema import ProfileRequest

SIZES = (1, 2, 4, 8, 16, 32)


def setup(model="llama-3.1-8b", hardware="h100-sxm", **kw):
    request = ProfileRequest(model=model, hardware=hardware, engine="trtllm", **kw)
    return setup_for_request(request, resolve_model(model), resolve_hardware(hardware))


def test_a_decode_step_is_padded_up_to_the_next_size():
    plain, padded = setup(), setup(graph_padding=SIZES)
    assert [graph_rows(padded, b) for b in (1, 3, 5, 8, 9, 32, 40)] == [1, 4, 8, 8, 16, 32, 40]
    assert [graph_rows(plain, b) for b in (3, 5, 40)] == [3, 5, 40]
    # the dummy sequences add the linear layers' FLOPs of 3 more rows; attention and the cache stay batch 5's
    five, eight = decode_step(plain, 5, 2048), decode_step(padded, 5, 2048)
    assert eight.flops - five.flops == pytest.approx(matmul_flops(plain, 8, 8) - matmul_flops(plain, 5, 5))
    assert eight.kv_bytes_per_device == five.kv_bytes_per_device
    assert eight.time_s > five.time_s
    # on a size, or above the largest, a step runs as it is
    for batch in (8, 40):
        assert decode_step(padded, batch, 2048).time_s == decode_step(plain, batch, 2048).time_s
    # a step that carries prompt tokens runs eagerly, unpadded
    assert mixed_step(padded, 5, 2048, 512, 1024).time_s == mixed_step(plain, 5, 2048, 512, 1024).time_s


def test_each_attention_group_pads_its_own_share():
    adp = setup("deepseek-v3", "h200-sxm", num_devices=8, dtype="fp8", attention_data_parallel=8, expert_parallel=8,
                graph_padding=SIZES)
    assert graph_rows(adp, 17) == 8 * 4  # 3 a group at most, padded to 4
    assert graph_rows(adp, 64) == 64
    assert graph_rows(adp, 257) == 257  # 33 a group at most: above the largest size, as it is
    unpadded = replace(adp, graph_padding=())
    assert [graph_rows(unpadded, b) for b in (1, 9, 17)] == [1, 9, 17]


def test_padding_slows_a_burst_whose_batch_falls_between_sizes():
    burst = {"model": "gpt-oss-20b", "hardware": "h100-sxm", "engine": "trtllm", "input_tokens": 1024,
             "output_tokens": 1024, "concurrency": 3000, "at_once": True, "in_process": True}
    plain = profile(ProfileRequest(**burst)).requests
    padded = profile(ProfileRequest(**burst, graph_padding=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)))
    assert 512 < plain.running < 1024  # the cache's room: its decode steps pad up to 1,024
    assert padded.requests.running == plain.running
    assert padded.requests.output_tokens_per_s < 0.95 * plain.output_tokens_per_s
    assert padded.request.graph_padding == (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


def test_only_a_serving_engine_pads():
    with pytest.raises(RequestError, match="--graph-padding pads a serving engine's"):
        profile(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="transformers", graph_padding=(8,)))
    with pytest.raises(ValueError):
        ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", graph_padding=(0, 8))
    assert ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", graph_padding=[8, 1, 8]).graph_padding == (1, 8)


def test_the_cli_reads_the_sizes_comma_separated():
    runner = CliRunner()
    ok = runner.invoke(main, ["profile", "llama-3.1-8b", "--engine", "trtllm", "--batch", "5", "--graph-padding",
                              "8,1,2,4", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["request"]["graph_padding"] == [1, 2, 4, 8]
    for bad, why in (("4,x", "not a comma-separated list"), ("0,4", "at least 1")):
        result = runner.invoke(main, ["profile", "llama-3.1-8b", "--engine", "trtllm", "--graph-padding", bad])
        assert result.exit_code == 2 and why in result.output


def test_sizes_above_the_running_cap_give_way_to_the_cap():
    # TensorRT-LLM captures no graph above its max_batch_size and, padding on, pads to that batch instead
    capped = setup(graph_padding=(1, 2, 4, 8, 16, 32, 64), max_running=24)
    assert graph_sizes(capped) == [1, 2, 4, 8, 16, 24]
    assert graph_rows(capped, 17) == 24
    assert graph_sizes(setup(graph_padding=(1, 2, 4, 8), max_running=24)) == [1, 2, 4, 8]  # none above it
    adp = setup("deepseek-v3", "h200-sxm", num_devices=8, dtype="fp8", attention_data_parallel=8, expert_parallel=8,
                graph_padding=(1, 2, 4, 8, 16, 32, 64), max_running=24)
    assert graph_sizes(adp) == [1, 2, 4, 8, 16, 24]  # the cap is each group's
    assert graph_sizes(setup(graph_padding=(8, 24, 32), max_running=24)) == [8, 24]  # the cap once


def weights_read(step):
    return step.bytes_per_device - step.kv_bytes_per_device - step.activation_bytes_per_device


def test_the_padding_repeats_one_dummy_token():
    # TensorRT-LLM pads with one dummy request repeated: its rows cost GEMM FLOPs, but reach one token's experts
    plain, padded = setup("gpt-oss-120b"), setup("gpt-oss-120b", graph_padding=SIZES)
    assert graph_rows(padded, 9) == 16
    assert weights_read(decode_step(padded, 9, 2048)) == pytest.approx(weights_read(decode_step(plain, 10, 2048)))
    assert decode_step(padded, 9, 2048).flops > decode_step(plain, 10, 2048).flops


def test_attention_groups_pad_alike_so_a_padded_step_is_no_dearer_than_real_sequences():
    kw = {"num_devices": 8, "dtype": "fp8", "attention_data_parallel": 8, "expert_parallel": 8}
    plain, padded = setup("deepseek-v3", "h200-sxm", **kw), setup("deepseek-v3", "h200-sxm", graph_padding=SIZES, **kw)
    assert graph_rows(padded, 3) == 8
    assert decode_step(plain, 3, 4096).time_s < decode_step(padded, 3, 4096).time_s <= \
        decode_step(plain, 8, 4096).time_s


def test_sizes_need_not_come_sorted_and_a_cpu_pads_nothing():
    assert graph_sizes(replace(setup(), graph_padding=(8, 1, 4))) == [1, 4, 8]
    with pytest.raises(RequestError, match="on a GPU"):
        profile(ProfileRequest(model="qwen2.5-0.5b", hardware="epyc-9654", engine="llama.cpp", graph_padding=(4,)))
