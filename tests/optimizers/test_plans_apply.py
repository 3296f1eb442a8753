"""Every plan the search offers for the transformers engine on this machine applies and generates: the best plan
and its Pareto alternatives, for each goal, on the test model (the runtime conflicts the declarations state,
one KV cache per generation and speculation on a dynamic cache at batch 1, keep impossible stacks out)."""

from __future__ import annotations

import pytest
from optiplan.optimizers.registry import check_supported, registry
from optiplan.optimizers.runtime import LoadedModel
from optiplan.optimizers.workspace import Workspace
from optiplan.planner.errors import ImpossibleError
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest


def _plans(target_path, goal: str, concurrency: int) -> list[list[str]]:
    request = AdviseRequest(model=str(target_path), hardware="local", engine="transformers", goal=goal,
                            concurrency=concurrency)
    try:
        advice = advise(request)
    except ImpossibleError as exc:
        advice = exc.document
    plans = [[s.technique for s in advice.plan.steps], *[a.techniques for a in advice.alternatives]]
    return [[t for t in plan if t in registry() and "cpu" in registry()[t].declared.devices] for plan in plans]


@pytest.mark.parametrize("goal, concurrency", [("latency", 1), ("latency", 8), ("throughput", 8), ("memory", 8),
                                               ("context", 1)])
def test_every_offered_plan_applies_and_generates(target_path, draft_path, goal, concurrency):
    from optiplan.optimizers.artifact import load

    plans = _plans(target_path, goal, concurrency)
    assert plans
    for plan in plans:
        base = load(target_path, "cpu", dtype="fp32")
        ws = Workspace(model=base.model, tokenizer=base.tokenizer, device="cpu", source=target_path)
        ws.runtime.dtype = "fp32"
        for technique in plan:
            if technique == "torch-compile":
                continue  # compiling takes a minute on CPU; its cache conflicts are checked by the declarations
            params = {"draft": str(draft_path), "num_assistant_tokens": 2} if technique == "spec-draft" else {}
            check_supported(technique, "cpu").apply(ws, params)
        loaded = LoadedModel(ws.model, ws.tokenizer, "cpu", ws.runtime, ws.draft)
        assert loaded.generate_many(["The for statement is", "A class definition"], max_new_tokens=4) >= 4, plan


def test_the_transformers_runtime_conflicts_are_declared():
    from optiplan.planner.plan.techniques import all_techniques, runtime_conflict

    t = all_techniques()
    for a, b in (("kv-int4", "paged-kv"), ("kv-int8", "torch-compile"), ("sliding-window-sinks", "kv-fp8"),
                 ("spec-ngram", "kv-int4"), ("spec-draft", "paged-kv"), ("spec-ngram", "torch-compile")):
        assert runtime_conflict(t[a], t[b], "transformers"), (a, b)
        assert runtime_conflict(t[a], t[b], "vllm") is None  # a serving engine has its own runtime
    assert runtime_conflict(t["weight-int8"], t["kv-int4"], "transformers") is None
    assert runtime_conflict(t["spec-ngram"], t["weight-int8"], "transformers") is None
