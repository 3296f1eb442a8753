"""Helpers that ask transformers itself for the truth: models built from catalog configs on the meta
device, and reduced-width copies that run a real forward pass on CPU."""

from __future__ import annotations

import copy
from typing import Any

# Fields whose published values describe weights on disk, not the architecture.
_DROP = ("quantization_config", "auto_map", "rope_scaling", "rope_parameters", "_name_or_path", "torch_dtype", "dtype")


def hf_config(fields: dict[str, Any]):
    from transformers import AutoConfig

    fields = {k: v for k, v in fields.items() if k not in ("quantization_config", "auto_map")}
    model_type = fields.pop("model_type")
    return AutoConfig.for_model(model_type, **fields)


def meta_model(fields: dict[str, Any]):
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(hf_config(fields))


def count_params(model, top_k: int | None, num_experts: int | None) -> tuple[int, int]:
    """(total, active): routed-expert tensors are those under an `.experts.` module; a token uses
    top_k / num_experts of them."""
    total = expert = 0
    for name, p in model.named_parameters():  # tied tensors appear once
        total += p.numel()
        if ".experts." in name:
            expert += p.numel()
    active = total if not expert else total - expert * (1 - top_k / num_experts)
    return total, int(active)


# Narrow widths for the state-space and hybrid families (their layer patterns are set apart): attention
# with 4 query and 2 KV heads, Mamba / Mamba-2 / DeltaNet mixers of a few heads and a small state.
_SMALL = {"hidden_size": 32, "vocab_size": 128, "intermediate_size": 64, "num_attention_heads": 4,
          "num_key_value_heads": 2, "max_position_embeddings": 128}
_MAMBA2 = {"mamba_n_heads": 4, "mamba_d_head": 16, "mamba_d_state": 8, "mamba_n_groups": 2}
STATE_REDUCTIONS: dict[str, dict[str, Any]] = {
    "mamba": {"hidden_size": 32, "vocab_size": 128, "state_size": 8, "time_step_rank": 4},
    "falcon_mamba": {"hidden_size": 32, "vocab_size": 128, "state_size": 8, "time_step_rank": 4},
    "mamba2": {"hidden_size": 32, "vocab_size": 128, "num_heads": 4, "head_dim": 16, "n_groups": 2, "state_size": 8,
               "time_step_rank": 4},
    "jamba": {**_SMALL, "mamba_dt_rank": 4, "num_experts": 4, "use_mamba_kernels": False},
    "bamba": {**_SMALL, **_MAMBA2},
    "granitemoehybrid": {**_SMALL, **_MAMBA2, "num_local_experts": 4, "shared_intermediate_size": 32},
    "falcon_h1": {**_SMALL, **_MAMBA2, "mamba_d_ssm": 64},
    "nemotron_h": {**_SMALL, "head_dim": 8, "mamba_num_heads": 4, "mamba_head_dim": 16, "ssm_state_size": 8,
                   "n_groups": 2, "moe_intermediate_size": 32, "moe_shared_expert_intermediate_size": 32,
                   "n_routed_experts": 4},
    "qwen3_next": {**_SMALL, "head_dim": 16, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
                   "linear_key_head_dim": 8, "linear_value_head_dim": 16, "num_experts": 4, "moe_intermediate_size": 32,
                   "shared_expert_intermediate_size": 32, "num_experts_per_tok": 2},
    "lfm2": {**_SMALL},
    "lfm2_moe": {**_SMALL, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                 "num_dense_layers": 1},
    "recurrent_gemma": {**_SMALL, "head_dim": 8, "lru_width": 48, "attention_window_size": 8},
    "zamba2": {**_SMALL, "n_mamba_heads": 4, "mamba_d_state": 8, "mamba_ngroups": 2, "adapter_rank": 4},
    "rwkv": {"hidden_size": 32, "vocab_size": 128, "intermediate_size": 64, "attention_hidden_size": 32},
}


def _reduced_state_model(c: dict[str, Any]) -> dict[str, Any]:
    """A state-space or hybrid config at narrow widths, its layer pattern kept: one period of Jamba's
    attention pattern, Qwen3-Next's full-attention interval, Nemotron-H's pattern through its first attention."""
    c.update(STATE_REDUCTIONS[c["model_type"]])
    if c["model_type"] == "jamba":
        c["num_hidden_layers"] = c.get("attn_layer_period", 8)
    elif c["model_type"] == "qwen3_next" and "layer_types" not in c:
        c["num_hidden_layers"] = c.get("full_attention_interval", 4)
    elif c["model_type"] == "nemotron_h" and isinstance(c.get("hybrid_override_pattern"), str):
        pattern = c["hybrid_override_pattern"]  # up to and including the first attention layer and what follows it
        c["hybrid_override_pattern"] = pattern[:pattern.index("*") + 2] if "*" in pattern else pattern[:4]
        c["num_hidden_layers"] = len(c["hybrid_override_pattern"])
    elif c["model_type"] in ("mamba", "falcon_mamba", "mamba2", "rwkv"):
        c["num_hidden_layers"] = 2
    elif c["model_type"] == "recurrent_gemma":
        c["num_hidden_layers"] = 3
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if key in c:
            c[key] = 0
    return c


def reduced_config(fields: dict[str, Any]) -> dict[str, Any]:
    """A narrow, shallow copy of a config that keeps what shapes the KV cache: the KV/query head
    ratio, sliding-window layer patterns (windows shrunk to 8 tokens), MLA ranks, MoE routing, and the
    layer pattern of a state-space or hybrid model."""
    c = {k: v for k, v in copy.deepcopy(fields).items() if k not in _DROP}
    if c["model_type"] in STATE_REDUCTIONS:
        return _reduced_state_model(c)
    heads = c.get("num_attention_heads", c.get("n_head"))
    kv = c.get("num_key_value_heads") or c.get("num_kv_heads") or heads
    if c["model_type"] == "falcon" and not c.get("new_decoder_architecture") and c.get("multi_query", True):
        kv = 1
    group = heads // kv
    kv_r = min(kv, 2)
    heads_r = kv_r * min(group, 4)
    head_dim = 16
    hidden = heads_r * head_dim
    if c.get("rotary_dim"):  # GPT-J rotates rotary_dim of each head's dimensions: keep the share
        width = c.get("n_embd") or c.get("hidden_size")
        c["rotary_dim"] = max(2, c["rotary_dim"] * head_dim // (width // heads))
    pattern = c.get("sliding_window_pattern", 6 if c["model_type"] == "gemma3_text" else 2)
    layers = max(4, pattern)
    if isinstance(c.get("layer_types"), list):
        c["layer_types"] = c["layer_types"][:layers]
        layers = len(c["layer_types"])
    for key in ("n_embd", "hidden_size", "d_model"):
        if key in c:
            c[key] = hidden
    c.setdefault("hidden_size", hidden)
    for key in ("num_hidden_layers", "n_layer"):
        if key in c:
            c[key] = layers
    for key in ("num_attention_heads", "n_head"):
        if key in c:
            c[key] = heads_r
    for key in ("num_key_value_heads", "num_kv_heads"):
        if key in c and c[key] is not None:
            c[key] = kv_r
    if "head_dim" in c:
        c["head_dim"] = head_dim
    for key in ("intermediate_size", "n_inner", "ffn_hidden_size", "shared_expert_intermediate_size"):
        if c.get(key):
            c[key] = 64
    if c.get("moe_intermediate_size"):
        c["moe_intermediate_size"] = 32
    for key in ("num_local_experts", "num_experts", "n_routed_experts"):
        if c.get(key):
            c[key] = 4
    if c.get("num_experts_per_tok"):
        c["num_experts_per_tok"] = 2
    if "n_group" in c:
        c["n_group"], c["topk_group"] = 1, 1
    if "first_k_dense_replace" in c:
        c["first_k_dense_replace"] = 1
    if "kv_lora_rank" in c:
        c.update(kv_lora_rank=16, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16)
        if c.get("q_lora_rank"):
            c["q_lora_rank"] = 32
    if c.get("sliding_window"):
        c["sliding_window"] = 8
    c["vocab_size"] = 128
    for key in ("max_position_embeddings", "n_positions"):
        if key in c:
            c[key] = 128
    for key in ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"):
        if key in c:
            c[key] = 0 if not isinstance(c[key], list) else [0]
    return c


def real_cache_bytes(fields: dict[str, Any], tokens: int) -> int:
    """Bytes of everything transformers caches after a forward pass over `tokens` tokens (fp32): keys and
    values, and the convolution and recurrent states of state-space and linear-attention layers."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(hf_config(fields)).eval()
    ids = torch.randint(1, fields["vocab_size"], (1, tokens))
    if fields["model_type"] == "rwkv":  # its state comes back as five (batch, hidden, layers) tensors
        with torch.no_grad():
            state = model(input_ids=ids, use_cache=True).state
        return sum(t.numel() * t.element_size() for t in state)
    if fields["model_type"] == "recurrent_gemma":  # KV in the cache passed in, recurrent state inside the blocks
        from transformers import DynamicCache

        model.model._setup_cache(model.config, 1, ids.device, torch.float32)
        cache = DynamicCache(config=model.config)
        with torch.no_grad():
            model(input_ids=ids, use_cache=True, cache=cache)
        blocks = [layer.temporal_block for layer in model.model.layers]
        total = sum(t.numel() * t.element_size() for b in blocks if hasattr(b, "rg_lru")
                    for t in (b.conv1d_state, b.rg_lru.recurrent_states))
        return total + _cache_bytes(cache)
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
    return _cache_bytes(out.past_key_values)


def _cache_bytes(cache) -> int:
    total = 0
    for layer in cache.layers:
        tensors = [getattr(layer, "keys", None), getattr(layer, "values", None)]
        for states in (getattr(layer, "conv_states", None), getattr(layer, "recurrent_states", None)):
            tensors += list((states or {}).values())
        for t in tensors:
            if t is not None and t.numel():
                total += t.numel() * t.element_size()
    return total
