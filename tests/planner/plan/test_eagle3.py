"""EAGLE-3 speculation: declared with published heads per engine, its acceptance solved from a published
measurement, the gain a serving engine keeps at batch measured, and rendered with each engine's own options."""

from __future__ import annotations

import pytest
from optiplan.planner.deploy.render import render
from optiplan.planner.plan.advise import advise
from optiplan.planner.analytic.speculation import speculative_gain_kept
from optiplan.planner.schema import AdviseRequest
from script_loader import load_script


def _advice(model="llama-3.1-8b", workload="chat", engine="vllm", **kw):
    return advise(AdviseRequest(model=model, hardware="h100-sxm", num_devices=1, workload=workload, engine=engine,
                                **kw))


def test_the_constants_reproduce_the_points_they_were_solved_from():
    """A consistency check (the acceptance comes from the batch-1 point, the batch correction from the batch-64
    one): it fails when the step model changes under them, and then both need solving again."""
    bench = load_script("benchmarks/bench_speculation_published.py")
    from optiplan.planner.plan.predict import speculation_speedup
    from optiplan.planner.plan.techniques.speculative import EAGLE3_ACCEPTANCE

    assert bench.solve(1, 373.25 / 158.34) == pytest.approx(EAGLE3_ACCEPTANCE, abs=0.01)
    state = bench.serving_state(EAGLE3_ACCEPTANCE)
    assert speculation_speedup(state, 1, bench.CONTEXT) == pytest.approx(373.25 / 158.34, rel=0.03)
    assert speculation_speedup(state, 64, bench.CONTEXT) == pytest.approx(1.38, rel=0.03)
    assert speculation_speedup(state, 64, bench.CONTEXT, kept=False) > 2  # the step model alone over-credits it
    middle = speculation_speedup(state, 16, bench.CONTEXT)  # an interpolated batch lies between the two
    assert 1.38 < middle < 2.36


def test_gain_kept_falls_with_the_batch():
    kept = [speculative_gain_kept(b) for b in (1, 2, 8, 32, 64, 512)]
    assert kept[0] == 1.0 and kept[-2] == kept[-1] == pytest.approx(0.30)
    assert all(a >= b for a, b in zip(kept, kept[1:]))


def test_planned_for_chat_with_a_published_head():
    a = _advice(concurrency=1)
    step = next(s for s in a.plan.steps if s.technique == "spec-eagle3")
    assert step.params["draft_model"] == "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"
    assert "2503.01840" in step.effect_source
    assert a.plan.predicted.tpot_ms < a.baseline.tpot_ms / 2


def test_rejected_with_the_reason():
    reasons = {r.technique: r.reason for r in _advice(workload="batch-offline").rejected}
    assert "serves the base model" in reasons["spec-eagle3"]
    reasons = {r.technique: r.reason for r in _advice(model="qwen3-8b", engine="trtllm").rejected}
    assert "no published EAGLE-3 head of qwen3-8b is known for trtllm" in reasons["spec-eagle3"]
    reasons = {r.technique: r.reason for r in _advice(model="mistral-7b-v0.1").rejected}
    assert "no published EAGLE-3 head" in reasons["spec-eagle3"]


def test_each_engine_loads_its_own_head():
    a = _advice(model="qwen3-8b", concurrency=1)
    assert "spec-eagle3" in [s.technique for s in a.plan.steps]
    vllm = render(a, "vllm")["vllm/serve.sh"]
    assert '"method":"eagle3","model":"RedHatAI/Qwen3-8B-speculator.eagle3"' in vllm
    sglang = render(a, "sglang")["sglang/serve.sh"]
    assert "--speculative-algorithm EAGLE3" in sglang and "Tengyunw/qwen3_8b_eagle3" in sglang
    trtllm = render(a, "trtllm")
    assert "Eagle3" not in trtllm["trtllm/extra-llm-api-options.yaml" if "trtllm/extra-llm-api-options.yaml" in trtllm
                                  else "trtllm/serve.sh"]
    assert "no published EAGLE-3 head of this model that TensorRT-LLM loads" in trtllm["README.md"]


def test_the_head_takes_its_memory():
    """An EAGLE-3 head of Llama-3.1-8B (one decoder layer, its 3h -> h projection, a 32,000-token head: about 0.8 GB
    in 16 bits) and its layer's cache sit beside the target: the step adds them, where it once added nothing."""
    a = advise(AdviseRequest(model="llama-3.1-8b", hardware="l4", num_devices=1, workload="chat"))
    steps = [s.technique for s in a.plan.steps]
    i = steps.index("spec-eagle3")
    before, after = a.plan.steps[i - 1].predicted, a.plan.steps[i].predicted
    assert after.weights_per_device_bytes - before.weights_per_device_bytes == pytest.approx(0.8e9, rel=0.1)
    assert after.kv_cache_per_device_bytes > before.kv_cache_per_device_bytes


def test_a_distilled_plan_keeps_no_head_of_the_teacher():
    """EAGLE-3 heads and MTP modules read the features of the model they were trained with: a plan that distils the
    model into a smaller one serves the student, so neither goes with distillation (declared conflicts). On a T4 with
    quality to spare, Llama-3.1-8B's plan distils into Llama-3.2-3B and speculates with n-grams; EAGLE-3 had ridden
    along with the teacher's head."""
    from optiplan.planner.plan.graph import conflicting

    assert conflicting("spec-eagle3", "distillation") and conflicting("spec-mtp", "distillation")
    a = advise(AdviseRequest(model="llama-3.1-8b", hardware="t4", workload="chat", engine="vllm", concurrency=8,
                             max_quality_loss_pct=25.0))
    steps = [s.technique for s in a.plan.steps]
    assert "distillation" in steps and "spec-eagle3" not in steps
    undistilled = advise(AdviseRequest(model="llama-3.1-8b", hardware="t4", workload="chat", engine="vllm",
                                       concurrency=8, max_quality_loss_pct=12.0))
    # the head is the 8B's own there, but vLLM 0.10.2 runs FlexAttention before Ampere, over which it drafts no chain
    assert "spec-eagle3" not in [s.technique for s in undistilled.plan.steps]
    assert "on t4 it runs FlexAttention" in {r.technique: r.reason for r in undistilled.rejected}["spec-eagle3"]
    # (undistilled: on Ampere, where vLLM reads fp8 weights through FP8 Marlin, the 3B student in fp8 now wins there)
    on_an_a10g = advise(AdviseRequest(model="llama-3.1-8b", hardware="a10g", workload="chat", engine="vllm",
                                      concurrency=8, max_quality_loss_pct=12.0, without=("distillation",)))
    assert "spec-eagle3" in [s.technique for s in on_an_a10g.plan.steps]


def test_a_pruned_plan_keeps_no_head_of_the_unpruned_model():
    """Pruning drops a quarter of the layers, whose features the checkpoint's EAGLE-3 head and MTP module read: a
    plan that prunes Qwen3-8B had speculated with its EAGLE-3 head at the unpruned model's acceptance."""
    from optiplan.planner.plan.graph import conflicting

    assert conflicting("spec-eagle3", "structured-pruning") and conflicting("spec-mtp", "structured-pruning")
    a = advise(AdviseRequest(model="qwen3-8b", hardware="h100-sxm", workload="chat", engine="vllm",
                             max_quality_loss_pct=30.0))
    steps = [s.technique for s in a.plan.steps]
    assert not ({"spec-eagle3", "spec-mtp"} & set(steps) and "structured-pruning" in steps), steps


def test_pruning_shortens_every_per_layer_table():
    """A hybrid's mixers and MLPs lose the pruned layers with its windows (Jamba: 32 layers to 24)."""
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model
    from optiplan.planner.plan.advise import build_context, resolve_request
    from optiplan.planner.plan.state import baseline_state
    from optiplan.planner.plan.techniques import all_techniques

    for name in ("jamba-1.5-mini", "nemotron-h-8b", "llama-3.1-8b"):
        spec, workload, _ = resolve_request(AdviseRequest(model=name, hardware="h100-sxm"))
        hw = resolve_hardware("h100-sxm")
        ctx = build_context(spec, hw, 1, workload)
        pruned = all_techniques()["structured-pruning"].transform(baseline_state(spec, hw, 1), ctx).spec
        assert pruned.num_layers == round(resolve_model(name).num_layers * 0.75)
        for table in ("layer_windows", "layer_moe", "layer_mixers", "layer_mlps", "layer_chunks"):
            assert len(getattr(pruned, table)) in (0, pruned.num_layers), (name, table)


def test_vllm_drafts_an_eagle3_chain_only_over_flash_attention():
    """vLLM 0.10.2's EAGLE proposer asserts FlashAttention's (or the tree backend's) metadata on CUDA once it drafts a
    second token (profiles/engines/vllm.yaml draft_attention): refused on the backends the server runs instead, and
    not from the release that lifts it (vllm-project/vllm#25196)."""
    from optiplan.planner.catalog.engine_refusals import draft_attention_refusal
    from optiplan.planner.catalog.hardware import resolve_hardware

    def why(hardware, sinks=False, fp8_cache=False, engine="vllm==0.10.2"):
        return draft_attention_refusal(engine, resolve_hardware(hardware), sinks, fp8_cache)

    assert why("h100-sxm") is None and why("h100-sxm", fp8_cache=True) is None and why("a100-80gb-sxm") is None
    assert "runs FlashInfer, its first backend on Blackwell" in why("b200")
    assert "runs Triton's attention" in why("a100-80gb-sxm", sinks=True) and why("h100-sxm", sinks=True) is None
    assert "pin for an fp8 cache" in why("l4", fp8_cache=True) and why("b200", engine="vllm==0.12.0") is None
    assert why("mi300x") is None and why("b200", engine="sglang") is None


def test_an_eagle3_head_guesses_worse_the_longer_the_context():
    """speculators#684 measured an EAGLE-3 head's acceptance length fall from 2.30 at 2K tokens to 1.08 at 20K: the
    planned acceptance follows that fall from the workload's mean context, and a long-context RAG load is no longer
    served with EAGLE-3 (its per-token acceptance under 0.1 past 16K)."""
    from optiplan.planner.plan.techniques.speculative import (
        EAGLE3_ACCEPTANCE,
        EAGLE3_TOKENS,
        _chain_length,
        eagle3_acceptance,
    )

    assert eagle3_acceptance(1024) == eagle3_acceptance(2048) == EAGLE3_ACCEPTANCE
    at_8k = _chain_length(eagle3_acceptance(8192), EAGLE3_TOKENS)
    assert at_8k - 1 == pytest.approx((_chain_length(EAGLE3_ACCEPTANCE, EAGLE3_TOKENS) - 1) * 0.687 / 1.295, rel=1e-3)
    assert eagle3_acceptance(4096) > eagle3_acceptance(8192) > eagle3_acceptance(16384) > 0.09
    assert eagle3_acceptance(20480) == eagle3_acceptance(48000)  # held past the last measured length
    a = advise(AdviseRequest(model="llama-3.1-8b", hardware="l40s", workload="rag-long-context", engine="vllm"))
    assert "spec-eagle3" not in [s.technique for s in a.plan.steps]


def test_a_head_that_gains_next_to_nothing_is_left_out(tmp_path):
    """Long prompts at four at a time: EAGLE-3 took TPOT 291.26 -> 291.18 ms (0.03%) for 1.9 GB and a head to run; a
    step must move the goal's figure by 3% to be planned, and the plan without it goes first."""
    workload = tmp_path / "long.yaml"
    workload.write_text("name: long\nprompt_tokens_mean: 130000\nprompt_tokens_p95: 130900\noutput_tokens_mean: 100\n"
                        "output_tokens_p95: 100\nconcurrency: 4\n")
    a = _advice(workload=str(workload))
    assert "spec-eagle3" not in [s.technique for s in a.plan.steps]
    why = {r.technique: r.reason for r in a.rejected}["spec-eagle3"]
    assert why.startswith("gains under 3% on the throughput goal, less than a step must move it by")
    assert "spec-eagle3" in [s.technique for s in _advice().plan.steps]  # chat at batch 32: a real gain, kept
