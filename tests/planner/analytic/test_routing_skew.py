"""The routed experts' popularity under served traffic (`EfficiencyFactors.routing_skew`): a Zipf law over the
experts, so a few decode tokens share more of their experts than a uniform router's would, while one token still reads
its top_k and a long prompt still reads them all."""

from __future__ import annotations

from dataclasses import replace

import pytest
from optiplan.planner.analytic.params import busiest_device_experts, expected_experts_touched, expert_pick_chances
from optiplan.planner.analytic.profile import setup_for_request
from optiplan.planner.analytic.steps import decode_step
from optiplan.planner.analytic.weight_reads import routed_expert_bytes
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.schema import ProfileRequest


def setup(model="qwen3-235b-a22b", hardware="b200", engine="sglang", devices=8, **kw):
    request = ProfileRequest(model=model, hardware=hardware, engine=engine, num_devices=devices,
                             tensor_parallel=devices, **kw)
    return setup_for_request(request, resolve_model(model), resolve_hardware(hardware))


def uniform(s):
    return replace(s, eff=s.eff.model_copy(update={"routing_skew": 0.0}))


def test_no_skew_is_the_uniform_router():
    for experts, k, tokens in ((8, 2, 3), (128, 8, 16), (256, 8, 64)):
        assert expected_experts_touched(experts, k, tokens) == pytest.approx(
            experts * (1 - (1 - k / experts) ** tokens))
        assert expected_experts_touched(experts, k, tokens, 0.0) == expected_experts_touched(experts, k, tokens)


@pytest.mark.parametrize("skew", [0.3, 0.7, 1.5])
def test_chances_sum_to_top_k_and_none_passes_one(skew):
    for experts, k in ((8, 2), (16, 1), (128, 8), (512, 10)):
        chances = expert_pick_chances(experts, k, skew)
        assert len(chances) == experts
        assert sum(chances) == pytest.approx(k)
        assert max(chances) <= 1.0 + 1e-12
        assert list(chances) == sorted(chances, reverse=True)  # the most popular first
    # a steep skew over few experts caps the favourite at one pick a token, the rest shared in proportion
    assert expert_pick_chances(8, 2, 3.0)[0] == pytest.approx(1.0)


def test_skew_shares_experts_between_a_few_tokens_only():
    assert expected_experts_touched(128, 8, 1, 0.7) == pytest.approx(8)  # one token: its own top_k, whatever the skew
    sixteen = [expected_experts_touched(128, 8, 16, skew) for skew in (0.0, 0.3, 0.7, 1.0)]
    assert sixteen == sorted(sixteen, reverse=True) and sixteen[-1] < 0.85 * sixteen[0]
    assert expected_experts_touched(128, 8, 20_000, 0.7) == pytest.approx(128, rel=1e-3)  # a long prompt: all


def test_busiest_expert_parallel_device_follows_the_skew():
    assert busiest_device_experts(256, 8, 64, 8, 0.0) == busiest_device_experts(256, 8, 64, 8)
    assert busiest_device_experts(256, 8, 64, 8, 0.7) < busiest_device_experts(256, 8, 64, 8)
    assert busiest_device_experts(256, 8, 1, 1, 0.7) == pytest.approx(8)
    assert busiest_device_experts(256, 8, 50_000, 8, 0.7) == pytest.approx(32, rel=1e-3)


def test_a_serving_step_of_a_few_sequences_reads_fewer_experts():
    s = setup()
    assert s.eff.routing_skew > 0  # the serving runtime's, on a GPU (profiles/efficiency.yaml)
    flat = uniform(s)
    assert routed_expert_bytes(s, 1) == pytest.approx(routed_expert_bytes(flat, 1))
    assert routed_expert_bytes(s, 16) < 0.95 * routed_expert_bytes(flat, 16)
    assert decode_step(s, 16, 2048).time_s < decode_step(flat, 16, 2048).time_s
    assert decode_step(s, 1, 2048).time_s == pytest.approx(decode_step(flat, 1, 2048).time_s)


def test_dense_models_and_eager_runtimes_are_left_alone():
    dense = setup(model="llama-3.1-70b")
    assert routed_expert_bytes(dense, 16) == 0.0
    assert decode_step(dense, 16, 2048).time_s == decode_step(uniform(dense), 16, 2048).time_s
    # the skew was fitted on serving engines' points only: transformers' eager generate keeps a uniform router
    assert setup(model="mixtral-8x7b", hardware="h100-sxm", engine="transformers", devices=2).eff.routing_skew == 0.0
