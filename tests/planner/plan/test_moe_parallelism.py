"""Mixture-of-experts layouts: experts split whole (expert parallel) under tensor- or data-parallel attention, the
busiest device's load, traffic between nodes, and block-quantized checkpoints whose experts do not split."""

from __future__ import annotations

import pytest
from optiplan.planner.analytic.params import busiest_device_experts, expected_experts_touched
from optiplan.planner.analytic.steps import all_to_all_s, decode_step
from optiplan.planner.analytic.weight_reads import weights_read_bytes
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.deploy.config import DeployError
from optiplan.planner.deploy.render import render
from optiplan.planner.plan.advise import advise
from optiplan.planner.plan.state import PlanState, to_setup
from optiplan.planner.schema import AdviseRequest


def _setup(model: str, hw: str, devices: int, **layout):
    return to_setup(PlanState(spec=resolve_model(model), hw=resolve_hardware(hw), devices=devices,
                              weight_dtype="fp8", paged_kv=True, graphs=True, **layout))


def test_the_busiest_device_reads_more_experts_than_the_mean_at_small_batch():
    # DeepSeek-V3: 256 experts, top-8, over 8 devices: one token touches 8 experts, 1 per device on average
    assert expected_experts_touched(256, 8, 1) / 8 == pytest.approx(1.0)
    one = busiest_device_experts(256, 8, 1, 8)
    assert 2.0 < one < 3.0  # the exact expectation of the largest of 8 counts is about 2.6
    assert busiest_device_experts(256, 8, 4096, 8) == pytest.approx(32.0)  # every expert touched: no imbalance
    assert busiest_device_experts(256, 8, 64, 8) / (expected_experts_touched(256, 8, 64) / 8) < 1.2
    assert busiest_device_experts(256, 8, 7, 1) == expected_experts_touched(256, 8, 7)


def test_expert_parallel_decode_at_batch_one_waits_for_the_busiest_device():
    tp = _setup("deepseek-v3", "h200-sxm", 8, tp=8)
    ep = _setup("deepseek-v3", "h200-sxm", 8, tp=8, ep=8)
    assert weights_read_bytes(ep, 1) > 1.3 * weights_read_bytes(tp, 1)  # slices of every expert vs whole experts
    assert weights_read_bytes(ep, 4096) == pytest.approx(weights_read_bytes(tp, 4096), rel=1e-3)


def test_tensor_parallel_attention_dispatches_nothing_data_parallel_attention_does():
    tp_attention = _setup("deepseek-v3", "h200-sxm", 8, tp=8, ep=8)
    dp_attention = _setup("deepseek-v3", "h200-sxm", 8, tp=1, ep=8, attention_dp=8)
    assert all_to_all_s(tp_attention, 1e6) == 0.0
    assert all_to_all_s(dp_attention, 1e6) > 0.0
    # data-parallel attention keeps one copy of each sequence's latent cache: 8x the sequences fit
    assert decode_step(dp_attention, 64, 4096).kv_bytes_per_device < decode_step(tp_attention, 64, 4096).kv_bytes_per_device / 4


def test_dispatch_across_nodes_is_bound_by_the_scale_out_port():
    one_node = _setup("deepseek-v3", "h100-sxm", 8, tp=1, ep=8, attention_dp=8)
    two_nodes = _setup("deepseek-v3", "h100-sxm", 16, tp=1, ep=16, attention_dp=16)
    message = 64 * 7168 * 2 * 8  # 64 tokens' hidden states, top-8 copies
    # half the bytes leave the node through a 50 GB/s InfiniBand port instead of 450 GB/s of NVLink
    assert all_to_all_s(two_nodes, message) > message / 2 / 50e9
    assert all_to_all_s(two_nodes, message) > 2 * all_to_all_s(one_node, message)


def test_deepseek_on_two_nodes_keeps_attention_tensor_parallel_inside_each_node():
    a = advise(AdviseRequest(model="deepseek-v3", hardware="h100-sxm", num_devices=16, workload="chat"))
    p = a.plan.predicted
    assert "expert-parallel-tp-attention" in [s.technique for s in a.plan.steps]
    assert (p.tensor_parallel, p.attention_data_parallel, p.expert_parallel, p.pipeline_parallel) == (8, 2, 16, 1)
    # the baseline, tensor parallel inside each node and two stages in series across them, decodes slower
    assert (a.baseline.tensor_parallel, a.baseline.pipeline_parallel) == (8, 2)
    assert a.baseline.tpot_ms > p.tpot_ms * 1.1
    sglang = render(a, "sglang")["sglang/serve.sh"]
    for option in ("--tensor-parallel-size 16", "--expert-parallel-size 16", "--enable-dp-attention",
                   "--data-parallel-size 2", "--nnodes 2"):
        assert option in sglang


def test_a_block_fp8_checkpoint_whose_experts_do_not_split_runs_them_expert_parallel(tmp_path):
    # Qwen3-30B-A3B-FP8: 128-column blocks, experts 768 wide: 192 per device at TP4, not whole blocks. The plan is
    # priced as it runs: the experts whole over the four (it was priced with them sliced while its configs split them
    # whole). So priced, fp8 is within 5% of int8 weight-only for a chat workload, whose lower quality loss wins the
    # tie: the workload here leaves int8 out.
    workload = tmp_path / "chat-no-int8.yaml"
    workload.write_text("name: chat-no-int8\nprompt_tokens_mean: 1024\noutput_tokens_mean: 320\nconcurrency: 32\n"
                        "goal: latency\nmax_quality_loss_pct: 1.0\ndenied_techniques: [weight-int8]\n")
    a = advise(AdviseRequest(model="qwen3-30b-a3b", hardware="h100-sxm", num_devices=4, workload=str(workload)))
    assert a.plan.predicted.tensor_parallel == 4 and a.plan.predicted.expert_parallel == 4
    assert "weight-fp8" in [s.technique for s in a.plan.steps]
    vllm = render(a, "vllm")["vllm/serve.sh"]
    assert "Qwen/Qwen3-30B-A3B-FP8" in vllm and "--enable-expert-parallel" in vllm
    assert "--expert-parallel-size 4" in render(a, "sglang")["sglang/serve.sh"]


def test_vllm_slices_a_moes_experts_over_its_data_parallel_ranks_too(tmp_path):
    # vLLM's --data-parallel-size copies only a MoE's attention and dense layers: its MoE layers form one
    # tensor-parallel group over every rank (docs/serving/data_parallel_deployment.md). Qwen3-235B-A22B in bf16 on
    # eight H200 at DP8: attention data parallel, each device a copy of the attention and an eighth of the experts, not
    # eight whole copies (which 470 GB of bf16 weights could not be on 141 GB devices)
    bf16 = tmp_path / "throughput-bf16.yaml"
    bf16.write_text("name: throughput-bf16\nprompt_tokens_mean: 1024\noutput_tokens_mean: 320\nconcurrency: 32\n"
                    "goal: throughput\nmax_quality_loss_pct: 1.0\ndenied_techniques: [weight-fp8, weight-int8, "
                    "weight-w8a8-int8, weight-int4-awq, weight-int4-gptq, weight-int4, weight-nf4, weight-fp4]\n")
    a = advise(AdviseRequest(model="qwen3-235b-a22b", hardware="h200-sxm", num_devices=8, workload=str(bf16)))
    p = a.plan.predicted
    assert "data-parallel" in [s.technique for s in a.plan.steps]
    # (the ranks' size is the search's: two devices each here, whose caches hold more than eight of one)
    ranks = p.attention_data_parallel
    assert ranks > 1 and p.tensor_parallel * ranks == 8 and (p.data_parallel, p.expert_parallel) == (1, 1)
    assert p.weights_per_device_bytes < 0.2 * 470e9
    files = render(a, "vllm")
    serve = files["vllm/serve.sh"]
    assert f"--data-parallel-size {ranks}" in serve and f"--api-server-count {ranks}" in serve
    assert f"--tensor-parallel-size {p.tensor_parallel}" in serve and "--enable-expert-parallel" not in serve
    # SGLang serves the same layout as DP attention (its --tp-size counts every device)
    sglang = render(a, "sglang")["sglang/serve.sh"]
    for option in ("--tensor-parallel-size 8", "--enable-dp-attention", f"--data-parallel-size {ranks}"):
        assert option in sglang
    assert "--expert-parallel-size" not in sglang
    # engines without the step spread the model over the same eight devices by plain tensor parallelism
    from optiplan.planner.deploy.render import engine_config

    assert engine_config(a, "trtllm").options["tp_size"] == 8
    # TGI serves Qwen3 MoE through transformers, whose integer split of its 4 KV heads over 8 shards leaves none
    with pytest.raises(DeployError, match="4 KV heads do not divide over --num-shard 8"):
        engine_config(a, "tgi")
    # In Qwen's FP8 checkpoint its 1,536-wide experts would split 192 a device, not whole 128-column blocks, and it
    # would not load: the experts go whole (expert parallel over the eight), and the plan is priced so (it was priced
    # with them sliced while its configs split them whole)
    fp8 = tmp_path / "throughput-dp-fp8.yaml"
    fp8.write_text("name: throughput-dp-fp8\nprompt_tokens_mean: 1024\noutput_tokens_mean: 320\nconcurrency: 32\n"
                   "goal: throughput\nmax_quality_loss_pct: 1.0\nallowed_techniques: [weight-fp8, data-parallel, "
                   "paged-kv, chunked-prefill, prefix-caching, cuda-graphs, flash-attention]\n")
    a = advise(AdviseRequest(model="qwen3-235b-a22b", hardware="h200-sxm", num_devices=8, workload=str(fp8)))
    p = a.plan.predicted
    assert "data-parallel" in [s.technique for s in a.plan.steps]
    assert (p.tensor_parallel, p.attention_data_parallel, p.data_parallel, p.expert_parallel) == (1, 8, 1, 8)
    files = render(a, "vllm")
    serve = files["vllm/serve.sh"]
    assert "Qwen/Qwen3-235B-A22B-FP8" in serve and "--data-parallel-size 8" in serve
    assert "--enable-expert-parallel" in serve
    assert "routed expert 1536 / 8 = 192" in files["README.md"]
    sglang = render(a, "sglang")["sglang/serve.sh"]
    for option in ("--tensor-parallel-size 8", "--enable-dp-attention", "--data-parallel-size 8",
                   "--expert-parallel-size 8"):
        assert option in sglang


def test_vllm_data_parallel_of_a_moe_across_nodes_is_one_server_per_copy():
    # across nodes the experts' tensor-parallel group would cross the network at every MoE layer: a replica that fits
    # one GPU is a server of its own, with its own copy of the experts, the configs starting one per replica
    a = advise(AdviseRequest(model="qwen3-30b-a3b", hardware="h100-sxm", num_devices=16, workload="batch-offline",
                             engine="vllm"))
    p = a.plan.predicted
    assert "data-parallel" in [s.technique for s in a.plan.steps]
    assert (p.tensor_parallel, p.data_parallel, p.attention_data_parallel) == (1, 16, 1)
    files = render(a, "vllm")
    serve = files["vllm/serve.sh"]
    assert "--data-parallel-size" not in serve and "--api-server-count" not in serve
    # eight to a node: each its own server on its own GPU and port (vLLM's ranks in one server would share experts)
    assert "start 16 servers, 8 to a node" in files["README.md"] and "CUDA_VISIBLE_DEVICES" in files["README.md"]


def test_a_block_fp8_checkpoint_whose_shared_expert_does_not_split_is_quantized_online(tmp_path):
    # Qwen3-Next's shared expert is 512 wide: 64 per device at TP8 (sglang issue #10852); experts whole do not help.
    # Replicas of TP2 serve a chat's 32 users about as fast (within 1%): the workload asks for one instance
    workload = tmp_path / "chat-one-instance.yaml"
    workload.write_text("name: chat-one-instance\nprompt_tokens_mean: 1024\noutput_tokens_mean: 320\n"
                        "concurrency: 32\nshared_prefix_fraction: 0.3\ngoal: latency\nmax_quality_loss_pct: 1.0\n"
                        "denied_techniques: [data-parallel]\n")
    a = advise(AdviseRequest(model="qwen3-next-80b-a3b", hardware="h100-sxm", num_devices=8, workload=str(workload)))
    assert a.plan.predicted.tensor_parallel == 8 and "weight-fp8" in [s.technique for s in a.plan.steps]
    files = render(a, "vllm")
    assert "Qwen/Qwen3-Next-80B-A3B-Instruct-FP8" not in files["vllm/serve.sh"]
    assert "--quantization fp8" in files["vllm/serve.sh"]
    assert "shared expert 512 / 8 = 64" in files["README.md"]


def test_each_tensor_parallel_group_all_reduces_only_its_own_sequences():
    # TP8 x DP2 attention over two nodes: each group of 8 reduces the hidden states of its half of the batch, as one
    # TP8 group of a single node serving that half does; the rest of the step's traffic is the experts' dispatch
    hybrid = _setup("deepseek-v3", "h100-sxm", 16, tp=8, ep=16, attention_dp=2)
    one_node = _setup("deepseek-v3", "h100-sxm", 8, tp=8, ep=8)
    spec = hybrid.spec
    message = 64 * spec.hidden_size * hybrid.act_bytes
    dispatch = 2 * all_to_all_s(hybrid, message / hybrid.shards * hybrid.counts.top_k) * hybrid.counts.num_moe_layers
    assert decode_step(hybrid, 64, 1024).comm_s - dispatch == pytest.approx(decode_step(one_node, 32, 1024).comm_s)


def test_vllm_data_parallel_ranks_each_take_requests_through_their_own_server():
    # Qwen3-30B-A3B for an offline job on eight H100s: DP8 attention over experts sliced eight ways. One API server
    # would bound the deployment at 1 / 24 ms requests a second whatever the GPUs do (request_host_s); the configs
    # start one per rank (--api-server-count) and cap each rank at its share of the sequences (--max-num-seqs holds
    # per data-parallel rank)
    from optiplan.planner.catalog.engines import engine_request_host_s

    a = advise(AdviseRequest(model="qwen3-30b-a3b", hardware="h100-sxm", num_devices=8, workload="batch-offline",
                             engine="vllm"))
    p = a.plan.predicted
    assert (p.tensor_parallel, p.attention_data_parallel, p.data_parallel) == (1, 8, 1)
    one_server = a.workload.output_tokens_mean / engine_request_host_s("vllm")
    assert p.throughput_tokens_per_s > 2 * one_server
    options = render(a, "vllm")["vllm/serve.sh"]
    assert "--api-server-count 8" in options and f"--max-num-seqs {-(-p.batch // 8)}" in options


def test_the_hardware_block_accounts_for_every_device():
    """A MoE plan's data-parallel step splits attention into groups (its experts shard over them); the hardware block
    says so, so that tensor x pipeline x replicas x attention groups is the device count."""
    from optiplan.planner.plan.advise import advise
    from optiplan.planner.schema import AdviseRequest

    for model, gpus in (("mixtral-8x7b", 2), ("llama-3.1-70b", 4)):
        hw = advise(AdviseRequest(model=model, hardware="h100-sxm", num_devices=gpus, workload="chat",
                                  goal="throughput")).hardware
        assert hw.tensor_parallel * hw.pipeline_parallel * hw.data_parallel * hw.attention_data_parallel == gpus, hw
    assert hw.data_parallel == 2 and hw.tensor_parallel == 2  # the dense 70B: two replicas of tensor parallel 2


def test_tensorrt_llms_batch_under_attention_data_parallelism_is_per_rank():
    """With enable_attention_dp each TensorRT-LLM rank schedules its own requests, max_batch_size of them (NVIDIA's
    DeepSeek-R1 recipe: concurrency 3072 at max_batch_size 384 on 8 ranks). The config had written the plan's whole
    batch as max_batch_size, admitting eight times the sequences the plan was priced at."""
    from optiplan.planner.deploy.render import engine_config

    a = advise(AdviseRequest(model="qwen3-235b-a22b", hardware="h100-sxm", num_devices=8, workload="chat",
                             goal="throughput", engine="trtllm"))
    p = a.plan.predicted
    assert "expert-parallel" in [s.technique for s in a.plan.steps] and p.tensor_parallel == 1
    cfg = engine_config(a, "trtllm")
    assert cfg.extra["enable_attention_dp"] is True
    assert cfg.options["max_batch_size"] * p.expert_parallel >= p.batch > (cfg.options["max_batch_size"] - 1) * 8
    assert cfg.extra["cuda_graph_config"]["max_batch_size"] == cfg.options["max_batch_size"]
