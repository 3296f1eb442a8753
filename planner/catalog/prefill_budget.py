"""A prefill budget an engine computes from the device and the model when none is set (TGI 3's launcher:
`prefill_chunk_by_compute` in its profile): the devices' 16-bit tensor rate, as its table of cards states it, over
the model's FLOPs per token as it counts them from config.json, capped at the model's context; its fallback
(`prefill_chunk_tokens`) on a card its table lacks."""

from __future__ import annotations

from ..schema import HardwareSpec, ModelSpec


def launcher_flop_per_token(spec: ModelSpec) -> int:
    """FLOPs per token as TGI's launcher counts them (`Config::flop`): per layer 2 x hidden x head width for the
    query, the keys, the values, the attention and the output (all heads; the keys' and values' at the KV heads),
    and 2 x 3 x hidden x intermediate for the MLP, the intermediate width times the experts a token takes (its
    config's num_experts_per_tok) plus its `num_shared_experts`, a key no catalog model's config has (DeepSeek's is
    n_shared_experts, which the launcher does not read): 0 here; the head width is config.json's head_dim, else
    hidden / heads (latent attention's config states none). No embedding or head."""
    head = spec.hidden_size // spec.num_heads if spec.mla is not None else spec.head_dim
    width = spec.intermediate_size * (spec.moe.top_k if spec.moe is not None else 1)
    attention = 2 * head * spec.hidden_size * (3 * spec.num_heads + 2 * spec.num_kv_heads)
    return (attention + 2 * 3 * spec.hidden_size * width) * spec.num_layers


def compute_optimal_tokens(rule: dict, spec: ModelSpec, hw: HardwareSpec, devices: int) -> int | None:
    """The budget the rule computes for `devices` of `hw` (its card table's rate times the devices, over the model's
    FLOPs per token, at most its context), or None where the card is not in the table or the figure is too low to
    be kept (the launcher's own check), and the engine's fallback applies."""
    tflops = rule["card_f16_tflops"].get(hw.id)
    if tflops is None:
        return None
    tokens = int(tflops * 1e12 * devices // launcher_flop_per_token(spec))
    return min(tokens, spec.max_position_embeddings) if tokens >= rule["min_tokens"] else None
