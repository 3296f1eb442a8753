"""Prefill/decode disaggregation: when the planner splits instances (only where prefill and decode together miss
the SLOs), what it predicts for them, and the launch it renders for SGLang and TensorRT-LLM."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from optiplan.planner.analytic.requests import prefill_passes
from optiplan.planner.analytic.steps import decode_step, prefill_step
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.catalog.workloads import load_workload
from optiplan.planner.deploy.render import render, render_all
from optiplan.planner.plan.advise import advise
from optiplan.planner.analytic.disaggregation import kv_transfer_s, rates
from optiplan.planner.plan.predict import serving_figures
from optiplan.planner.plan.state import PlanState, to_setup
from optiplan.planner.schema import AdviseRequest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "workloads" / "long-prompts-tight-tpot.yaml"


@pytest.fixture(scope="module")
def tight_tpot():
    """70B on one node of 8 H100 with SGLang: 12k-token prompts from 32 users under a 25 ms per-token SLO and a loose
    time to first token (the README's example workload): the prompts' chunks in the decode steps, or their steps
    between them, break the SLO wherever prefill and decode share instances."""
    assert yaml.safe_load(EXAMPLE.read_text())["slo"] == {"ttft_p95_ms": 60000, "tpot_p95_ms": 25}
    return advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8, workload=str(EXAMPLE),
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


def test_decode_instances_run_plain_steps_and_prompts_queue_for_the_prefill_instances():
    s, w = to_setup(_state()), load_workload("rag-long-context")
    one = rates(s, w, 1, 1, 0.0)
    assert one.tpot_s == decode_step(s, one.batch, w.mean_context).time_s
    # a prefill instance takes a prompt in the engine's chunks, each attending to the ones before and reading the
    # weights again: longer than one pass over the whole prompt
    assert s.group_chunk_tokens and w.prompt_tokens_p95 > 4 * s.group_chunk_tokens
    first, rest_s = prefill_passes(s, 1, w.prompt_tokens_p95)
    chunked = first.time_s + rest_s  # back to back with the prompt before it
    assert chunked > prefill_step(s, 1, w.prompt_tokens_p95).time_s
    alone = chunked + kv_transfer_s(s, w.prompt_tokens_p95)
    assert one.ttft_s > alone  # 48k-token prompts from 8 users: one prefill instance is the bottleneck
    # the closed loop: the requests in flight over the rate is one request's whole cycle
    cycle = one.batch / one.requests_per_s
    first, rest_s = prefill_passes(s, 1, w.prompt_tokens_mean)
    assert cycle == pytest.approx(one.ttft_s - alone + first.time_s + rest_s
                                  + kv_transfer_s(s, w.prompt_tokens_mean) + (w.output_tokens_mean - 1) * one.tpot_s)
    cached = rates(s, w, 1, 1, 0.5)
    assert cached.requests_per_s > one.requests_per_s  # half of each prompt from the prefix cache


def test_a_tight_tpot_slo_splits_prefill_from_decode(tight_tpot):
    a = tight_tpot
    p = a.plan.predicted
    assert "pd-disaggregation" in [s.technique for s in a.plan.steps] and not p.slo_violations
    assert p.prefill_instances >= 1 and p.data_parallel - p.prefill_instances >= 1
    assert p.tensor_parallel * p.data_parallel == 8
    why = {r.technique: r.reason for r in a.rejected}
    # prefill and decode together miss the SLO: as replicas, and as the baseline's tensor parallel over all eight
    assert "misses the workload (TPOT" in why["data-parallel"]
    assert a.baseline.tensor_parallel == 8 and any("TPOT" in v for v in a.baseline.slo_violations)
    assert "runs tensor parallel already" in why["tensor-parallel"]


def test_long_rag_prompts_under_loose_slos_keep_prefill_and_decode_together():
    a = advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8, workload="rag-long-context",
                             engine="sglang"))
    assert "pd-disaggregation" not in [s.technique for s in a.plan.steps]
    why = {r.technique: r.reason for r in a.rejected}["pd-disaggregation"]
    assert "no split of the devices" in why or "one parallelism per plan" in why


def test_chat_splits_prefill_and_decode_where_its_decode_steps_wait_for_prompt_steps(monkeypatch):
    from optiplan.planner.catalog.engines import engine_table

    def plan():
        return advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8, workload="chat",
                                    engine="sglang", goal="latency"))

    # SGLang runs prompts first, in steps of their own, and every colocated decode step waits for them: the split
    # (decode instances that never prefill) beats tensor parallelism over all eight devices on the latency goal.
    # Mixing the chunks into the decode steps instead (--enable-mixed-chunk) would cost the plan its speculative
    # draft, under which SGLang turns mixing off: it is weighed and loses
    ours = plan()
    steps = [s.technique for s in ours.plan.steps]
    assert "pd-disaggregation" in steps and "spec-draft" in steps and "mixed-chunk" not in steps
    why = {r.technique: r.reason for r in ours.rejected}
    # the baseline is tensor parallel over all eight (SGLang's layout over several GPUs): the split beats it
    assert ours.baseline.tensor_parallel == 8 and ours.plan.predicted.tpot_ms < ours.baseline.tpot_ms
    # (the plans with mixing and without the draft lose; the reason names the conflict with the plan's own step)
    assert "does not run beside spec-draft, which the plan uses" in why["mixed-chunk"]
    # with the chunks in the decode steps by default (and those steps replaying graphs, no eager host time) they slow
    # them little: the split is weighed and loses to tensor parallelism over all eight devices
    monkeypatch.setitem(engine_table()["sglang"], "mixed_prefill", True)
    monkeypatch.setitem(engine_table()["sglang"], "eager_prefill", None)
    mixed = plan()
    assert "pd-disaggregation" not in [s.technique for s in mixed.plan.steps]
    assert mixed.plan.predicted.tensor_parallel == 8
    why = {r.technique: r.reason for r in mixed.rejected}
    # a request's latency within 3% of the plan's without it: less than a step must move it by (its router and roles)
    assert why["pd-disaggregation"].startswith("gains under 3% on the latency goal")
    assert "already puts prompt chunks in its decode steps" in why["mixed-chunk"]


def test_vllm_has_no_router_and_serves_replicas_instead(tight_tpot):
    a = advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8, workload="rag-long-context",
                             engine="vllm"))
    why = {r.technique: r.reason for r in a.rejected}["pd-disaggregation"]
    assert "no router" in why and "toy_proxy_server.py" in why
    files = render(tight_tpot, "vllm")  # a plan made for SGLang, rendered for vLLM
    assert f"--data-parallel-size {tight_tpot.plan.predicted.data_parallel}" in files["vllm/serve.sh"]
    assert "pd-disaggregation" in files["README.md"]


def _bash_ok(script: str) -> None:
    if shutil.which("bash"):
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_sglang_launches_prefill_decode_and_router_on_disjoint_gpus(tight_tpot):
    p = tight_tpot.plan.predicted
    script = render(tight_tpot, "sglang")["sglang/serve.sh"]
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


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_serve_all_starts_every_role_from_any_folder_and_stops_them_together(tight_tpot, tmp_path):
    """`./serve.sh all` with a stand-in `python` that records each start: workers keep running, the router exits
    with 3, and the script stops the workers and returns 3."""
    folder = tmp_path / "configs"
    for rel, text in render(tight_tpot, "sglang").items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "started.log"
    stub = bin_dir / "python"
    stub.write_text(f"#!/usr/bin/env bash\necho \"${{CUDA_VISIBLE_DEVICES:-}} $*\" >> {log}\n"
                    "case \"$*\" in *sglang_router*) sleep 1; exit 3 ;; *) exec sleep 60 ;; esac\n")
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(folder / "sglang" / "serve.sh"), "all"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=30, start_new_session=True)
    assert done.returncode == 3, done.stderr
    lines = log.read_text().splitlines()
    p = tight_tpot.plan.predicted
    assert len(lines) == p.data_parallel + 1  # every instance and the router
    assert sum("--disaggregation-mode prefill" in line for line in lines) == p.prefill_instances
    assert "a role exited (status 3)" in done.stderr


def test_trtllm_router_config_points_at_its_workers(tight_tpot):
    files = render(tight_tpot, "trtllm")
    _bash_ok(files["trtllm/serve.sh"])
    router = yaml.safe_load(files["trtllm/disagg-config.yaml"])
    ports = [int(u.split(":")[1]) for kind in ("context_servers", "generation_servers") for u in router[kind]["urls"]]
    for port in ports:
        assert f"--port {port}" in files["trtllm/serve.sh"]
    context = yaml.safe_load(files["trtllm/extra-llm-api-options-context.yaml"])
    assert context["disable_overlap_scheduler"] is True and context["cache_transceiver_config"]["backend"] == "UCX"


def test_manifests_are_refused_with_the_reason(tight_tpot):
    _, skipped, _ = render_all(tight_tpot, ["sglang", "compose", "kubernetes"])
    assert len(skipped) == 2 and all("serve.sh roles on one node" in s for s in skipped)


def test_a_prefill_instance_that_schedules_ahead_takes_a_prompt_after_the_one_it_launched():
    # SGLang's and TensorRT-LLM's schedulers run a batch ahead on a prefill instance too: an arriving prompt waits for
    # the prefill launched ahead of it as often as the instance is busy, and where the instance is the bottleneck its
    # queue's wait already covers it
    from dataclasses import replace

    s, chat, rag = to_setup(_state()), load_workload("chat"), load_workload("rag-long-context")
    ahead_s = replace(s, schedules_ahead=True)
    eager, ahead = rates(s, chat, 1, 1, 0.0), rates(ahead_s, chat, 1, 1, 0.0)
    assert 0 < ahead.ttft_s - eager.ttft_s < prefill_step(s, 1, chat.prompt_tokens_mean).time_s
    assert ahead.requests_per_s <= eager.requests_per_s and ahead.tpot_s == eager.tpot_s
    bound = rates(s, rag, 1, 1, 0.0)
    assert rates(ahead_s, rag, 1, 1, 0.0).ttft_s == pytest.approx(bound.ttft_s)


def test_a_prompt_on_an_idle_prefill_instance_pays_the_eager_host_time_in_series():
    # SGLang's prompt steps are eager: launching their kernels takes host time, which the step before hides on a busy
    # instance and which comes in series on an idle one (`StepCost.alone_s`); chat's prompts keep one prefill instance
    # mostly idle, so its p95 prompt is priced alone, and the mean cycle by how often the instance is idle (SGLang's
    # scheduler runs a batch ahead: without it the launches come in series on a busy instance too, `with_host_time`)
    from dataclasses import replace

    s, chat = replace(to_setup(_state()), schedules_ahead=True), load_workload("chat")
    eager = replace(s, prefill_host_s=0.05)
    p95 = prefill_step(eager, 1, chat.prompt_tokens_p95)
    assert p95.alone_s > p95.time_s
    plain, hosted = rates(s, chat, 1, 1, 0.0), rates(eager, chat, 1, 1, 0.0)
    # the p95 prompt's launches in series, less the wait behind the prefill launched ahead that they stand in for
    assert 0 < hosted.ttft_s - plain.ttft_s <= p95.alone_s - prefill_step(s, 1, chat.prompt_tokens_p95).time_s + 1e-9
    assert hosted.requests_per_s < plain.requests_per_s


def test_a_step_that_alone_worsens_the_goal_names_the_later_step_it_is_kept_for():
    """SGLang's prefill-decode split of a 70B on four H100s leaves every figure of its row worse (its first token
    waits longer, its decode instance holds half the devices) until a draft model speeds that instance's decode: the
    step table read as a regression. The step now names what it is kept for, and the reports say so."""
    from optiplan.planner.plan.objective import score
    from optiplan.planner.report.advice import render, text_report

    a = advise(AdviseRequest(model="llama-3.1-70b", hardware="h100-sxm", num_devices=4, workload="chat",
                             engine="sglang"))
    steps = a.plan.steps
    objective = [score(p, "latency", a.workload.output_tokens_mean, a.workload.concurrency)
                 for p in [a.baseline, *(s.predicted for s in steps)]]
    kept = [(i, s) for i, s in enumerate(steps) if s.pays_off_with]
    assert kept, [s.technique for s in steps]
    for i, s in kept:
        assert objective[i + 1] > objective[i]  # worse than the row before
        j = max(k for k, later in enumerate(steps) if later.technique in s.pays_off_with)
        assert objective[j + 1] < objective[i]  # ... until the steps it is kept for
    # every other step does no worse than the row before it
    assert all(objective[i + 1] <= objective[i] for i, s in enumerate(steps) if not s.pays_off_with)
    note = f"{kept[0][1].technique}: alone it leaves the latency goal worse"
    assert note in text_report(a, color=False) and note in render(a, "md") and note in render(a, "html")
