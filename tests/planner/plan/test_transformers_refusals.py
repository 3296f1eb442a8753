"""What transformers (optiplan apply's runtime) cannot run on a model is refused by the plan, with its reason, rather
than failing apply: each case was found by running `apply --goal latency` on a tiny random model of the architecture
(transformers 5.24, this CPU), where the planned step crashed."""

from __future__ import annotations

import pytest
from optiplan.planner.plan.advise import advise
from optiplan.planner.schema import AdviseRequest


# devices that hold each model in 16 bits, as transformers' device_map splits it
DEVICES = {"llama-4-scout": 4, "jamba-1.5-mini": 2, "qwen3-next-80b-a3b": 4, "phi-3.5-moe": 2,
           "mixtral-8x7b": 2}


def _rejected(model: str) -> dict[str, str]:
    a = advise(AdviseRequest(model=model, hardware="h100-sxm", num_devices=DEVICES.get(model, 1), workload="chat",
                             engine="transformers"))
    return {r.technique: r.reason for r in a.rejected} | {s.technique: "" for s in a.plan.steps}


@pytest.mark.parametrize("model, technique, reason", [
    # continuous batching's paged cache: full- and sliding-attention layers only ("Invalid layer type: ...")
    ("llama-4-scout", "paged-kv", "chunked-attention layers are neither"),
    ("jamba-1.5-mini", "paged-kv", "a state layer is neither"),
    ("qwen3-next-80b-a3b", "paged-kv", "a state layer is neither"),
    ("lfm2-1.2b", "paged-kv", "a state layer is neither"),
    # QuantizedCache: full-attention layers only
    ("llama-4-scout", "kv-int4", "chunked-attention layers"),
    ("gemma-3-1b", "kv-int8", "sliding-window layers"),
    ("gemma-2-9b", "kv-fp8", "sliding-window layers"),
    # the static cache's window layers keep their length as a Python int, on which the compiled step recompiles
    ("recurrentgemma-2b", "torch-compile", "recompiles at every token"),
    ("gemma-2-9b", "torch-compile", "recompiles at every token; gemma-2-9b has sliding-window layers"),
    ("llama-4-scout", "torch-compile", "chunked-attention layers"),
    ("phi-3.5-moe", "torch-compile", "recompiles at every token"),
    # a window as long as its context: full attention to the engines, sliding layers to transformers' caches
    ("phi-3.5-moe", "kv-fp8", "as transformers reads its config"),
    # transformers 5's fused 3-D experts, which torchao and quanto leave in full precision
    ("phi-3.5-moe", "weight-int8", "fused 3-D tensors"),
    ("mixtral-8x7b", "weight-int4", "fused 3-D tensors"),
])
def test_transformers_refuses_what_it_cannot_run(model, technique, reason):
    rejected = _rejected(model)
    assert technique in rejected and reason in rejected[technique], rejected.get(technique)


def test_a_full_attention_model_keeps_them():
    rejected = _rejected("llama-3.1-8b")
    assert not any(reason for technique, reason in rejected.items()
                   if technique in ("paged-kv", "kv-int4", "kv-int8") and "QuantizedCache" in reason)
    assert "recompiles" not in rejected.get("torch-compile", "")
