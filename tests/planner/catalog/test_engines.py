"""Engine profiles (`profiles/engines/`): facts with sources, and what an engine runs by default is in the
baseline, never a plan step that gains."""

from __future__ import annotations

import pytest
from optiplan.planner.catalog.engines import (
    continuous_scheduling,
    engine_defaults,
    engine_runtime,
    engine_table,
)
from optiplan.planner.plan.advise import advise
from optiplan.planner.plan.techniques import all_techniques
from optiplan.planner.schema import AdviseRequest

ENGINES = {"vllm", "sglang", "trtllm", "tgi", "llama.cpp", "transformers"}


def test_every_engine_has_a_profile_with_sources():
    table = engine_table()
    assert ENGINES <= set(table)
    for name, entry in table.items():
        assert entry["version"] and entry["runtime"] in ("serving", "compiled", "transformers"), name
        assert entry["scheduling"] in ("continuous", "static") and entry["scheduling_source"], name
        for d in entry.get("defaults") or []:
            assert d["technique"] in all_techniques(), (name, d)
            assert "http" in d["source"] or "/" in d["source"], (name, d)  # a link or a repository path
        for fmt, k in (entry.get("kernels") or {}).items():
            assert k["kernel"] and k["source"], (name, fmt)


def test_scheduling_and_runtime_follow_the_profiles():
    assert continuous_scheduling("vllm") and not continuous_scheduling("transformers")
    assert engine_runtime("vllm") == "serving" and engine_runtime("transformers") == "transformers"
    assert engine_defaults("serving") == {} and engine_defaults("transformers").keys() <= {"flash-attention"}


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_defaults_are_in_the_baseline_and_gain_nothing(engine):
    advice = advise(AdviseRequest(model="llama-3.1-8b", hardware="h100-sxm", num_devices=1, workload="chat",
                                  engine=engine))
    defaults = engine_defaults(engine)
    assert defaults, engine
    before = advice.baseline
    for step in advice.plan.steps:
        if step.technique in defaults:
            assert step.effect_source.startswith(f"on by default in {engine}"), step
            assert step.predicted.tpot_ms == pytest.approx(before.tpot_ms)
            assert step.predicted.throughput_tokens_per_s == pytest.approx(before.throughput_tokens_per_s)
        before = step.predicted


def test_gpt_fast_is_a_compiled_decode_engine_that_is_profiled_not_planned():
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.catalog.engines import engine_kernel_efficiency, engine_plans, planned_engines
    from optiplan.planner.errors import RequestError
    from optiplan.planner.schema import ProfileRequest

    assert engine_runtime("gpt-fast") == "compiled" and not continuous_scheduling("gpt-fast")
    assert {"cuda-graphs", "torch-compile"} <= engine_defaults("gpt-fast").keys()
    assert engine_kernel_efficiency("gpt-fast", "int4") == "tinygemm"
    assert not engine_plans("gpt-fast") and "gpt-fast" not in planned_engines() and "vllm" in planned_engines()
    with pytest.raises(RequestError, match="gpt-fast is profiled, not planned for: `optiplan profile --engine"):
        advise(AdviseRequest(model="llama-3.1-8b", hardware="a100-80gb-sxm", engine="gpt-fast"))

    def run(engine, context, dtype="bf16"):
        return profile(ProfileRequest(model="llama-3.1-8b", hardware="a100-80gb-sxm", engine=engine, dtype=dtype,
                                      context=context, prompt_tokens=16))

    # setup_caches builds a boolean mask of the whole cache squared: one byte per position pair, on top of the
    # activations a serving engine (masking inside its kernel) needs for the same short prompt
    for context in (8192, 32768):
        extra = run("gpt-fast", context).memory.activation_peak_bytes - run("serving", context).memory.activation_peak_bytes
        assert extra == pytest.approx(context**2, rel=1e-6)
    # its int4 is tinygemm's share of the bandwidth, not the generic engine's Marlin: a slower decode step
    assert run("gpt-fast", 4096, "int4").latency.tpot_ms > run("serving", 4096, "int4").latency.tpot_ms
