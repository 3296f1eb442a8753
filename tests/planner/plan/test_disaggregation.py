"""Prefill/decode disaggregation: when the planner splits instances, what it predicts for them, and the launch it
renders for SGLang and TensorRT-LLM."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from optiplan.planner.analytic.steps import decode_step
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.catalog.workloads import load_workload
from optiplan.planner.deploy.render import render, render_all
from optiplan.planner.plan.advise import advise
from optiplan.planner.plan.disaggregation import kv_transfer_s
from optiplan.planner.plan.predict import serving_figures
from optiplan.planner.plan.state import PlanState, to_setup
from optiplan.planner.schema import AdviseRequest


@pytest.fixture(scope="module")
def long_prompts():
    """70B serving 128k-token RAG prompts on one node of 8 H100 with SGLang."""
    return advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8, workload="rag-long-context",
                                engine="sglang"))


def _state(**kw) -> PlanState:
    return PlanState(spec=resolve_model("llama-3.1-70b"), hw=resolve_hardware("h100-sxm"), devices=8, tp=4,
                     weight_dtype="fp8", paged_kv=True, continuous_batching=True, chunked_prefill=True, graphs=True,
                     **kw)


def test_colocated_decode_steps_carry_the_prompts_chunks():
    state, rag, chat = _state(), load_workload("rag-long-context"), load_workload("chat")
    s = to_setup(state)
    itl, _, _ = serving_figures(state, s, rag, 8)
    plain = decode_step(s, 8, rag.mean_context).time_s
    assert itl > 1.5 * plain  # 8 long prompts' chunks ride in the decode steps
    itl, _, _ = serving_figures(state, s, chat, 1)
    assert itl == pytest.approx(decode_step(s, 1, chat.mean_context).time_s, rel=1e-6)  # alone: nothing to carry


def test_the_cache_transfer_grows_with_the_prompt():
    s = to_setup(_state())
    short, long = kv_transfer_s(s, 1_000), kv_transfer_s(s, 100_000)
    assert long > 50 * short > 0
    assert long < 0.1  # 100k tokens of a 70B cache: about 8 GB per device over NVLink, some tens of ms


def test_long_prompts_split_prefill_from_decode(long_prompts):
    a = long_prompts
    p = a.plan.predicted
    assert "pd-disaggregation" in [s.technique for s in a.plan.steps]
    assert p.prefill_instances >= 1 and p.data_parallel - p.prefill_instances >= 1
    assert p.tensor_parallel * p.data_parallel == 8
    # over the replicas that prefill and decode their own requests (data parallel), time per token drops
    swap = {r.technique: r.reason for r in a.rejected}["data-parallel"]
    assert float(swap.split("TPOT ")[1].split(" ms")[0]) > p.tpot_ms
    # a decode instance runs plain decode steps: its time per token is that of the decode step at its batch
    state = _state().with_(tp=p.tensor_parallel)
    per_instance = p.batch // (p.data_parallel - p.prefill_instances)
    plain = decode_step(to_setup(state.with_(kv_dtype=p.kv_dtype if p.kv_dtype == "fp8" else None)), per_instance,
                        a.workload.mean_context).time_s * 1e3
    assert p.tpot_ms <= plain * 1.05


def test_chat_keeps_prefill_and_decode_together_and_says_why():
    a = advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8, workload="chat",
                             engine="sglang", goal="latency"))
    assert "pd-disaggregation" not in [s.technique for s in a.plan.steps]
    why = {r.technique: r.reason for r in a.rejected}["pd-disaggregation"]
    assert "TPOT" in why and "tokens/s" in why  # what the swap would change, in numbers


def test_vllm_has_no_router_and_serves_replicas_instead(long_prompts):
    a = advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8, workload="rag-long-context",
                             engine="vllm"))
    why = {r.technique: r.reason for r in a.rejected}["pd-disaggregation"]
    assert "no router" in why and "toy_proxy_server.py" in why
    files = render(long_prompts, "vllm")  # a plan made for SGLang, rendered for vLLM
    assert f"--data-parallel-size {long_prompts.plan.predicted.data_parallel}" in files["vllm/serve.sh"]
    assert "pd-disaggregation" in files["README.md"]


def _bash_ok(script: str) -> None:
    if shutil.which("bash"):
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_sglang_launches_prefill_decode_and_router_on_disjoint_gpus(long_prompts):
    p = long_prompts.plan.predicted
    script = render(long_prompts, "sglang")["sglang/serve.sh"]
    _bash_ok(script)
    prefill, decode = p.prefill_instances, p.data_parallel - p.prefill_instances
    assert script.count("--disaggregation-mode prefill") == prefill
    assert script.count("--disaggregation-mode decode") == decode
    assert "sglang_router.launch_router" in script and "--pd-disaggregation" in script
    assert "--prefill http://127.0.0.1:30000 8998" in script and "--decode http://127.0.0.1:30100" in script
    gpus = [line.split("CUDA_VISIBLE_DEVICES=")[1].split()[0] for line in script.splitlines()
            if "CUDA_VISIBLE_DEVICES=" in line]
    used = [g for group in gpus for g in group.split(",")]
    assert len(used) == len(set(used)) == 8
    # speculative decoding only where tokens are decoded
    prefill_block = script.split("prefill-0)")[1].split(";;")[0]
    assert "--speculative" not in prefill_block


def test_trtllm_router_config_points_at_its_workers(long_prompts):
    files = render(long_prompts, "trtllm")
    _bash_ok(files["trtllm/serve.sh"])
    router = yaml.safe_load(files["trtllm/disagg-config.yaml"])
    ports = [int(u.split(":")[1]) for kind in ("context_servers", "generation_servers") for u in router[kind]["urls"]]
    for port in ports:
        assert f"--port {port}" in files["trtllm/serve.sh"]
    context = yaml.safe_load(files["trtllm/extra-llm-api-options-context.yaml"])
    assert context["disable_overlap_scheduler"] is True and context["cache_transceiver_config"]["backend"] == "UCX"
    assert "speculative_config" not in context


def test_manifests_are_refused_with_the_reason(long_prompts):
    _, skipped = render_all(long_prompts, ["sglang", "compose", "kubernetes"])
    assert len(skipped) == 2 and all("serve.sh roles on one node" in s for s in skipped)
