"""How an engine dispatches a MoE layer's tokens to the experts' devices under data-parallel attention, against what
the step model prices: a top-k all-to-all (DeepEP, pplx-kernels, MoRI-EP), which the engine runs only where its image
has the kernel and an option turns it on, else an all-gather of every token to every rank. What a plan and its
configs say of the difference (the step model's byte count cannot show it: for DeepSeek's top-8 over 8 ranks the two
move as many bytes; the kernels' efficiency differs)."""

from __future__ import annotations

from ..schema import HardwareSpec
from .engines import engine_fact, engine_gathers_experts

# the option that turns the all-to-all kernel on, where the image has it (vLLM's EP docs: "Install DeepEP and
# pplx-kernels", not in its stock image)
ALL_TO_ALL_OPTION = {"vllm": "VLLM_ALL2ALL_BACKEND=deepep_low_latency or pplx, where the image has DeepEP or "
                             "pplx-kernels",
                     "sglang": "--moe-a2a-backend deepep, where the image has DeepEP"}
DISPATCH_NOTE = ("expert dispatch: the prediction assumes a top-k all-to-all kernel ({how}); the engine's default "
                 "all-gathers every token to every rank, more bytes per step at large expert-parallel sizes")
GATHER_NOTE = ("expert dispatch: this release has no top-k all-to-all kernel on {backend} (source: {source}), so the "
               "engine all-gathers every token to every rank; the prediction prices a top-k all-to-all, and on MI300X "
               "vLLM's all-gather path ran at 1.36x the time per token of an all-to-all kernel (MoRI-EP) at expert "
               "parallel 8: expect the decode slower than predicted")


def dispatch_note(engine: str, hw: HardwareSpec) -> str | None:
    """What a plan with expert parallelism under data-parallel attention says of the dispatch its prediction prices:
    the all-to-all kernel to turn on, or the all-gather the engine's build for the device runs; None for an engine
    with no such option (the others price their own dispatch)."""
    if engine not in ALL_TO_ALL_OPTION:
        return None
    if engine_gathers_experts(engine, hw):
        return GATHER_NOTE.format(backend=hw.features.backend,
                                  source=engine_fact(engine, "moe_all_to_all_source").split(" — ")[0])
    return DISPATCH_NOTE.format(how=ALL_TO_ALL_OPTION[engine])
