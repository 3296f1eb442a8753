"""Which steps of an engine fuse each tensor-parallel all-reduce with the residual add and RMSNorm after it (FlashInfer's
`trtllm_allreduce_fusion`: one kernel where there were two, its profile's `allreduce_fusion`). SGLang turns it on by
itself for some architectures on some GPUs, one host, no data-parallel attention, and runs it on steps of up to a
number of tokens; what the fused kernel saves a step is the runtime's (`allreduce_fusion_saving_s` in
profiles/efficiency.yaml)."""

from __future__ import annotations

import re

from ..schema import HardwareSpec, ModelSpec
from .engines import engine_fact
from .hardware import within_one_host


def fused_allreduce_tokens(engine: str | None, spec: ModelSpec, hw: HardwareSpec, tp: int, pp: int = 1,
                           attention_dp: int = 1) -> int:
    """The most tokens a step of this deployment runs with its all-reduces fused (0: none fused): the engine's
    `allreduce_fusion` limit where its rule names the model's type and the device's CUDA compute capability (major
    version) for it, the deployment is tensor-parallel within one host without data-parallel attention, and the device
    is not one the rule excludes by name (SGLang: an H20, not an H200)."""
    facts = engine_fact(engine, "allreduce_fusion")
    if not facts or tp <= 1 or attention_dp > 1 or hw.features.backend != "cuda" or not within_one_host(hw, tp * pp):
        return 0
    try:
        major = int(float(hw.features.compute_capability or ""))
    except ValueError:
        return 0
    named = f"{hw.id} {hw.name}".lower()
    if major not in facts["model_types"].get(spec.model_type, []) \
            or any(re.search(rf"\b{re.escape(n)}\b", named) for n in facts.get("not_named", [])):
        return 0
    return facts["max_tokens"]
