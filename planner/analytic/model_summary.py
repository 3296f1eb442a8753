"""What a report says of a model: its parameters, layers, attention and experts (`ModelSummary`), from its spec."""

from __future__ import annotations

from ..schema import ModelSpec
from ..schema.profile import ModelSummary
from .params import param_counts


def model_summary(spec: ModelSpec) -> ModelSummary:
    """The model as reports name it: counts, layers, attention kind, experts and (for hybrids) its layer mix."""
    counts = param_counts(spec)
    moe = None
    if spec.moe:
        moe = f"{spec.moe.num_experts} experts, top-{spec.moe.top_k}" + (
            ", shared" if spec.moe.shared_intermediate_size else "")
    return ModelSummary(
        name=spec.name, model_type=spec.model_type, source=spec.source, params_total=counts.total,
        params_active=counts.active, embedding_params=counts.embedding, num_layers=spec.num_layers,
        hidden_size=spec.hidden_size, attention=spec.attention_kind, num_heads=spec.num_heads,
        num_kv_heads=spec.num_kv_heads, head_dim=spec.head_dim, moe=moe,
        sliding_layers=sum(1 for w in spec.layer_windows if w), max_position_embeddings=spec.max_position_embeddings,
        layer_mix=_layer_mix(spec) if spec.layer_mixers else None,
    )


def _layer_mix(spec: ModelSpec) -> str:
    """'4 attention, 28 mamba' (Falcon-H1: '32 attention + mamba2'; Nemotron-H counts its MLP-only layers)."""
    names = {"attention": "attention", "state": spec.state.kind if spec.state else "state",
             "attention+state": f"attention + {spec.state.kind if spec.state else 'state'}", "none": "MLP only"}
    counts: dict[str, int] = {}
    for i in range(spec.num_layers):
        counts[names[spec.mixer(i)]] = counts.get(names[spec.mixer(i)], 0) + 1
    return ", ".join(f"{n} {name}" for name, n in counts.items())
