"""How an engine launches its prefill steps' kernels: eagerly, layer by layer from the host (its profile's
`eager_prefill`: SGLang's 0.5 releases to 0.5.9, which capture CUDA graphs of decode batches only), or by replaying
piecewise CUDA graphs of the layers between their attention kernels for steps of up to a number of tokens (its
`prefill_graphs`: SGLang from 0.5.10, where the deployment allows them), which also take memory of their own."""

from __future__ import annotations

from ..schema import HardwareSpec, ModelSpec
from .engines import engine_fact


def prefill_graph_tokens(engine: str | None, spec: ModelSpec, hw: HardwareSpec, chunk: int | None, pp: int = 1,
                         attention_dp: int = 1, speculative: str | None = None) -> int:
    """The most tokens a prefill step of this deployment runs as piecewise CUDA graphs (0: every one runs eagerly):
    the engine's `prefill_graphs` limit (its chunk, or a fixed count for latent attention), unless the device's
    backend, the model type or the deployment (pipeline stages, data-parallel attention, speculative decoding) turns
    them off."""
    facts = engine_fact(engine, "prefill_graphs")
    if not facts or hw.kind != "gpu" or hw.features.backend not in facts["backends"] \
            or spec.model_type in facts["off_model_types"] or pp > 1 or attention_dp > 1 or speculative:
        return 0
    return facts["mla_max_tokens"] if spec.mla is not None else (chunk or 0)


def prefill_graph_sizes(max_tokens: int, sizes: list[list[int]]) -> int:
    """How many token counts the engine captures graphs at up to `max_tokens` (`sizes`: [first, last, step] runs)."""
    return sum(len(range(first, min(last, max_tokens) + 1, step)) for first, last, step in sizes)


def prefill_graph_reserve_mib(engine: str | None, spec: ModelSpec, graph_tokens: int) -> float:
    """The memory the engine sets aside for its prefill graphs where they are on: a share per captured size, or a
    fixed reserve under latent attention."""
    facts = engine_fact(engine, "prefill_graphs")
    if not facts or not graph_tokens:
        return 0.0
    if spec.mla is not None:
        return facts["mla_reserve_mib"]
    return facts["reserve_mib_per_size"] * prefill_graph_sizes(graph_tokens, facts["sizes"])


def eager_prefill_host_s(spec: ModelSpec, engine: str | None) -> float:
    """The host time an engine that runs its prefill steps eagerly spends launching one step's kernels, layer by
    layer (its profile's `eager_prefill`: per layer, and more per latent-attention and per state layer, whose
    kernels are more), or 0 where it states none."""
    return layers_host_s(spec, engine_fact(engine, "eager_prefill") or {})


def prefill_graph_host_s(spec: ModelSpec, engine: str | None) -> float:
    """The host time a prefill step its piecewise graphs take still spends launching what runs between the pieces
    (attention, the all-reduces), layer by layer (its profile's `prefill_graphs`), or 0 where it states none."""
    return layers_host_s(spec, engine_fact(engine, "prefill_graphs") or {})


def layers_host_s(spec: ModelSpec, facts: dict) -> float:
    mla = spec.num_layers if spec.mla is not None else 0
    state = spec.state_layers if spec.state is not None else 0
    return (facts.get("layer_s", 0.0) * spec.num_layers + facts.get("mla_layer_s", 0.0) * mla
            + facts.get("state_layer_s", 0.0) * state)
