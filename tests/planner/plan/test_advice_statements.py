"""What an advice report states beside its figures: the layout a training plan runs, the parts of a training step's
memory, the price a cost comes from, the baseline's layout, why a cheaper alternative lost, near-ties between
devices, and which points each ± band is the error of."""

from __future__ import annotations

import re

import pytest
from optiplan.planner.analytic.accuracy import bands_note
from optiplan.planner.errors import ImpossibleError
from optiplan.planner.plan.advise import advise
from optiplan.planner.report.advice import render
from optiplan.planner.report.figures import baseline_label, cost_and_loss
from optiplan.planner.schema import AdviseRequest


def _advise(**kw):
    try:
        return advise(AdviseRequest(**kw))
    except ImpossibleError as exc:  # the best plan that fits comes with it
        assert exc.document is not None
        return exc.document


def test_a_training_plan_runs_every_device_as_a_data_parallel_rank_and_breaks_its_memory_down():
    a = _advise(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8, workload="fine-tune")
    assert (a.hardware.tensor_parallel, a.hardware.pipeline_parallel, a.hardware.data_parallel) == (1, 1, 8)
    p = a.plan.predicted
    assert p.gradient_bytes > 0 and p.optimizer_state_bytes > 0
    parts = sum(value for _, value in p.training_memory_parts)  # with FSDP's unsharded copies
    assert p.gathered_bytes > 0 and parts <= p.memory_per_device_bytes < parts + 4e9  # the rest is the runtime's
    one = _advise(model="llama-3.2-1b", hardware="l4", workload="fine-tune")
    base = one.baseline  # full fine-tuning in fp32 with AdamW: 4 bytes of weights and of gradients, 8 of states
    assert base.optimizer_state_bytes == pytest.approx(2 * base.gradient_bytes, rel=0.01)
    assert base.weights_per_device_bytes == pytest.approx(base.gradient_bytes, rel=0.01)
    assert "optimizer states" in render(one, "text") and "gradients" in render(one, "md")


def test_no_memory_share_is_offered_past_the_device_for_a_baseline_that_does_not_fit():
    a = _advise(model="llama-3.1-70b", hardware="h100-sxm", workload="chat", goal="cost")
    assert not a.baseline.fits
    assert not any(w.startswith("the baseline holds") for w in a.warnings), a.warnings


def test_a_cost_names_its_price_and_the_range_it_spans():
    from optiplan.planner.numbers import usd

    a = _advise(model="llama-3.1-8b", hardware="h100-sxm", workload="chat", goal="cost")
    low, high = a.hardware.usd_per_hour_range
    assert low < a.hardware.usd_per_hour < high
    text = cost_and_loss(a)
    cost = a.plan.predicted.cost_per_million_tokens_usd
    assert f"a device at ${a.hardware.usd_per_hour:,.2f}/h" in text
    assert f"{usd(cost * low / a.hardware.usd_per_hour)}-{usd(cost * high / a.hardware.usd_per_hour)}" in text
    assert usd(0.0623) == "$0.062" and usd(0.26) == "$0.26" and usd(1234.5) == "$1,234.50"
    assert usd(0.0996) == "$0.10" and usd(0.0949) == "$0.095"


def test_the_baseline_row_names_the_layout_its_figures_are_of():
    # a serving engine's baseline over two GPUs is tensor parallel (as `profile` spreads it); llama.cpp splits layers
    a = _advise(model="mixtral-8x7b", hardware="h100-sxm", num_devices=2, workload="chat", goal="throughput")
    assert a.baseline.tensor_parallel == 2 and baseline_label(a) == "baseline (tp 2)"
    assert "baseline (tp 2)" in render(a, "md") and "baseline (tp 2)" in render(a, "html")
    layers = _advise(model="mixtral-8x7b", hardware="h100-sxm", num_devices=2, workload="chat", engine="llama.cpp")
    assert layers.baseline.pipeline_parallel == 2 and baseline_label(layers) == "baseline (pp 2)"
    one = _advise(model="llama-3.1-8b", hardware="l4", workload="chat")
    assert baseline_label(one) == "baseline"


def test_an_alternative_ahead_on_the_goal_says_why_the_plan_won_and_what_it_costs():
    a = _advise(model="llama-3.1-70b", hardware="auto", workload="chat", goal="cost")
    tie = [x.note for x in a.alternatives if "wins the tie" in x.note]
    assert tie and all("cost per million output tokens" in n for n in tie), [x.note for x in a.alternatives]
    # near-tied devices are said to be as cheap within the prediction's error
    first, second = a.hardware_ranking[0], a.hardware_ranking[1]
    near = second.cost_per_million_tokens_usd <= 1.05 * first.cost_per_million_tokens_usd
    assert ("as cheap within the prediction's error" in a.hardware_reason) == near
    # each priced option's cost over its catalog price range, the ranking at its middle; where the two cheapest
    # ranges overlap (and they are not a near tie), the reason says the provider's rate decides
    for h in a.hardware_ranking:
        if h.cost_range_usd:
            assert h.cost_range_usd[0] <= h.cost_per_million_tokens_usd <= h.cost_range_usd[1]
    ranges = first.cost_range_usd, second.cost_range_usd
    overlap = all(ranges) and ranges[1][0] <= ranges[0][1]
    assert ("depends on the provider's rate" in a.hardware_reason) == (overlap and not near)


def test_the_bands_note_names_each_figures_points():
    a = _advise(model="llama-3.1-8b", hardware="l4", workload="chat")
    note = bands_note(a.accuracy)
    assert "each figure against its own points" in note
    for figure, band in a.accuracy.items():
        group = re.match(r"^.* \(([^()]*)\)$", band.source).group(1)
        assert group in note, figure


def test_overlapping_price_ranges_leave_the_ranking_to_the_providers_rate():
    from optiplan.planner.plan.hardware_ranking import explain_ranking
    from optiplan.planner.schema.advice import HardwareOption

    def option(hw, cost, span):
        return HardwareOption(id=hw, count=1, meets_workload=True, cost_per_million_tokens_usd=cost,
                              cost_range_usd=span, throughput_tokens_per_s=4000.0, note="weight-fp8")
    # the reviewer's case: an MI325X at $0.12 ($0.11-0.13) against an H100 at $0.28 whose range starts at $0.11
    text = explain_ranking([option("mi325x", 0.12, (0.11, 0.13)), option("h100-sxm", 0.28, (0.11, 0.46))])
    assert "which is cheaper depends on the provider's rate" in text and "$0.11-$0.46" in text
    apart = explain_ranking([option("mi325x", 0.12, (0.11, 0.13)), option("l40s", 0.30, (0.20, 0.40))])
    assert "provider's rate" not in apart and "within the prediction's error" not in apart


def test_an_option_cheaper_at_the_low_ends_of_the_price_ranges_is_named_wherever_it_ranks():
    from optiplan.planner.plan.hardware_ranking import explain_ranking
    from optiplan.planner.schema.advice import HardwareOption

    def option(hw, cost, span):
        return HardwareOption(id=hw, count=1, meets_workload=True, cost_per_million_tokens_usd=cost,
                              cost_range_usd=span, throughput_tokens_per_s=4000.0, note="weight-fp8")
    # a reviewer's case: MI325X $0.67 ($0.63-0.71), MI300X next at $0.68, two H100s third at $1.39 ($0.54-2.24)
    ranking = [option("mi325x", 0.67, (0.63, 0.71)), option("mi300x", 0.68, (0.65, 0.70)),
               option("h100-sxm", 1.39, (0.54, 2.24))]
    text = explain_ranking(ranking)
    assert "at the low ends of the catalog's price ranges 1 x h100-sxm costs less ($0.54 against $0.63" in text
    assert "low ends" not in explain_ranking(ranking[:2])
    # low ends within the ranking's tie of each other name no cheaper option ("$0.11 against $0.11" had read so)
    tie = [option("mi325x", 0.12, (0.110, 0.13)), option("h100-sxm", 0.28, (0.106, 0.46))]
    assert "low ends" not in explain_ranking(tie)
