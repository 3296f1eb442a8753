"""Planner scenarios whose expectations follow from first principles (bytes, capabilities, budgets)."""

from __future__ import annotations

from pathlib import Path

import pytest
from optiplan import profiles
from optiplan.planner.plan.advise import ImpossibleError, advise
from optiplan.planner.plan.search import QUALITY_TIE
from optiplan.planner.schema import AdviseRequest

GB = 1e9


def run(**kw):
    return advise(AdviseRequest(**kw))


def steps(a):
    return [s.technique for s in a.plan.steps]


def rejected(a):
    return {r.technique: r.reason for r in a.rejected}


WEIGHTS_8_BITS_OR_LESS = {"weight-int8", "weight-w8a8-int8", "weight-fp8", "weight-int4-awq", "weight-int4-gptq",
                          "weight-int4", "weight-nf4", "weight-fp4"}


def test_70b_on_one_h100_quantizes():
    # 70.6B parameters x 2 bytes = 141 GB of bf16 weights > 80 GB; beside 8-bit weights and vLLM's profiling run of
    # its 8,192-token step the cache holds 30 chat sequences, not the preset's 32: 16 users
    a = run(model="llama-3.1-70b", hardware="h100-sxm", workload="chat", concurrency=16)
    assert not a.baseline.fits and a.bottleneck.primary == "weights-memory"
    assert "141.1 GB" in a.bottleneck.evidence[0]
    assert WEIGHTS_8_BITS_OR_LESS & set(steps(a))
    assert a.plan.predicted.fits and a.plan.predicted.weights_per_device_bytes < 80 * GB


def test_70b_on_two_h100_uses_tensor_parallel():
    # a serving engine spreads over several GPUs tensor parallel from the baseline on (not a gain of the plan's);
    # transformers' baseline splits the layers, and tensor parallel is a step of its plan
    a = run(model="llama-3.1-70b", hardware="h100-sxm", num_devices=2, workload="chat")
    assert "tensor-parallel" not in steps(a) and a.baseline.tensor_parallel == 2
    assert a.hardware.tensor_parallel == 2 and a.plan.predicted.tensor_parallel == 2
    eager = run(model="llama-3.1-70b", hardware="h100-sxm", num_devices=2, workload="chat", engine="transformers",
                max_quality_loss_pct=5.0)
    assert eager.baseline.pipeline_parallel == 2 and "tensor-parallel" in steps(eager)


def test_405b_on_eight_h100_needs_8_bits_or_fewer():
    # 405.9B x 2 bytes = 812 GB > 8 x 80 GB; 8-bit weights take 406 GB
    a = run(model="llama-3.1-405b", hardware="h100-sxm", num_devices=8, workload="chat")
    assert not a.baseline.fits
    assert WEIGHTS_8_BITS_OR_LESS & set(steps(a))
    assert a.plan.predicted.weight_dtype in ("fp8", "int8", "int4", "nf4")


def test_8b_chat_with_64_users_on_l4_is_kv_bound():
    # 16 GB of weights leave ~8 GB: at 128 KiB/token and ~4k reserved tokens a sequence, about 15 fit
    a = run(model="llama-3.1-8b", hardware="l4", workload="chat", concurrency=64)
    assert a.bottleneck.primary == "kv-cache-memory"
    assert "workload needs 64" in a.bottleneck.evidence[0]
    assert a.baseline.max_concurrency < 64
    assert {"paged-kv", "kv-fp8"} & set(steps(a))


def test_a_sequence_longer_than_the_cache_holds_is_the_bottleneck():
    """One 131k-token sequence of an 8B on an L4: the cache holds 44k tokens of it, which is what binds (it had been
    named bandwidth, the decode step's bound at a context that does not fit)."""
    a = run(model="llama-3.1-8b", hardware="l4", goal="context", max_context=131072, concurrency=1)
    assert a.bottleneck.primary == "kv-cache-memory" and a.bottleneck.category == "context"
    assert "longest needs 131,072" in a.bottleneck.evidence[0]


def test_the_interconnects_share_is_read_at_the_workloads_context_per_replica():
    """Qwen3-0.6B's long prompts on four L40S: at 40k tokens of context the all-reduces are a small part of a decode
    step (they had been priced at a context of one token and all replicas' sequences, 41%)."""
    a = run(model="qwen3-0.6b", hardware="l40s", num_devices=4, workload="rag-long-context")
    assert "interconnect" not in (a.bottleneck.primary, a.bottleneck.secondary)


def test_a_front_end_that_caps_the_requests_is_named_where_it_binds():
    """vLLM's API server spends host time on each request: a 1B's throughput stops at its 42 requests a second, where
    the device alone would serve twice as many (it had been called bandwidth-bound); an 8B on the same H100 is
    bound by its device, and a single user is not paced at all."""
    small = run(model="llama-3.2-1b", hardware="h100-sxm", engine="vllm", goal="throughput")
    assert small.bottleneck.primary == "front-end" and small.bottleneck.category == "throughput"
    evidence = small.bottleneck.evidence[0]
    assert "42 requests/s" in evidence and "device alone would serve" in evidence
    # the host time is one lab's fit, and an offline job in the engine's own process has no front end to bind
    assert "one lab's servers" in evidence and "--in-process" in evidence
    assert small.baseline.throughput_tokens_per_s == pytest.approx(320 / 0.024, rel=0.01)  # chat's 320 out, 24 ms
    for request in (dict(model="llama-3.1-8b", goal="throughput"), dict(model="llama-3.2-1b", concurrency=1)):
        a = run(hardware="h100-sxm", engine="vllm", **request)
        assert "front-end" not in (a.bottleneck.primary, a.bottleneck.secondary)
    # SGLang's front end is four times quicker: the 1B's device binds there
    assert run(model="llama-3.2-1b", hardware="h100-sxm", engine="sglang", goal="throughput").bottleneck.primary \
        != "front-end"


def test_more_api_servers_lift_the_front_end_where_it_binds():
    """Where vLLM's one API server caps the requests (the 1B on an H100 for throughput: 13,333 output tokens/s where its
    device serves three times that), the plan starts more per engine core: four, the fewest that leave the device
    binding again (three would pace it at 40,000 tokens/s, below the 43,206 that the fp8 weights and cache serve), as
    the last step, so the count is the one the steps before leave bound. Where the device binds (an 8B; one user) it
    changes nothing; SGLang has no such option."""
    small = run(model="llama-3.2-1b", hardware="h100-sxm", engine="vllm", goal="throughput")
    assert steps(small)[-1] == "api-server-scale-out"
    step, p = small.plan.steps[-1], small.plan.predicted
    assert step.params == {"api_servers_per_rank": 4} and p.api_servers_per_rank == 4
    before = small.plan.steps[-2].predicted.throughput_tokens_per_s
    assert before == pytest.approx(320 / 0.024, rel=0.01)  # still the one server's 42 requests/s
    assert 3 * before < p.throughput_tokens_per_s < 4 * before  # the device binds again below four servers' pace
    for request in (dict(model="llama-3.1-8b", goal="throughput"), dict(model="llama-3.2-1b", concurrency=1)):
        a = run(hardware="h100-sxm", engine="vllm", **request)
        assert "api-server-scale-out" not in steps(a)
        assert "front end does not bound" in rejected(a)["api-server-scale-out"]
    sglang = run(model="llama-3.2-1b", hardware="h100-sxm", engine="sglang", goal="throughput")
    assert "has no option" in rejected(sglang)["api-server-scale-out"]


@pytest.mark.parametrize("request_", [
    # the baseline's front end binds, the plan's replicas do not (11,219 output tokens/s a server, under its 13,333):
    # the step had been rejected with another stack's figures ("53,333 tokens/s ... against 89,748 without")
    dict(model="qwen1.5-moe-a2.7b", num_devices=8, goal="throughput"),
    # the front end holds the plan 2.99% below its device's 8,590 (3.08% of its own 8,333): the step had acted, then
    # been dropped as gaining under 3%, "for more to run and watch (a draft model, a router)"
    dict(model="llama-3.2-1b", goal="throughput", workload="agent"),
])
def test_api_servers_left_out_where_the_plans_front_end_does_not_bind_say_so(request_):
    a = run(hardware="h100-sxm", engine="vllm", **request_)
    assert "api-server-scale-out" not in steps(a)
    assert rejected(a)["api-server-scale-out"].startswith("changes nothing here: the engine's front end does not bound")


def test_a_larger_cache_share_alone_is_not_the_front_end():
    """An 8B on an RTX 4090 serves 979 output tokens/s at the batch its default cache share holds, 1,078 at the
    raised share's: the front end, which caps it at 13,333, had been named the bottleneck for that difference."""
    a = run(model="llama-3.1-8b", hardware="rtx-4090", engine="vllm", goal="throughput")
    assert "front-end" not in (a.bottleneck.primary, a.bottleneck.secondary)


def test_without_tensor_parallel_no_step_brings_it_back():
    """--without tensor-parallel on four H100s: the baseline splits the layers (pp 4); data-parallel replicas had come
    back as two tensor-parallel pairs, and pipeline parallel was rejected because 'tensor parallel covers one node'.
    Now replicas are of one device each (an 8B's throughput plan: four), pipeline parallel changes nothing (the
    baseline's layout), and the layouts whose groups are tensor parallel are refused."""
    seventy = run(model="llama-3.1-70b", hardware="h100-sxm", num_devices=4, engine="vllm",
                  without=["tensor-parallel"])
    assert seventy.baseline.tensor_parallel == 1 and seventy.baseline.pipeline_parallel == 4
    assert seventy.plan.predicted.tensor_parallel == 1  # 70B replicas would need tensor-parallel groups: none
    assert "tensor parallel covers" not in rejected(seventy)["pipeline-parallel"]
    eight = run(model="llama-3.1-8b", hardware="h100-sxm", num_devices=4, engine="vllm", goal="throughput",
                without=["tensor-parallel"])
    dp = next(s for s in eight.plan.steps if s.technique == "data-parallel")
    assert dp.params == {"tensor_parallel_size": 1, "data_parallel_size": 4}
    # a MoE model keeps expert parallel (no tensor parallel in it), not its tensor-parallel-attention form; SGLang's
    # disaggregated instances are tensor parallel: refused
    moe = run(model="mixtral-8x7b", hardware="h100-sxm", num_devices=4, engine="vllm", without=["tensor-parallel"])
    assert moe.plan.predicted.tensor_parallel == 1 and "expert-parallel-tp-attention" in rejected(moe)
    sglang = run(model="llama-3.1-8b", hardware="h100-sxm", num_devices=4, engine="sglang",
                 without=["tensor-parallel"])
    assert "left out as asked" in rejected(sglang)["pd-disaggregation"]


def test_steps_after_distillation_or_pruning_are_the_new_models():
    """A step after distillation is applied to the student: its 4-bit loss is the 3B student's published figure, not
    the 8B teacher's (6.6%); after pruning, fp8 is the engine's own quantization of the pruned model, not the unpruned
    model's published FP8 checkpoint, which the configs had been told to serve."""
    from optiplan.planner.catalog.models import resolve_model
    from optiplan.planner.plan.quality import published_loss

    a = run(model="llama-3.1-8b", hardware="t4", num_devices=1, concurrency=8, max_quality_loss_pct=25.0)
    by_id = {s.technique: s for s in a.plan.steps}
    assert by_id["distillation"].params["student"] == "llama-3.2-3b"
    four_bit = next(s for s in a.plan.steps if s.technique.startswith("weight-int4"))
    method = {"weight-int4-gptq": "gptq-int4-g128", "weight-int4-awq": "awq-int4-g128"}[four_bit.technique]
    assert four_bit.quality_loss_pct == published_loss(method, resolve_model("llama-3.2-3b")).pct
    assert four_bit.quality_loss_pct != published_loss(method, resolve_model("llama-3.1-8b")).pct
    assert a.plan.quality_loss_pct == pytest.approx(sum(s.quality_loss_pct for s in a.plan.steps))
    pruned = run(model="llama-3.1-70b", hardware="h100-sxm", num_devices=1, engine="vllm", max_quality_loss_pct=25.0)
    names = [s.technique for s in pruned.plan.steps]
    assert names[:2] == ["structured-pruning", "weight-fp8"], names
    assert "checkpoint" not in pruned.plan.steps[1].params


def test_where_the_prompts_activations_outweigh_the_cache_the_bottleneck_says_so():
    # eager `generate` prefills a batch's 120k-token prompts together: on one H200 Jamba's prefill activations take
    # ten times its cache, which the review found called a KV-cache limit
    with pytest.raises(ImpossibleError) as err:
        run(model="jamba-1.5-mini", hardware="h200-sxm", workload="rag-long-context", engine="transformers")
    bottleneck = err.value.document.bottleneck
    assert bottleneck.primary == "activation-memory" and "activations take" in bottleneck.evidence[0]


def test_a100_plan_never_computes_in_fp8():
    """No fp8 matmuls on an A100; fp8 weights only where the engine reads them weight-only (vLLM's FP8 Marlin, W8A16:
    its docs, "FP8 models will run on compute capability >= 7.5 (Turing) as weight-only W8A16"), which TensorRT-LLM
    has no kernel for; an fp8 KV cache is stored there by engines whose attention kernel dequantizes it (vLLM on
    FlashInfer, SGLang, TGI, TensorRT-LLM), so it may be planned."""
    a = run(model="llama-3.1-8b", hardware="a100-80gb-sxm", workload="chat")
    # a candidate, weight-only: in the plan, or out of it for another weight format
    assert "weight-fp8" in steps(a) or rejected(a)["weight-fp8"].startswith("one technique of the weight-format group")
    assert all(s.predicted.compute_dtype != "fp8" for s in a.plan.steps)
    assert "no fp8" not in rejected(a).get("kv-fp8", "")
    trt = run(model="llama-3.1-8b", hardware="a100-80gb-sxm", workload="chat", engine="trtllm")
    assert "weight-fp8" not in steps(trt) and "no weight-only fp8 kernel" in rejected(trt)["weight-fp8"]
    fp8 = run(model="llama-3.1-8b", hardware="a100-80gb-sxm", workload="chat", without=("weight-w8a8-int8",))
    step = next(s for s in fp8.plan.steps if s.technique == "weight-fp8")
    assert step.predicted.weight_dtype == "fp8" and step.predicted.compute_dtype in ("bf16", "fp16")


def test_t4_plan_never_uses_bf16_or_flash_attention_2():
    a = run(model="llama-3.2-3b", hardware="t4", workload="chat", concurrency=16)  # an 8B misses the TTFT SLO there
    assert "flash-attention" not in steps(a)
    assert "FlashAttention-2 needs compute capability 8.0" in rejected(a)["flash-attention"]
    assert all(s.predicted.compute_dtype != "bf16" and s.predicted.weight_dtype != "bf16" for s in a.plan.steps)
    assert a.baseline.weight_dtype == "fp16"


def test_batch_one_latency_considers_a_same_family_draft():
    # SGLang runs a separate draft model (vLLM 0.10's V1 engine does not)
    a = run(model="llama-3.1-70b", hardware="h100-sxm", num_devices=4, workload="chat", concurrency=1, engine="sglang")
    draft_steps = [s for s in a.plan.steps if s.technique == "spec-draft"]
    if draft_steps:
        assert draft_steps[0].params["draft_model"] == "llama-3.2-1b"
    else:  # considered and weighed, not ruled out
        reason = rejected(a)["spec-draft"]
        assert "one speculative per plan" in reason or "no gain" in reason
    assert any(s.startswith("spec-") for s in steps(a))
    assert a.plan.predicted.tpot_ms < a.baseline.tpot_ms / 2


def test_moe_considers_expert_parallel():
    a = run(model="mixtral-8x7b", hardware="h100-sxm", num_devices=4, workload="batch-offline")
    reason = rejected(a).get("expert-parallel")
    assert "expert-parallel" in steps(a) or "one parallelism per plan" in reason or "no gain" in reason
    dense = run(model="llama-3.1-8b", hardware="h100-sxm", num_devices=4, workload="batch-offline")
    assert "is not a mixture of experts" in rejected(dense)["expert-parallel"]


def test_128k_rag_pages_the_cache_quantizes_it_for_more_users_and_respects_the_budget():
    # the 8 users' 48k-token caches fit in 16 bits (11 would), so an fp8 cache is not there for room: beside fp8
    # weights it runs attention at the fp8 rate (FlashAttention-3's FP8 attention), and the 48k-token prompts'
    # attention sets the pace of their first tokens and of the steps carrying their chunks (by 15%: bf16 attention
    # already runs at its kernels' measured share, 55% of the peak, fp8 attention at 42% of a peak twice as high)
    a = run(model="llama-3.1-8b", hardware="h100-sxm", workload="rag-long-context")
    assert "paged-kv" in steps(a) and not {"kv-int8", "kv-int4"} & set(steps(a))
    assert a.plan.predicted.max_concurrency >= 8
    by_step = {s.technique: s.predicted for s in a.plan.steps}
    names = steps(a)
    before = by_step[names[names.index("kv-fp8") - 1]]
    assert by_step["kv-fp8"].ttft_ms < 0.9 * before.ttft_ms and by_step["kv-fp8"].batch == before.batch
    # 16 users' caches fit only in 8 bits
    crowded = run(model="llama-3.1-8b", hardware="h100-sxm", workload="rag-long-context", concurrency=16)
    assert "kv-fp8" in steps(crowded) and crowded.plan.predicted.max_concurrency >= 16
    assert "sliding-window-sinks" not in steps(a) + steps(crowded)
    # eager `generate` prefills its batch's 120k-token prompts together: 4 users, not 8, leave room for them
    strict = run(model="llama-3.1-8b", hardware="h100-sxm", workload="rag-long-context", engine="transformers",
                 concurrency=4)
    assert "exceeds the quality budget" in rejected(strict)["sliding-window-sinks"]
    assert strict.plan.predicted.max_concurrency >= 4
    loose = run(model="llama-3.1-8b", hardware="h100-sxm", workload="rag-long-context", engine="transformers",
                concurrency=4, max_quality_loss_pct=15)
    # within 15% the window is allowed; the prompts' prefill, which a window does not shorten, keeps it out of a plan
    # that a smaller model and an 8-bit cache make more room in
    assert "quality budget" not in rejected(loose).get("sliding-window-sinks", "")
    assert loose.plan.predicted.max_concurrency > strict.plan.predicted.max_concurrency


def test_lossless_budget_keeps_only_exact_techniques():
    a = run(model="llama-3.1-70b", hardware="h100-sxm", num_devices=4, workload="chat", max_quality_loss_pct=0)
    assert a.plan.quality_loss_pct == 0 and all(s.quality_loss_pct == 0 for s in a.plan.steps)
    assert "exceeds the quality budget" in rejected(a)["weight-fp8"]


def test_nothing_fits_is_impossible_with_the_nearest_option():
    with pytest.raises(ImpossibleError, match="nothing fits.*nearest feasible") as err:
        run(model="llama-3.1-405b", hardware="l4", workload="chat")
    assert err.value.exit_code == 3


def test_unmeetable_slo_is_impossible():
    with pytest.raises(ImpossibleError, match="no plan meets the workload"):
        run(model="llama-3.1-70b", hardware="l4", num_devices=8, workload="code-completion")


def test_a_preset_beyond_the_model_context_is_clipped_and_an_asked_context_is_impossible():
    a = run(model="gpt2", hardware="h100-sxm", workload="rag-long-context")
    assert a.workload.context_needed == 1024 and a.workload.prompt_tokens_p95 + a.workload.output_tokens_p95 <= 1024
    assert any("clipped to gpt2's 1,024-token context" in w and "131,072" in w for w in a.warnings)
    with pytest.raises(ImpossibleError, match="needs 131,072 tokens of context.*--context 1024"):
        run(model="gpt2", hardware="h100-sxm", workload="rag-long-context", max_context=131072)


def test_hardware_auto_ranks_by_cost():
    a = run(model="llama-3.1-8b", hardware="auto", workload="chat")
    priced = [h.cost_per_million_tokens_usd for h in a.hardware_ranking if h.cost_per_million_tokens_usd is not None]
    assert priced == sorted(priced) and len(a.hardware_ranking) >= 5
    assert (a.hardware.id, a.hardware.count) == (a.hardware_ranking[0].id, a.hardware_ranking[0].count)
    assert a.hardware_reason.startswith(f"{a.hardware.count} x {a.hardware.id} is the cheapest of {len(priced)} "
                                        f"priced catalog options")
    unpriced = len(a.hardware_ranking) - len(priced)
    assert unpriced and f"({unpriced} more meet it without a catalog price)" in a.hardware_reason


def test_training_memory_model_picks_adapters_when_full_fine_tuning_cannot_fit():
    # full fine-tuning with AdamW keeps ~16 bytes per parameter: 1.1 TB for 70B
    a = run(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8, workload="fine-tune")
    assert a.bottleneck.primary == "training-memory" and not a.baseline.fits
    assert {"lora", "qlora", "fsdp"} & set(steps(a)) and a.plan.predicted.fits
    assert a.plan.predicted.training_step_s > 0
    assert "a training technique" in rejected(run(model="llama-3.1-8b", hardware="h100-sxm"))["lora"]


def test_denied_techniques_and_engines():
    a = run(model="llama-3.1-8b", hardware="l4", workload="chat")
    assert "weight-fp8" in steps(a)
    from optiplan.planner.schema import Workload  # noqa: F401

    denied = advise(AdviseRequest(model="llama-3.1-8b", hardware="l4", workload="chat", engine="tgi"))
    assert "spec-draft" not in steps(denied) and "tgi" in rejected(denied)["spec-draft"]


def test_steps_compose_and_the_search_is_deterministic():
    a = run(model="mixtral-8x7b", hardware="h100-sxm", num_devices=2, goal="throughput", workload="chat")
    b = run(model="mixtral-8x7b", hardware="h100-sxm", num_devices=2, goal="throughput", workload="chat")
    assert a.model_dump_json() == b.model_dump_json()
    assert a.plan.steps[-1].predicted == a.plan.predicted
    ids = steps(a)
    assert ids.index("paged-kv") < ids.index("chunked-prefill")  # requires paged-kv
    every = {r.technique for r in a.rejected} | set(ids)
    from optiplan.planner.plan.techniques import all_techniques

    assert every == set(all_techniques()) and all(r.reason for r in a.rejected)


def test_goal_changes_the_plan():
    memory = run(model="llama-3.1-70b", hardware="h100-sxm", num_devices=2, workload="chat", goal="memory",
                 max_quality_loss_pct=5)
    latency = run(model="llama-3.1-70b", hardware="h100-sxm", num_devices=2, workload="chat",
                  max_quality_loss_pct=5)
    assert memory.plan.predicted.memory_per_device_bytes <= latency.plan.predicted.memory_per_device_bytes
    # within the quality tie the latency goal prefers the smaller quality loss (a 16-bit cache over fp8 here): its
    # objective is a whole request's latency, TTFT and the chat's 320 output tokens
    def request_ms(p):
        return p.ttft_ms + p.tpot_ms * 320
    assert request_ms(latency.plan.predicted) <= request_ms(memory.plan.predicted) * (1 + QUALITY_TIE)
    assert "kv-fp8" not in [s.technique for s in latency.plan.steps]
    assert "kv-fp8" in [s.technique for s in memory.plan.steps]
    throughput = run(model="llama-3.1-70b", hardware="h100-sxm", num_devices=2, workload="chat", goal="throughput",
                     max_quality_loss_pct=5)
    assert throughput.plan.predicted.throughput_tokens_per_s >= latency.plan.predicted.throughput_tokens_per_s
    lossless = run(model="llama-3.1-70b", hardware="h100-sxm", num_devices=2, workload="chat", goal="memory",
                   max_quality_loss_pct=0)
    # 8-bit weights: every 4-bit format costs Llama-3-70B more than the 5% budget (GPTQ's published +13.8%, which
    # NF4 is budgeted at)
    assert memory.plan.predicted.weights_per_device_bytes < lossless.plan.predicted.weights_per_device_bytes / 1.9
    assert "weight-nf4" in {r.technique for r in memory.rejected if "exceeds the quality budget" in r.reason}


def test_python_api():
    import optiplan

    a = optiplan.advise("llama-3.1-70b", hardware="h100-sxm", num_devices=2, workload="chat")
    assert a.plan.steps and a.hardware.count == 2


def test_draft_model_memory_is_counted():
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model
    from optiplan.planner.catalog.workloads import load_workload
    from optiplan.planner.plan.advise import build_context
    from optiplan.planner.plan.predict import evaluate
    from optiplan.planner.plan.state import Speculation, baseline_state

    spec, hw, w = resolve_model("llama-3.1-8b"), resolve_hardware("h100-sxm"), load_workload("chat")
    ctx = build_context(spec, hw, 1, w)
    base = baseline_state(spec, hw, 1).with_(paged_kv=True, continuous_batching=True)
    with_draft = base.with_(speculation=Speculation("draft", 4, 0.7, ctx.draft))
    a, b = evaluate(base, w), evaluate(with_draft, w)
    # Llama-3.2-1B: 1.24B parameters at 2 bytes
    assert b.weights_per_device_bytes - a.weights_per_device_bytes == pytest.approx(2.47e9, rel=0.02)
    assert b.max_concurrency < a.max_concurrency


def test_training_on_any_device_never_crashes():
    # a TPU has no fp32 rate; an impossible fine-tune searches every device for the nearest option
    with pytest.raises(ImpossibleError, match="nearest feasible: .*h100-sxm"):
        run(model="llama-3.1-405b", hardware="h100-sxm", workload="fine-tune")
    a = run(model="llama-3.1-8b", hardware="auto", workload="fine-tune")
    assert a.plan.predicted.fits and a.hardware_ranking


def test_workload_validation():
    from optiplan.planner.errors import OptiplanError

    with pytest.raises(OptiplanError, match="max_context 100 is shorter than the p95 prompt"):
        run(model="llama-3.1-8b", hardware="l4", max_context=100)
    with pytest.raises(OptiplanError, match="unknown technique 'nonexistent'"):
        advise(AdviseRequest(model="llama-3.1-8b", hardware="l4", workload=_workload_file(allowed=["nonexistent"])))


def _workload_file(allowed):
    import json
    import tempfile

    path = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({"name": "x", "allowed_techniques": allowed}, path)
    path.close()
    return path.name


def test_a_published_fp8_checkpoint_is_served_in_fp8():
    a = run(model="deepseek-v3", hardware="h200-sxm", num_devices=8, workload="chat")
    assert a.baseline.weight_dtype == "fp8" and "weight-fp8" not in steps(a)
    assert "changes nothing here" in rejected(a)["weight-fp8"]
    assert a.plan.quality_loss_pct < 0.3  # no fp8 loss charged for the published format
    b = run(model="deepseek-v3", hardware="b200", num_devices=8, workload="chat")
    assert b.baseline.weight_dtype == "fp8"
    from optiplan.planner.catalog.model_spec import model_spec_from_config

    cfg = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "vocab_size": 100, "max_position_embeddings": 128, "quantization_config": {"quant_method": "fp8"}}
    assert model_spec_from_config(cfg, "t", "t").checkpoint_dtype == "fp8"


def test_weights_past_the_engines_share_are_the_bottleneck():
    """GPT-NeoX-20B's 41 GB of weights fit an A100-40GB's 43 GB but not what vLLM takes of it: the bottleneck is the
    weights' memory, not a context the model cannot hold (it once said the cache allowed 0 sequences, 'context')."""
    from optiplan.planner.errors import ImpossibleError

    with pytest.raises(ImpossibleError) as err:  # one A100-40GB cannot serve it: the document still names why
        run(model="gpt-neox-20b", hardware="a100-40gb", workload="code-completion", engine="vllm")
    assert err.value.document.bottleneck.primary == "weights-memory"


def test_prompt_lookup_is_weighed_only_where_the_outputs_quote_the_prompt(tmp_path):
    """Prompt lookup drafts from the prompt: for chat's open-ended answers it is refused with the measurement that
    says why (drafts accepted 11.2% of the time on prose, no speed-up); told that its outputs quote its prompts, the
    same load weighs it, at the acceptance measured on code edits."""
    chat = run(model="llama-3.1-8b", hardware="h100-sxm", num_devices=1, workload="chat", concurrency=1)
    assert "spec-ngram" not in steps(chat)
    assert "outputs quote it" in rejected(chat)["spec-ngram"] and "kekzl/imp#1460" in rejected(chat)["spec-ngram"]
    quoting = tmp_path / "chat-over-documents.yaml"
    quoting.write_text((Path(profiles.ROOT) / "workloads" / "chat.yaml").read_text().replace("name: chat", "name: docs")
                       + "quotes_prompt: true\n")
    a = run(model="llama-3.1-8b", hardware="h100-sxm", num_devices=1, workload=str(quoting), concurrency=1)
    assert a.workload.quotes_prompt is True
    weighed = "spec-ngram" in steps(a) or "one speculative per plan" in rejected(a).get("spec-ngram", "")
    assert weighed, rejected(a).get("spec-ngram")
    step = next((s for s in a.plan.steps if s.technique == "spec-ngram"), None)
    assert step is None or "vllm-project/vllm#24344" in step.effect_source


def test_long_prompts_sharing_the_decode_steps_are_named_as_the_bottleneck(tmp_path):
    """Prompts of 16K tokens for 300-token answers on an A100: a decode step of the batch is a fraction of the time
    between output tokens, the prompts' chunks riding in the steps the rest; short prompts at one user leave the
    decode step bandwidth-bound."""
    workload = tmp_path / "long-prompts.yaml"
    workload.write_text("prompt_tokens_mean: 16000\nprompt_tokens_p95: 30000\noutput_tokens_mean: 300\n"
                        "output_tokens_p95: 600\nconcurrency: 8\ngoal: latency\n")
    a = run(model="llama-3.1-8b", hardware="a100", workload=str(workload), engine="sglang")
    assert a.bottleneck.primary == "prefill-interference" and a.bottleneck.category == "latency"
    assert "of the time between output tokens" in a.bottleneck.evidence[0]
    short = run(model="llama-3.1-8b", hardware="a100", workload="chat", engine="sglang", concurrency=1)
    assert short.bottleneck.primary == "memory-bandwidth"
