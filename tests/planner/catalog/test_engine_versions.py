"""Engine releases (`planner/catalog/engine_versions.py`): an engine pinned to a release (`sglang==0.5.6`) is
predicted with its profile's `versions` rules for that release; unpinned, with the profile as written."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from optiplan.planner.analytic.profile import profile
from optiplan.planner.catalog.engine_graphs import prefill_graph_reserve_mib, prefill_graph_tokens
from optiplan.planner.catalog.engine_state_models import state_model_refusal, state_technique_refusal
from optiplan.planner.catalog.engine_versions import (
    pinned_profile,
    profile_range,
    release_holds,
    release_ranges,
    rule_range,
)
from optiplan.planner.catalog.engines import device_fact, engine_profile, engine_table, release_warning
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.cli.main import main
from optiplan.planner.errors import RequestError, UnknownNameError
from optiplan.planner.schema import ProfileRequest
from optiplan.planner.schema.releases import release_version, split_engine
from packaging.version import Version
from pydantic import ValidationError


def test_releases_read_as_pip_and_llama_cpp_write_them():
    assert split_engine("sglang==0.5.6") == ("sglang", "0.5.6")
    assert split_engine("vllm") == ("vllm", None)
    assert release_version("v0.11.0") == Version("0.11.0")
    assert release_version("0.5.6.post1") > Version("0.5.6")
    assert release_version("b6500") == Version("6500")
    with pytest.raises(ValueError, match="not a release number"):
        release_version("main")


def test_the_first_rule_holding_the_release_sets_each_fact():
    base = {"name": "e", "version": ">=1", "a": 1, "b": 2, "c": 3, "d": {"x": 1, "y": 2},
            "versions": [{"range": "<1.5", "a": 10, "source": "s"},
                         {"range": "<2", "a": 20, "b": 30, "d": {"y": 5}, "source": "s"}]}
    old = pinned_profile(base, "1.2")
    assert (old["a"], old["b"], old["c"], old["version"]) == (10, 30, 3, "1.2")
    assert old["version_rules"] == ["<1.5", "<2"]
    assert old["d"] == {"x": 1, "y": 5}  # a mapping updated, the rest of it kept
    mid = pinned_profile(base, "v1.7.0")
    assert (mid["a"], mid["b"]) == (20, 30)
    new = pinned_profile(base, "2.0")
    assert (new["a"], new["b"], new["version_rules"]) == (1, 2, [])
    assert base["a"] == 1 and base["d"] == {"x": 1, "y": 2} and "version_rules" not in base  # left as it was


def test_every_versions_rule_has_a_range_a_source_and_known_facts():
    for name, entry in engine_table().items():
        for rule in entry.get("versions") or []:
            rule_range(rule)  # raises on a missing or malformed range
            assert rule.get("source"), (name, rule["range"])
            facts = set(rule) - {"range", "source", "note"}
            assert facts and facts <= set(entry), (name, rule["range"], facts - set(entry))
        conditioned = len(release_ranges(entry)) > len(entry.get("versions") or [])
        # a device rule or a refusal that names releases is held at the profile's `release` when unpinned, and an
        # unpinned engine is that release pinned: no `versions` rule may hold there
        assert entry.get("release") or not conditioned, name
        if entry.get("release"):
            assert not any(release_holds(entry["release"], r["range"]) for r in entry.get("versions") or []), name
            assert release_holds(entry["release"], profile_range(entry)), name


def test_a_release_outside_the_profiles_range_is_warned_of():
    assert release_warning("sglang==0.5.6") is None and release_warning("sglang") is None
    assert "describes >=0.5, not 0.4.6" in release_warning("sglang==0.4.6")
    assert "describes >=b6500, not b6000" in release_warning("llama.cpp==b6000")
    warnings = profile(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="vllm==0.9.1")).warnings
    assert any("vllm's profile describes >=0.10, not 0.9.1" in w for w in warnings)


def test_a_pinned_engine_is_checked_where_it_is_named():
    assert ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine="sglang==v0.5.6").engine == "sglang==0.5.6"
    for bad in ("serving==1.0", "sglang==latest", "sglang=="):
        with pytest.raises(ValidationError):
            ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", engine=bad)
    with pytest.raises(UnknownNameError):
        engine_profile("sglangg==0.5.6")
    out = CliRunner().invoke(main, ["profile", "llama-3.1-8b", "--engine", "sglang==soon"])
    assert out.exit_code == 2 and "not a release number" in out.output


def test_sglang_keeps_gpt_oss_in_one_pool_before_0_5_8_and_on_blackwell_before_0_5_10():
    def reserved(engine: str, hardware: str = "h200-sxm") -> int:
        request = ProfileRequest(model="gpt-oss-120b", hardware=hardware, num_devices=8, engine=engine, context=8192)
        return profile(request).memory.kv_cache_pool_bytes

    split, whole = reserved("sglang"), reserved("sglang==0.5.6")
    # every token slot holds all 36 layers in 0.5.6; later, the 18 windowed layers' pool holds 0.8 of the full's tokens
    assert whole / split == pytest.approx(36 / (18 + 18 * 0.8), rel=0.01)
    assert reserved("sglang==0.5.8") == split
    # on a B200 0.5.8-0.5.9 run gpt-oss on trtllm_mha, which keeps the cache whole: so does an unpinned sglang (0.5.9)
    b200_whole = reserved("sglang==0.5.6", "b200")
    assert reserved("sglang", "b200") == reserved("sglang==0.5.9", "b200") == b200_whole
    assert reserved("sglang==0.5.10", "b200") / b200_whole == pytest.approx(split / whole, rel=0.01)
    out = CliRunner().invoke(main, ["profile", "gpt-oss-120b", "-H", "b200", "--gpus", "8",
                                    "--engine", "sglang==0.5.6"])
    assert out.exit_code == 0 and "engine sglang==0.5.6" in out.output


def _ttft(model: str, hardware: str, engine: str, prompt: int, **kw) -> float:
    request = ProfileRequest(model=model, hardware=hardware, num_devices=8, engine=engine, input_tokens=prompt,
                             output_tokens=16, concurrency=1, **kw)
    return profile(request).requests.ttft_ms


def test_sglang_from_0_5_10_replays_piecewise_graphs_of_prefill_where_the_deployment_allows():
    facts = engine_profile("sglang==0.5.10")
    eager, graphs = engine_profile("sglang")["eager_prefill"]["layer_s"], facts["prefill_graphs"]["layer_s"]
    saved = _ttft("llama-3.1-70b", "h100-sxm", "sglang", 1000) \
        - _ttft("llama-3.1-70b", "h100-sxm", "sglang==0.5.10", 1000)
    assert saved == pytest.approx(80 * (eager - graphs) * 1e3, rel=0.05)  # 80 layers, each launched from graphs
    # not on ROCm, and not under data-parallel attention
    assert _ttft("llama-3.1-70b", "mi300x", "sglang==0.5.10", 1000) == _ttft("llama-3.1-70b", "mi300x", "sglang", 1000)
    assert _ttft("deepseek-v3", "h200", "sglang==0.5.10", 1000, attention_data_parallel=8) \
        == _ttft("deepseek-v3", "h200", "sglang", 1000, attention_data_parallel=8)
    # latent attention: graphs up to 2,048 tokens a step, a longer prompt runs eagerly
    assert _ttft("deepseek-v3", "h200", "sglang==0.5.10", 1000) < _ttft("deepseek-v3", "h200", "sglang", 1000) - 50
    assert _ttft("deepseek-v3", "h200", "sglang==0.5.10", 8000) == _ttft("deepseek-v3", "h200", "sglang", 8000)
    # the graphs' memory: 8 MiB for each of the 58 sizes captured up to an H100's 8,192-token chunk
    spec = resolve_model("llama-3.1-70b")
    assert prefill_graph_tokens("sglang==0.5.10", spec, resolve_hardware("h100-sxm"), 8192) == 8192
    assert prefill_graph_reserve_mib("sglang==0.5.10", spec, 8192) == 58 * 8
    assert prefill_graph_tokens("sglang", spec, resolve_hardware("h100-sxm"), 8192) == 0


def test_sglang_reads_awq_through_a_16_bit_copy_on_rocm():
    """No Marlin on ROCm: SGLang dequantizes each AWQ weight to 16 bits and multiplies that, so int4 weights decode
    slower than the 16-bit ones there, and faster on CUDA (Marlin)."""
    def tpot(hardware: str, dtype: str) -> float:
        request = ProfileRequest(model="llama-3.1-8b", hardware=hardware, engine="sglang", dtype=dtype)
        return profile(request).latency.tpot_ms

    assert tpot("mi300x", "int4") > 2 * tpot("mi300x", "bf16")
    assert tpot("h100-sxm", "int4") < 0.6 * tpot("h100-sxm", "bf16")


def test_rules_that_name_releases_hold_at_the_pinned_one_else_at_the_profiles_own():
    assert release_holds("0.28.0", ">=0.28") and not release_holds("0.27.0", ">=0.28")
    assert release_holds(None, None) and not release_holds(None, "<1")  # an unknown release: unconditioned rules only
    b200 = resolve_hardware("b200")
    budgets = {e: (device_fact(e, b200, "prefill_chunk_tokens"), device_fact(e, b200, "max_running"))
               for e in ("vllm", "vllm==0.27.0", "vllm==0.28.0")}
    assert budgets == {"vllm": (8192, 1024), "vllm==0.27.0": (8192, 1024), "vllm==0.28.0": (16384, 1024)}
    assert engine_profile("vllm==0.20.0")["kv_memory"]["share"] == 0.92
    assert engine_profile("vllm")["kv_memory"]["share"] == 0.9
    # hybrid models' prefix cache: off by default before 0.28, on from it; pure Mamba off in every release
    assert state_technique_refusal("vllm", "prefix-caching", "qwen3_next")
    assert state_technique_refusal("vllm==0.28.0", "prefix-caching", "qwen3_next") is None
    assert state_technique_refusal("vllm==0.28.0", "prefix-caching", "mamba2")


def test_a_build_before_a_models_support_refuses_to_profile_it():
    assert state_model_refusal("llama.cpp==b7000", "qwen3_next")
    assert state_model_refusal("llama.cpp==b7000", "lfm2_moe") is None
    assert state_model_refusal("llama.cpp==b6600", "lfm2_moe") and state_model_refusal("llama.cpp", "qwen3_next") is None
    with pytest.raises(RequestError, match="b7000 does not serve qwen3_next"):
        profile(ProfileRequest(model="qwen3-next-80b-a3b", hardware="h100-sxm", engine="llama.cpp==b7000"))
    with pytest.raises(RequestError, match="does not serve nemotron_h"):  # TGI serves no hybrid model
        profile(ProfileRequest(model="nemotron-h-8b", hardware="h100-sxm", engine="tgi"))


def test_the_catalog_lists_the_releases_where_an_engines_facts_change_once_each_in_order():
    from optiplan.planner.catalog.engine_versions import release_boundaries

    table = engine_table()
    sglang = release_boundaries(table["sglang"])
    assert sglang == sorted(set(sglang), key=lambda v: tuple(int(x) for x in v.split("."))) and "0.5.4" in sglang
    assert release_boundaries(table["vllm"])[:3] == ["0.12", "0.15", "0.17"]
    assert all(b.startswith("b") for b in release_boundaries(table["llama.cpp"]))
