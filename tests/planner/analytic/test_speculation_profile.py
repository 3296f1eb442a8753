"""`optiplan profile --speculative`: speculative decoding priced with the plan search's step model (a proposer's steps,
one verify pass, the share of the gain engines keep at batch), its draft's weights and cache on the devices, and
refused where it cannot be priced as given."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from optiplan.planner.analytic.profile import profile
from optiplan.planner.analytic.speculation import Speculating, speculative_gain_kept
from optiplan.planner.cli.main import main
from optiplan.planner.errors import OptiplanError
from optiplan.planner.schema import ProfileRequest

EAGLE = {"speculative": "eagle3", "spec_tokens": 3, "acceptance": 0.71}
DRAFT = {"speculative": "draft", "draft_model": "llama-3.2-1b", "spec_tokens": 4, "acceptance": 0.7}


def _profile(batch=1, **kw):
    return profile(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="sglang", batch=batch,
                                  context=512, **kw))


def test_speculation_speeds_one_sequence_and_keeps_less_of_it_at_batch():
    """At one sequence the step model's gain whole (about 2.3x with an EAGLE-3 head at 0.71: the published 2.36x the
    acceptance was solved from); at 64 sequences the share engines were measured to keep (0.30 of it)."""
    one = _profile(1).latency.tpot_ms / _profile(1, **EAGLE).latency.tpot_ms
    many = _profile(64).latency.tpot_ms / _profile(64, **EAGLE).latency.tpot_ms
    assert 2.0 < one < 2.6
    assert 1.0 < many < 1 + (one - 1) * 0.5
    assert speculative_gain_kept(64) == pytest.approx(0.30)


def test_a_low_acceptance_costs_more_than_it_gains():
    """A proposal that is rarely accepted still costs its draft steps and the wider verify pass."""
    slow = _profile(1, speculative="draft", draft_model="llama-3.2-1b", spec_tokens=4, acceptance=0.05)
    assert slow.latency.tpot_ms > _profile(1).latency.tpot_ms


def test_the_draft_takes_its_weights_and_cache_beside_the_model():
    plain, drafted = _profile(8), _profile(8, **DRAFT)
    draft_weights = profile(ProfileRequest(model="llama-3.2-1b", hardware="h100-sxm", engine="sglang",
                                           context=512)).memory.weights_bytes
    assert drafted.memory.draft_bytes == pytest.approx(draft_weights, rel=0.01)
    grown = drafted.memory.per_device_bytes - plain.memory.per_device_bytes
    assert grown > drafted.memory.draft_bytes  # its weights, and its cache for the 8 sequences
    assert drafted.throughput.max_batch < plain.throughput.max_batch
    assert drafted.memory.kv_cache_capacity_tokens < plain.memory.kv_cache_capacity_tokens
    # the requests' room counts each one's draft cache too
    req = {"input_tokens": 400, "output_tokens": 200, "concurrency": "max"}
    assert _profile(**req, **DRAFT).requests.max_concurrency < _profile(**req).requests.max_concurrency


def test_request_figures_decode_speculatively():
    req = {"input_tokens": 400, "output_tokens": 200, "concurrency": 4}
    plain, fast = _profile(**req).requests, _profile(**req, **EAGLE).requests
    assert fast.itl_ms < plain.itl_ms * 0.7
    assert fast.output_tokens_per_s > plain.output_tokens_per_s
    assert "speculative decoding (eagle3" in fast.scheduling


def test_a_draft_model_prefills_the_prompt_before_its_first_proposal():
    # the draft's cache must hold the prompt: its prefill comes after the target's, before the first token; an EAGLE
    # head reads the target's states and adds none
    from optiplan.planner.analytic.profile import setup_for_request
    from optiplan.planner.analytic.speculation import draft_prefill_s
    from optiplan.planner.analytic.steps import prefill_step
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model

    req = {"input_tokens": 2000, "output_tokens": 200, "concurrency": 1}
    plain, drafted, eagle = (_profile(**req).requests, _profile(**req, **DRAFT).requests,
                             _profile(**req, **EAGLE).requests)
    draft = setup_for_request(ProfileRequest(model="llama-3.2-1b", hardware="h100-sxm", engine="sglang"),
                              resolve_model("llama-3.2-1b"), resolve_hardware("h100-sxm"))
    own = prefill_step(draft, 1, 2000).time_s * 1e3
    assert drafted.ttft_ms == pytest.approx(plain.ttft_ms + own, rel=0.02) and own > 1.0
    assert eagle.ttft_ms == pytest.approx(plain.ttft_ms)
    assert draft_prefill_s(Speculating("draft", 4, 0.7, draft), 2000, cached=2000) == 0.0  # all of it cached


@pytest.mark.parametrize(("kw", "message"), [
    ({"spec_tokens": 3}, "give --speculative too"),
    ({"speculative": "eagle3"}, "needs --spec-tokens"),
    ({"speculative": "draft", "spec_tokens": 3, "acceptance": 0.7}, "needs --draft"),
    ({"speculative": "ngram", "draft_model": "llama-3.2-1b", "spec_tokens": 3, "acceptance": 0.7}, "has none of"),
    ({"speculative": "mtp", "spec_tokens": 1, "acceptance": 0.8}, "no multi-token-prediction module"),
    ({"speculative": "draft", "draft_model": "llama-3.1-70b", "spec_tokens": 3, "acceptance": 0.7},
     "must be the cheaper model"),
    # GPT-2's 50,257 tokens cannot draft for Llama 3's 128,256: the target would verify other tokens' ids
    ({"speculative": "draft", "draft_model": "gpt2", "spec_tokens": 3, "acceptance": 0.7}, "share a vocabulary"),
    ({**EAGLE, "input_tokens": 400, "output_tokens": 200, "concurrency": 4, "num_requests": 20}, "steady state"),
])
def test_refused_where_it_cannot_be_priced(kw, message):
    with pytest.raises(OptiplanError, match=message):
        _profile(**kw)


def test_a_family_with_padded_vocabularies_drafts_for_itself_and_a_plan_picks_no_foreign_draft():
    """Qwen2.5-0.5B's 151,936 tokens draft for Qwen2.5-72B's 152,064 (one tokenizer, embeddings padded apart); a
    plan's draft is of the target's tokenizer and vocabulary."""
    from optiplan.planner.analytic.speculation import draft_vocab_refusal
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model
    from optiplan.planner.catalog.workloads import load_workload
    from optiplan.planner.plan.advise import build_context

    assert draft_vocab_refusal(resolve_model("qwen2.5-72b"), resolve_model("qwen2.5-0.5b")) is None
    assert "share a vocabulary" in draft_vocab_refusal(resolve_model("llama-3.1-8b"), resolve_model("qwen3-0.6b"))
    drafts = {target: build_context(resolve_model(target), resolve_hardware("h100-sxm"), 4, load_workload("chat")).draft
              for target in ("llama-3.1-70b", "qwen3-32b", "qwen2.5-72b")}
    assert {t: d.name for t, d in drafts.items()} == {"llama-3.1-70b": "llama-3.2-1b", "qwen3-32b": "qwen3-0.6b",
                                                     "qwen2.5-72b": "qwen2.5-0.5b"}
    assert drafts["qwen2.5-72b"].vocab_size != resolve_model("qwen2.5-72b").vocab_size  # paired, padded apart


def test_the_draft_must_split_as_the_target_does():
    """A draft runs over the target's tensor-parallel devices: Qwen2.5-0.5B's 14 heads do not split over 4."""
    with pytest.raises(OptiplanError, match="14 attention heads"):
        profile(ProfileRequest(model="qwen3-32b", hardware="l40s", num_devices=4, engine="sglang",
                               speculative="draft", draft_model="qwen2.5-0.5b", spec_tokens=4, acceptance=0.7))


def test_an_mtp_module_proposes_for_the_model_that_ships_one():
    r = profile(ProfileRequest(model="deepseek-v3", hardware="h200-sxm", num_devices=8, engine="sglang",
                               speculative="mtp", spec_tokens=1, acceptance=0.85))
    plain = profile(ProfileRequest(model="deepseek-v3", hardware="h200-sxm", num_devices=8, engine="sglang"))
    assert r.latency.tpot_ms < plain.latency.tpot_ms
    # the module ships beside the 671B the weights count (a review's finding: it had been left out): one MoE decoder
    # layer of 256 experts, about 11.6B parameters in fp8, an eighth on each device
    assert 1.3e9 < r.memory.draft_bytes < 1.6e9 and r.memory.draft_bytes == pytest.approx(
        r.memory.per_device_bytes - plain.memory.per_device_bytes, rel=0.01)


def test_expected_tokens_follow_leviathan():
    assert Speculating("ngram", 4, 0.6).expected_tokens == pytest.approx((1 - 0.6 ** 5) / 0.4)
    assert Speculating("ngram", 3, 0.9999).expected_tokens == pytest.approx(4, rel=0.01)


def test_the_cli_says_it_speculates():
    args = ["profile", "llama-3.1-8b", "-H", "h100-sxm", "--engine", "sglang", "--input-tokens", "400",
            "--output-tokens", "200", "--concurrency", "4", "--speculative", "draft", "--draft", "llama-3.2-1b",
            "--spec-tokens", "4", "--acceptance", "0.7"]
    text = CliRunner().invoke(main, args, catch_exceptions=False).output
    assert "per token, speculating (draft: 4 proposed a step at acceptance 0.7)" in text
    assert "of weights per device (llama-3.2-1b)" in text
    data = json.loads(CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False).output)
    assert data["memory"]["draft_bytes"] > 2e9 and data["request"]["speculative"] == "draft"
    refused = CliRunner().invoke(main, [*args[:-2], "--acceptance", "1.5"])
    assert refused.exit_code != 0
