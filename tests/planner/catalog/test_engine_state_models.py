"""What each engine serves of state-space, linear-attention and hybrid models (`state_models` in
`profiles/engines/`): the model types, the techniques it does not run on them and the options they need, each with
its source; the planner and the configs follow the data."""

from __future__ import annotations

import pytest
from optiplan.planner.analytic.kvcache import state_parts
from optiplan.planner.analytic.profile import profile
from optiplan.planner.catalog.engine_state_models import (
    recurrent_state_dtype,
    state_model_options,
    state_model_refusal,
    state_technique_refusal,
)
from optiplan.planner.catalog.engines import (
    engine_table,
)
from optiplan.planner.catalog.hybrid_spec import HYBRID_TYPES
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.deploy.render import render
from optiplan.planner.errors import DeployError, RequestError
from optiplan.planner.plan.advise import advise
from optiplan.planner.plan.techniques import all_techniques
from optiplan.planner.schema import AdviseRequest, ProfileRequest


def _advice(model, engine, workload="rag-long-context", devices=1, **kw):
    return advise(AdviseRequest(model=model, hardware="h100-sxm", num_devices=devices, workload=workload,
                                engine=engine, **kw))


def test_every_engine_states_what_it_serves_with_sources():
    for name, entry in engine_table().items():
        facts = entry["state_models"]
        assert set(facts["model_types"]) <= set(HYBRID_TYPES), name
        assert facts["model_types"] or not entry.get("plans", True), name  # only a profiled-only engine serves none
        assert "/" in facts["source"] and facts["kv_quantization_source"], name
        for rule in facts["refuses"]:
            assert set(rule["techniques"]) <= set(all_techniques()), (name, rule)
            assert rule["reason"] and ("/" in rule["source"] or "http" in rule["source"]), (name, rule)
            assert set(rule.get("model_types", facts["model_types"])) <= set(facts["model_types"]), (name, rule)
        for option in facts["options"]:
            assert option["value"] and option["why"] and option["source"], (name, option)


def test_an_engine_that_does_not_serve_a_model_says_which_ones_do():
    assert state_model_refusal("vllm", "jamba") is None
    why = state_model_refusal("tgi", "jamba")
    assert "does not serve jamba" in why and "it serves mamba" in why and "vllm" in why and "sglang" in why
    assert state_model_refusal("serving", "jamba") is None  # the generic engine has no facts to refuse with
    assert "it serves no state-space or hybrid model" in state_model_refusal("gpt-fast", "jamba")
    with pytest.raises(RequestError, match="tgi .* does not serve jamba"):
        _advice("jamba-1.5-mini", "tgi", devices=2)


def test_exceptions_and_model_scoped_rules():
    assert "roll a recurrent state back" in state_technique_refusal("vllm", "spec-ngram", "jamba")
    assert state_technique_refusal("vllm", "spec-mtp", "qwen3_next") is None  # Qwen3-Next's own MTP head
    assert state_technique_refusal("trtllm", "prefix-caching", "nemotron_h") is None  # KV reuse: yes
    assert "no KV cache reuse" in state_technique_refusal("trtllm", "prefix-caching", "qwen3_next")
    assert state_technique_refusal("sglang", "prefix-caching", "jamba") is None  # MambaRadixCache
    assert [o["option"] for o in state_model_options("vllm", "nemotron_h")] == ["mamba-ssm-cache-dtype"]
    assert state_model_options("vllm", "jamba") == []


def test_planner_rejects_what_the_engine_does_not_run_on_a_hybrid():
    vllm = _advice("jamba-1.5-mini", "vllm", devices=2)
    reasons = {r.technique: r.reason for r in vllm.rejected}
    steps = [s.technique for s in vllm.plan.steps]
    assert "prefix caching off for hybrid" in reasons["prefix-caching"] and "prefix-caching" not in steps
    assert "Mamba with speculative decoding" in reasons["spec-ngram"] and "spec-ngram" not in steps
    sglang = _advice("jamba-1.5-mini", "sglang", devices=2)
    assert "prefix-caching" in [s.technique for s in sglang.plan.steps]  # the workload shares a prefix
    dense = _advice("llama-3.1-8b", "vllm")
    assert "prefix-caching" in [s.technique for s in dense.plan.steps]  # the rules touch state models only


def test_transformers_refuses_kv_quantization_on_a_hybrid_but_a_pure_ssm_says_it_has_no_attention():
    reasons = {r.technique: r.reason for r in _advice("lfm2-1.2b", "transformers").rejected}
    assert "QuantizedCache" in reasons["kv-int8"] and "QuantizedCache" in reasons["kv-int4"]
    # its fp8 backend is the same QuantizedCache: Jamba's generate raised it (the review's plan on one H200 had
    # kv-fp8 as a step, where without it the workload needs two; four now, its weights not quantized either, as
    # transformers leaves its fused experts in full precision)
    jamba = advise(AdviseRequest(model="jamba-1.5-mini", hardware="h200-sxm", num_devices=4,
                                 workload="rag-long-context", engine="transformers"))
    assert "QuantizedCache" in {r.technique: r.reason for r in jamba.rejected}["kv-fp8"]
    assert "kv-fp8" not in [s.technique for s in jamba.plan.steps]
    reasons = {r.technique: r.reason for r in _advice("mamba2-2.7b", "transformers").rejected}
    assert "has no attention layer" in reasons["kv-int8"]


def test_configs_follow_the_engine_data():
    sglang_plan = _advice("nemotron-h-8b", "sglang")
    assert "prefix-caching" in [s.technique for s in sglang_plan.plan.steps]
    files = render(sglang_plan, "vllm")
    script, readme = files["vllm/serve.sh"], files["README.md"]
    assert "--mamba-ssm-cache-dtype float32" in script and "--enable-prefix-caching" not in script
    assert "prefix-caching" in readme and "prefix caching off for hybrid" in readme
    with pytest.raises(DeployError, match="does not serve nemotron_h"):
        render(sglang_plan, "tgi")
    assert "mamba-ssm" not in render(sglang_plan, "sglang")["sglang/serve.sh"]


def test_every_speculation_method_is_ruled_on_where_an_engine_rules_on_speculation():
    for name, entry in engine_table().items():
        speculative = {t_id for t_id, t in all_techniques().items()
                       if t.family == "speculative decoding" and name in t.engines}
        for rule in entry["state_models"]["refuses"]:
            if set(rule["techniques"]) & speculative:
                assert speculative <= set(rule["techniques"]), (name, speculative - set(rule["techniques"]))


def test_qwen3_next_speculates_with_its_own_mtp_module_as_each_engine_names_it():
    """Qwen3-Next ships an MTP module (its card; its config names no count, so the catalog does), the one
    speculation vLLM and SGLang run on it: vLLM as qwen3_next_mtp (its recipe), SGLang as NEXTN (its Qwen3 page).
    The plan had refused it ('ships no multi-token-prediction heads') and lost its main speed-up. At 8 in flight: at
    chat's 32 SGLang's plan mixes prompt chunks into its decode steps instead, which speculation turns off, every
    prompt step then launching its kernels in series (no overlap scheduler for Qwen3-Next's prefix cache)."""
    for engine, flag in (("vllm", '"method":"qwen3_next_mtp"'), ("sglang", "--speculative-algorithm NEXTN")):
        a = _advice("qwen3-next-80b-a3b", engine, workload="chat", devices=2, concurrency=8)
        assert "spec-mtp" in [s.technique for s in a.plan.steps], engine
        assert flag in render(a, engine)[f"{engine}/serve.sh"]
    deepseek = advise(AdviseRequest(model="deepseek-v3", hardware="h200-sxm", num_devices=8, workload="chat",
                                    engine="vllm"))
    assert "spec-mtp" in [s.technique for s in deepseek.plan.steps]
    assert '"method":"deepseek_mtp"' in render(deepseek, "vllm")["vllm/serve.sh"]


def test_vllms_fp32_ssm_state_for_nemotron_h_is_priced_as_its_configs_set_it():
    # the configs write --mamba-ssm-cache-dtype float32 for Nemotron-H: its recurrent state takes 4 bytes an element
    assert recurrent_state_dtype("vllm", "nemotron_h") == "fp32"
    assert recurrent_state_dtype("sglang", "nemotron_h") is None
    assert recurrent_state_dtype("vllm", "jamba") is None
    spec = resolve_model("nemotron-h-8b")
    recurrent, _ = state_parts(spec, "serving")

    def cached(engine):
        return profile(ProfileRequest(model="nemotron-h-8b", hardware="l4", engine=engine, context=4096)).memory

    vllm, sglang = cached("vllm"), cached("sglang")
    assert vllm.kv_cache_bytes - sglang.kv_cache_bytes == pytest.approx(recurrent * 2, rel=1e-6)
