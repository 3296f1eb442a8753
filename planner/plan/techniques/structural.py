"""Techniques that change what is computed or where weights live: CPU offload, sliding window with
attention sinks, structured pruning, distillation into a smaller model."""

from __future__ import annotations

import math

from ...analytic.memory import (
    causal_mask_bytes,
    per_device_bytes,
    prefill_room_bytes,
    profiling_run_bytes,
    weights_room,
)
from ...analytic.offload import streamed_offload_fraction
from ...catalog.engines import engine_fact
from ..state import PlanState, kv_reserved_tokens, to_setup
from . import Applied, Combines, Context, Option, Technique, register

SINK_WINDOW = 4096
SINK_TOKENS = 4
PRUNE_FRACTION = 0.25


def _offload(state: PlanState, ctx: Context) -> PlanState:
    """Keep just enough of the weights in host memory for one sequence's cache and the activations
    to fit on the device, in the share of it the engine gives its cache and weights (`memory.weights_room`; at most
    95% of the device, at most 90% of the weights offloaded): streamed over the host link every pass, or computed by
    the host CPU where the engine runs them there (llama.cpp, `analytic.offload`)."""
    s = to_setup(state.with_(offload_fraction=0.0))
    # one sequence at its whole length: what the plan's `fits` asks of the device
    context, prompt = max(int(kv_reserved_tokens(state, ctx.workload)), ctx.workload.context_needed), \
        ctx.workload.prompt_tokens_p95
    weights, kv, act = per_device_bytes(s, 1, context, prompt)
    # beside the transients the engine sizes its cache around: a whole prefill chunk's, its start-up profiling run's
    act = max(act, prefill_room_bytes(s, context, prompt) + causal_mask_bytes(s, context), profiling_run_bytes(s))
    spare = min(ctx.hw.memory_bytes * 0.95 - s.runtime_bytes - kv - act,
                weights_room(s, kv, s.runtime_bytes + act, raised=True))
    fraction = min(max((weights - spare) / weights, 0.0), 0.9) if weights > 0 else 0.0
    if fraction and engine_fact(state.engine, "cpu_offload_option"):
        # vLLM and SGLang take whole GiB per device (--cpu-offload-gb): the plan streams what its configs offload
        return state.with_(offload_fraction=streamed_offload_fraction(s, math.ceil(fraction * weights / 2**30)))
    return state.with_(offload_fraction=math.ceil(fraction * 1000) / 1000)  # rounded up: the rest must fit


def _window(state: PlanState, ctx: Context) -> PlanState:
    windows = tuple(SINK_WINDOW + SINK_TOKENS if w is None else w for w in state.spec.layer_windows)
    return state.with_(spec=state.spec.model_copy(update={"layer_windows": windows}))


def _attends(ctx: Context) -> str | None:
    """Refused for a pure state-space model (Mamba, RWKV): it has no attention layer."""
    if ctx.spec.layer_mixers and not ctx.spec.attention_layers:
        return (f"{ctx.spec.name} has no attention layer: "
                "its state is already the same size at any context, so a window has nothing to cap")
    return None


def _window_loss(ctx: Context) -> float:
    # Within the window perplexity is kept (StreamingLLM: 5.40 vs 5.43 with 4 sinks); beyond it the model
    # cannot see the dropped tokens, which a long-context task (retrieval, RAG) needs: budgeted at 10%.
    return 10.0 if ctx.workload.prompt_tokens_p95 > SINK_WINDOW else 0.6


def _prune(state: PlanState, ctx: Context) -> PlanState:
    spec = state.spec
    keep = max(1, round(spec.num_layers * (1 - PRUNE_FRACTION)))
    # every per-layer table loses the same layers, a hybrid's mixers and MLPs too, or its tables would describe layers
    # it no longer has (the tables keep their first layers: which deep layers go is the pruning's choice)
    tables = {name: getattr(spec, name)[:keep] for name in type(spec).model_fields
              if name.startswith("layer_") and isinstance(getattr(spec, name), tuple)
              and len(getattr(spec, name)) == spec.num_layers}
    return state.with_(spec=spec.model_copy(update={"num_layers": keep, **tables,
                                                    "name": f"{spec.name}-pruned{keep}"}))


register(
    Technique(
        id="cpu-offload", engines=("vllm", "sglang", "transformers", "llama.cpp"),
        name="CPU offload of weights", family="memory", group="offload",
        summary="Part of the weights kept in host memory: fits, at the host's speed. vLLM, SGLang and "
                "transformers stream them to the device every forward pass over the host link; llama.cpp computes "
                "those layers on the CPU at the host memory's bandwidth (its decode), sending them over the link "
                "only for prompts.",
        transform=_offload, hardware=("gpu", "host-memory"),
        quality_source="lossless; slow (host link or host memory bandwidth)",
        params=lambda c: {"what": "the share of weights that does not fit"},
        unchanged="the weights fit on the devices without it: nothing is offloaded"),
    Technique(
        id="sliding-window-sinks", engines=("transformers",),
        name="Sliding window with attention sinks (StreamingLLM)", family="attention",
        group="context-limit",
        summary=f"Full-attention layers keep the first {SINK_TOKENS} tokens and the last {SINK_WINDOW}: the cache "
                "stops growing; tokens in between are forgotten.",
        transform=_window, model=("full-attention",), check=_attends, quality_risk="high",
        quality_loss_pct=_window_loss,
        quality_source="StreamingLLM (arXiv 2309.17453): 4 sink tokens keep perplexity (5.40 vs 5.43, Llama-2-13B) "
                       "but do not extend what the model can retrieve; long-context tasks lose the dropped tokens",
        params=lambda c: {"window": SINK_WINDOW, "num_sinks": SINK_TOKENS},
        apply=Applied("kv_cache:sinks", aim=("cache_bytes", "lower"),
                      options=(("num_sinks", Option(int, "first tokens always kept", low=0, high=1024)),
                               ("window", Option(int, "recent tokens kept", low=1, high=1 << 20)))),
        combines={"transformers": Combines(cache="sinks")}),
    Technique(
        id="structured-pruning", engines=("vllm", "sglang", "tgi", "trtllm", "transformers", "llama.cpp"),
        name="Structured pruning (drop 25% of layers, then heal)", family="compression",
        group="compression",
        summary="The least important quarter of the layers removed by angular distance, then a short fine-tune.",
        transform=_prune, data="training", quality_risk="high", quality_loss_pct=15.0, replaces_model=True,
        quality_source="Gromov et al. (arXiv 2403.17887) and ShortGPT (arXiv 2403.03853): dropping ~25% of layers "
                       "keeps QA accuracy after healing but raises perplexity by 10-20%",
        params=lambda c: {"drop_fraction": PRUNE_FRACTION}),
    Technique(
        id="distillation", engines=("vllm", "sglang", "tgi", "trtllm", "transformers", "llama.cpp"),
        name="Distillation into a smaller model of the family", family="compression",
        group="compression",
        summary="A smaller catalog model of the same family trained on the target's outputs, served instead.",
        transform=lambda s, c: s.with_(spec=c.smaller), model=("smaller",), data="training", quality_risk="high",
        replaces_model=True,
        quality_loss_pct=10.0,
        quality_source="Minitron (arXiv 2407.14679): students distilled to a half and a quarter of the teacher "
                       "(Nemotron-4 15B into 8B and 4B) trail it by several points on MMLU; 10% budgeted, and only "
                       "students within that range are offered",
        params=lambda c: {"student": c.smaller.name if c.smaller else None}),
    family="structural")
