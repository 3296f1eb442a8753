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
        assert entry["version"] and entry["runtime"] in ("serving", "transformers"), name
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
