"""What each goal optimizes, from first principles (issue 15's review): the throughput goal serves as many
requests at once as memory and the time-per-token SLO allow, and the context goal gains nothing from room beyond the
sequences the workload needs."""

from __future__ import annotations

from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest


def test_the_throughput_goal_fills_the_memory_within_the_slo():
    advice = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", num_devices=1, workload="chat",
                                  goal="throughput"))
    p = advice.plan.predicted
    assert p.batch > advice.workload.concurrency * 4 and p.batch <= p.max_concurrency
    assert p.tpot_ms <= advice.workload.slo.tpot_p95_ms
    # prompt lookup verifies several tokens per sequence: at a full batch the step is compute-bound and it costs
    assert "spec-ngram" not in [s.technique for s in advice.plan.steps]


def test_the_context_goal_does_not_buy_room_nobody_asked_for():
    advice = advise(AdviseRequest(model="llama-3.1-8b", hardware="l4", num_devices=1, workload="rag-long-context",
                                  goal="context", concurrency=2))
    ids = [s.technique for s in advice.plan.steps]
    assert "cpu-offload" not in ids
    assert advice.plan.predicted.max_concurrency >= 2
    for step in advice.plan.steps:  # every step that costs speed is there to fit the two sequences
        if step.predicted.tpot_ms > advice.baseline.tpot_ms * 1.01:
            assert not advice.baseline.fits or advice.baseline.max_concurrency < 2


def test_a_rejected_alternative_format_says_what_it_would_change():
    advice = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", num_devices=1, workload="chat",
                                  goal="latency"))
    chosen = next(s.technique for s in advice.plan.steps if s.technique.startswith("weight-"))
    reasons = {r.technique: r.reason for r in advice.rejected}
    other = next(t for t in ("weight-int8", "weight-fp8") if t != chosen)
    assert f"the plan uses {chosen}; with {other} instead: TPOT" in reasons[other]
    assert "quality loss" in reasons[other] and "for the latency goal" in reasons[other]
