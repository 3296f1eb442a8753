"""State-space, linear-attention and hybrid models: their `config.json` into a `ModelSpec`.

Mamba and Falcon-Mamba (selective scan), Mamba-2, Jamba (Mamba + attention + MoE), Bamba and
Granite-4.0-H (Mamba-2 + attention, Granite with MoE), Falcon-H1 (attention and Mamba-2 side by side
in every layer), Nemotron-H (one mixer or MLP per layer: `M`, `*`, `-`, `E`), Qwen3-Next (gated
DeltaNet + gated attention + MoE) and LFM2 (short convolutions + attention). Each family's layer
pattern, mixer sizes and recurrent state follow the modules transformers 5 builds for it (the oracle
tests compare parameters and cache bytes with transformers itself). Pure Python: no torch.

A pure state-space model has no position table, so nothing in its config bounds the context: it
gets `UNBOUNDED_CONTEXT` as its maximum.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ModelConfigError
from ..schema import MoESpec, StateSpec

UNBOUNDED_CONTEXT = 1 << 20

# Defaults of each transformers config class for the fields read below.
_MAMBA2 = {"mamba_d_conv": 4, "mamba_expand": 2, "mamba_n_groups": 1, "mamba_conv_bias": True,
           "mamba_proj_bias": False, "mamba_chunk_size": 256}
HYBRID_DEFAULTS: dict[str, dict[str, Any]] = {
    "mamba": {"tie_word_embeddings": True, "state_size": 16, "conv_kernel": 4, "expand": 2, "use_bias": False,
              "use_conv_bias": True, "time_step_rank": "auto"},
    "falcon_mamba": {"tie_word_embeddings": True, "state_size": 16, "conv_kernel": 4, "expand": 2,
                     "use_bias": False, "use_conv_bias": True, "time_step_rank": "auto"},
    "mamba2": {"tie_word_embeddings": False, "state_size": 128, "conv_kernel": 4, "expand": 2, "n_groups": 8,
               "head_dim": 64, "num_heads": 128, "use_bias": False, "use_conv_bias": True, "chunk_size": 256},
    "jamba": {"tie_word_embeddings": False, "mamba_d_state": 16, "mamba_d_conv": 4, "mamba_expand": 2,
              "mamba_dt_rank": "auto", "mamba_conv_bias": True, "mamba_proj_bias": False, "attn_layer_period": 8,
              "attn_layer_offset": 4, "expert_layer_period": 2, "expert_layer_offset": 1, "num_experts": 16,
              "num_experts_per_tok": 2},
    "bamba": {**_MAMBA2, "tie_word_embeddings": False, "mamba_d_state": 256, "mamba_n_heads": 128,
              "mamba_d_head": "auto", "attention_bias": False, "mlp_bias": False},
    "granitemoehybrid": {**_MAMBA2, "tie_word_embeddings": False, "mamba_d_state": 256, "mamba_n_heads": 128,
                         "mamba_d_head": "auto", "attention_bias": False, "num_local_experts": 8,
                         "num_experts_per_tok": 2, "shared_intermediate_size": 1024},
    "falcon_h1": {**_MAMBA2, "tie_word_embeddings": False, "mamba_d_state": 256, "mamba_n_heads": 128,
                  "mamba_d_head": "auto", "mamba_d_ssm": 1024, "mamba_rms_norm": False, "projectors_bias": False,
                  "attention_bias": False, "mlp_bias": False},
    "nemotron_h": {"tie_word_embeddings": False, "ssm_state_size": 128, "conv_kernel": 4, "n_groups": 8,
                   "mamba_num_heads": 128, "mamba_head_dim": 64, "use_bias": False, "use_conv_bias": True,
                   "attention_bias": False, "mlp_bias": False, "n_routed_experts": 8, "num_experts_per_tok": 2,
                   "n_shared_experts": 1, "moe_intermediate_size": 7688,
                   "moe_shared_expert_intermediate_size": 7688, "chunk_size": 128},
    "qwen3_next": {"tie_word_embeddings": False, "attention_bias": False, "head_dim": 256,
                   "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
                   "linear_num_key_heads": 16, "linear_num_value_heads": 32, "full_attention_interval": 4,
                   "decoder_sparse_step": 1, "mlp_only_layers": [], "num_experts": 512, "num_experts_per_tok": 10,
                   "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512},
    "lfm2_moe": {"tie_word_embeddings": True, "conv_L_cache": 3, "conv_bias": False, "num_dense_layers": 2,
                 "num_experts": 32, "num_experts_per_tok": 4, "moe_intermediate_size": 1792},
    "recurrent_gemma": {"tie_word_embeddings": True, "block_types": ("recurrent", "recurrent", "attention"),
                        "attention_window_size": 2048, "conv1d_width": 4, "lru_width": None,
                        "attention_bias": False, "num_key_value_heads": None},
    "zamba2": {"tie_word_embeddings": True, "mamba_d_state": 64, "mamba_d_conv": 4, "mamba_expand": 2,
               "mamba_ngroups": 1, "n_mamba_heads": 8, "use_conv_bias": True, "add_bias_linear": False,
               "intermediate_size": None, "num_key_value_heads": None, "num_mem_blocks": 1,
               "use_shared_attention_adapter": False, "adapter_rank": 128, "chunk_size": 256},
    "rwkv": {"tie_word_embeddings": False, "attention_hidden_size": None, "intermediate_size": None},
    "lfm2": {"tie_word_embeddings": True, "conv_L_cache": 3, "conv_bias": False, "block_auto_adjust_ff_dim": True,
             "block_ffn_dim_multiplier": 1.0, "block_multiple_of": 256},
}
HYBRID_TYPES = tuple(HYBRID_DEFAULTS)
NO_ROTARY_TYPES = frozenset({"jamba", "nemotron_h"})  # `_rope_fraction`

# Layer type names in transformers 5 configs and the older spellings published configs still use.
_ATTENTION = {"full_attention", "attention", "*"}
_STATE = {"linear_attention", "mamba", "conv", "M"}


# Fields that only a state-space, linear-attention or hybrid config has: an unknown model_type carrying one is
# refused rather than read as a plain Transformer (Jamba read that way had 8x its KV cache and 40B parameters too
# many).
_NON_ATTENTION_FIELDS = ("state_size", "ssm_state_size", "ssm_cfg", "time_step_rank", "conv_kernel", "conv_L_cache",
                         "lru_width", "block_types", "_block_types", "hybrid_override_pattern", "layers_block_type",
                         "attn_layer_period", "attn_layer_indices", "full_attn_idxs", "full_attention_interval",
                         "linear_num_key_heads", "linear_num_value_heads", "linear_attn_config", "attention_hidden_size")
_ATTENTION_LAYER_TYPES = {"full_attention", "sliding_attention", "chunked_attention", "attention"}


def non_attention_signs(cfg: dict[str, Any]) -> list[str]:
    """The fields of a config that say some of its layers are not attention (empty for a plain decoder)."""
    signs = [k for k in _NON_ATTENTION_FIELDS if cfg.get(k) is not None]
    signs += [k for k in cfg if k.startswith(("mamba_", "ssm_", "linear_conv", "rwkv"))]
    types = cfg.get("layer_types")
    if isinstance(types, list) and any(isinstance(t, str) and t not in _ATTENTION_LAYER_TYPES for t in types):
        signs.append("layer_types")
    return sorted(set(signs))


def _scan_flops(channels: int, state: int, conv_channels: int, kernel: int) -> int:
    """Per token and layer: the depthwise convolution (a multiply-add per tap), the discretised state
    update (decay, input, multiply-add: 4 per state element) and the readout (a multiply-add)."""
    return 2 * conv_channels * kernel + 6 * channels * state + 4 * channels


def _mamba(h: int, d: int, n: int, k: int, rank: int, proj_bias: bool, conv_bias: bool,
           extra_norms: int) -> StateSpec:
    """Mamba (selective scan): in_proj to 2d, x_proj to dt rank + B + C, dt_proj back to d, out_proj."""
    linear = h * 2 * d + d * (rank + 2 * n) + rank * d + d * h
    small = d * n + d + d * k + (d if conv_bias else 0) + d + (2 * d + h if proj_bias else 0) + extra_norms
    return StateSpec(kind="mamba", linear_params=linear, small_params=small, conv_channels=d, conv_kernel=k,
                     recurrent_state_elements=d * n, scan_flops_per_token=_scan_flops(d, n, d, k), out_proj_inputs=d)


def _mamba2(h: int, d: int, heads: int, head_dim: int, groups: int, n: int, k: int, proj_bias: bool,
            out_bias: bool, conv_bias: bool, gated_norm: bool) -> StateSpec:
    """Mamba-2 (SSD): one in_proj to z, x, B, C and dt, a convolution over x, B, C, a gated norm, out_proj."""
    conv = d + 2 * groups * n
    proj = d + conv + heads
    linear = h * proj + d * h
    small = 3 * heads + conv * k + (conv if conv_bias else 0) + (proj if proj_bias else 0) + (h if out_bias else 0)
    small += d if gated_norm else 0
    return StateSpec(kind="mamba2", linear_params=linear, small_params=small, conv_channels=conv, conv_kernel=k,
                     recurrent_state_elements=heads * head_dim * n,
                     scan_flops_per_token=_scan_flops(heads * head_dim, n, conv, k), out_proj_inputs=d,
                     gated_norm=gated_norm)


def _attention_pattern(types: list[str], where: str) -> list[str]:
    mixers = []
    for t in types:
        if not isinstance(t, str):
            raise ModelConfigError(f"{where}: layer types must be names, got {t!r}")
        if t in _ATTENTION:
            mixers.append("attention")
        elif t in _STATE:
            mixers.append("state")
        else:
            raise ModelConfigError(f"{where}: unknown layer type {t!r} (known: full_attention, linear_attention, "
                                   "mamba, attention, conv)")
    return mixers


def _layer_types(f: Any, n_layers: int) -> list[str] | None:
    types = f.get("layer_types") or f.get("layers_block_type")
    if types is None:
        return None
    if not isinstance(types, list) or len(types) != n_layers:
        raise ModelConfigError(f"{f.where}: layer_types must list one type per layer ({n_layers}), got {types!r}")
    return types


def _mamba2_dims(f: Any, h: int, d_key: str | None = None) -> tuple[int, int, int]:
    """(inner width, heads, head dim) of a Bamba / Granite / Falcon-H1 style mamba_* config."""
    d = (f.int(d_key) if d_key else None) or f.int("mamba_expand", required=True) * h
    heads = f.int("mamba_n_heads", required=True)
    head_dim = f.get("mamba_d_head")
    head_dim = d // max(heads, 1) if head_dim in (None, "auto") else f.int("mamba_d_head")
    if not heads or heads * head_dim != d:
        raise ModelConfigError(f"{f.where}: mamba_n_heads ({heads}) x mamba_d_head ({head_dim}) must equal the "
                               f"Mamba inner width ({d})")
    return d, heads, head_dim


def _lfm2_intermediate(f: Any) -> int:
    # published LFM2 configs name it block_ff_dim, which transformers' Lfm2Config reads as intermediate_size
    inter = f.int("block_ff_dim") or f.int("intermediate_size", required=True)
    if f.flag("block_auto_adjust_ff_dim"):
        inter = int(2 * inter / 3)
        mult = f.number("block_ffn_dim_multiplier", 0.0, 1e3)
        if mult is not None:
            step = f.int("block_multiple_of") or 1
            inter = step * math.ceil(int(mult * inter) / step)
    return inter


def hybrid_spec_fields(f: Any, model_type: str, name: str, source: str) -> dict[str, Any]:
    """The ModelSpec fields of a state-space or hybrid config; `f` reads fields with this type's defaults."""
    def need(key: str) -> int:  # a dimension the mixer cannot do without
        return f.int(key, required=True)

    h = need("hidden_size")
    vocab = need("vocab_size")
    types = f.get("layers_block_type") if model_type == "nemotron_h" else None
    if model_type == "nemotron_h" and types is None and isinstance(f.get("hybrid_override_pattern"), str):
        types = list(f.get("hybrid_override_pattern"))
    if types is not None and not (isinstance(types, list) and types and all(isinstance(t, str) for t in types)):
        raise ModelConfigError(f"{source}: layers_block_type must be a list of layer type names, got {types!r}")
    n_layers = len(types) if isinstance(types, list) else need("num_hidden_layers")
    if not h or not vocab or not n_layers:
        raise ModelConfigError(f"{source}: hidden_size, num_hidden_layers and vocab_size must all be positive")
    heads = f.int("num_attention_heads") or 1
    kv_heads = f.int("num_key_value_heads") or heads
    head_dim = f.int("head_dim") if model_type in ("qwen3_next", "nemotron_h", "falcon_h1") else None
    head_dim = head_dim or h // heads
    if heads % kv_heads:
        raise ModelConfigError(f"{source}: num_attention_heads ({heads}) is not a multiple of "
                               f"num_key_value_heads ({kv_heads})")
    spec: dict[str, Any] = dict(
        name=name, model_type=model_type, source=source, vocab_size=vocab, hidden_size=h, num_layers=n_layers,
        num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, v_head_dim=head_dim,
        intermediate_size=f.int("intermediate_size") or 4 * h, tie_word_embeddings=f.flag("tie_word_embeddings"),
        qkv_bias=f.flag("attention_bias"), o_bias=f.flag("attention_bias"), mlp_bias=f.flag("mlp_bias"),
        max_position_embeddings=f.int("max_position_embeddings") or UNBOUNDED_CONTEXT,
    )
    mixers: list[str] = ["state"] * n_layers
    mlps = [True] * n_layers
    moe_layers = [False] * n_layers
    moe: MoESpec | None = None

    if model_type in ("mamba", "falcon_mamba"):
        d = need("expand") * h  # transformers derives the inner width, ignoring a published intermediate_size
        rank = f.get("time_step_rank")
        rank = math.ceil(h / 16) if rank in (None, "auto") else f.int("time_step_rank")
        state = _mamba(h, d, need("state_size"), need("conv_kernel"), rank, f.flag("use_bias"),
                       f.flag("use_conv_bias"), 0)
        mlps = [False] * n_layers
        spec.update(intermediate_size=d, norms_per_layer=1, tie_word_embeddings=f.flag("tie_word_embeddings"))
    elif model_type == "mamba2":
        d = need("expand") * h
        state = _mamba2(h, d, need("num_heads"), need("head_dim"), need("n_groups"), need("state_size"),
                        need("conv_kernel"), f.flag("use_bias"), f.flag("use_bias"), f.flag("use_conv_bias"), True)
        mlps = [False] * n_layers
        spec.update(intermediate_size=d, norms_per_layer=1)
    elif model_type == "jamba":
        d = need("mamba_expand") * h
        rank = f.get("mamba_dt_rank")
        rank = math.ceil(h / 16) if rank in (None, "auto") else f.int("mamba_dt_rank")
        n = need("mamba_d_state")
        state = _mamba(h, d, n, need("mamba_d_conv"), rank, f.flag("mamba_proj_bias"), f.flag("mamba_conv_bias"),
                       rank + 2 * n)  # dt, B and C layernorms
        period, offset = f.int("attn_layer_period") or 1, f.int("attn_layer_offset") or 0
        mixers = ["attention" if i % period == offset else "state" for i in range(n_layers)]
        experts = f.int("num_experts") or 1
        e_period, e_offset = f.int("expert_layer_period") or 1, f.int("expert_layer_offset") or 0
        if experts > 1:
            moe_layers = [i % e_period == e_offset for i in range(n_layers)]
            moe = MoESpec(num_experts=experts, top_k=need("num_experts_per_tok"),
                          expert_intermediate_size=spec["intermediate_size"])
    elif model_type in ("bamba", "granitemoehybrid"):
        d, m_heads, m_head_dim = _mamba2_dims(f, h)
        bias = f.flag("mamba_proj_bias")
        state = _mamba2(h, d, m_heads, m_head_dim, need("mamba_n_groups"), need("mamba_d_state"),
                        need("mamba_d_conv"), bias, bias, f.flag("mamba_conv_bias"), True)
        if model_type == "bamba":
            attn = set(f.int_list("attn_layer_indices"))
            mixers = ["attention" if i in attn else "state" for i in range(n_layers)]
        else:
            types = _layer_types(f, n_layers)
            mixers = _attention_pattern(types, source) if types else mixers
            experts = f.int("num_local_experts") or 0
            shared = f.int("shared_intermediate_size") or 0
            if experts:
                moe_layers = [True] * n_layers
                moe = MoESpec(num_experts=experts, top_k=need("num_experts_per_tok"),
                              expert_intermediate_size=spec["intermediate_size"], shared_intermediate_size=shared)
            else:  # the shared MLP alone is a dense MLP
                spec["intermediate_size"] = shared
    elif model_type == "falcon_h1":
        d, m_heads, m_head_dim = _mamba2_dims(f, h, "mamba_d_ssm")
        state = _mamba2(h, d, m_heads, m_head_dim, need("mamba_n_groups"), need("mamba_d_state"),
                        need("mamba_d_conv"), f.flag("mamba_proj_bias"), f.flag("projectors_bias"),
                        f.flag("mamba_conv_bias"), f.flag("mamba_rms_norm"))
        mixers = ["attention+state"] * n_layers
    elif model_type == "nemotron_h":
        if types is None:
            raise ModelConfigError(f"{source}: a Nemotron-H config needs hybrid_override_pattern or "
                                   "layers_block_type")
        kinds = {"M": "state", "linear_attention": "state", "mamba": "state", "*": "attention",
                 "full_attention": "attention", "attention": "attention", "-": "mlp", "mlp": "mlp",
                 "E": "moe", "moe": "moe"}
        bad = [t for t in types if t not in kinds]
        if bad:
            raise ModelConfigError(f"{source}: unknown Nemotron-H layer type {bad[0]!r} (known: M, *, -, E)")
        kind = [kinds[t] for t in types]
        m_heads, m_head_dim = need("mamba_num_heads"), need("mamba_head_dim")
        bias = f.flag("use_bias")
        state = _mamba2(h, m_heads * m_head_dim, m_heads, m_head_dim, need("n_groups"), need("ssm_state_size"),
                        need("conv_kernel"), bias, bias, f.flag("use_conv_bias"), True)
        mixers = [k if k in ("state", "attention") else "none" for k in kind]
        mlps = [k in ("mlp", "moe") for k in kind]
        moe_layers = [k == "moe" for k in kind]
        if any(moe_layers):
            moe = MoESpec(num_experts=need("n_routed_experts"),
                          top_k=need("num_experts_per_tok"),
                          expert_intermediate_size=need("moe_intermediate_size"),
                          shared_intermediate_size=(f.int("n_shared_experts") or 0)
                          * (f.int("moe_shared_expert_intermediate_size") or 0))
        spec.update(mlp_gated=False, norms_per_layer=1)
    elif model_type == "qwen3_next":
        k_heads, v_heads = need("linear_num_key_heads"), need("linear_num_value_heads")
        dk, dv, kernel = need("linear_key_head_dim"), need("linear_value_head_dim"), need("linear_conv_kernel_dim")
        conv = 2 * k_heads * dk + v_heads * dv
        linear = h * (conv + v_heads * dv) + h * 2 * v_heads + v_heads * dv * h  # qkvz, ba (beta, dt), out
        state = StateSpec(kind="gated_deltanet", linear_params=linear, small_params=2 * v_heads + conv * kernel + dv,
                          conv_channels=conv, conv_kernel=kernel, recurrent_state_elements=v_heads * dk * dv,
                          out_proj_inputs=v_heads * dv, heads=v_heads,
                          # delta rule per value head: k.S, the rank-1 update and q.S, each dk x dv multiply-adds
                          scan_flops_per_token=2 * conv * kernel + 6 * v_heads * dk * dv)
        types = _layer_types(f, n_layers)
        if types is None:
            interval = f.int("full_attention_interval") or 4
            types = ["full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(n_layers)]
        mixers = _attention_pattern(types, source)
        experts = f.int("num_experts") or 0
        step = f.int("decoder_sparse_step") or 1
        only_mlp = set(f.int_list("mlp_only_layers"))
        moe_layers = [experts > 0 and i not in only_mlp and (i + 1) % step == 0 for i in range(n_layers)]
        if any(moe_layers):
            moe = MoESpec(num_experts=experts, top_k=need("num_experts_per_tok"),
                          expert_intermediate_size=need("moe_intermediate_size"),
                          shared_intermediate_size=f.int("shared_expert_intermediate_size") or 0,
                          shared_expert_gate=True)
        spec.update(qk_norm="head", attn_output_gate=True)
    elif model_type in ("lfm2", "lfm2_moe"):
        kernel, bias = need("conv_L_cache"), f.flag("conv_bias")
        state = StateSpec(kind="short_conv", linear_params=h * 3 * h + h * h,
                          small_params=h * kernel + (h + 3 * h + h if bias else 0), conv_channels=h,
                          conv_kernel=kernel, recurrent_state_elements=0,
                          scan_flops_per_token=2 * h * kernel + 2 * h)  # convolution, the two gates
        types = _layer_types(f, n_layers)
        if types is None and model_type == "lfm2_moe":
            raise ModelConfigError(f"{source}: an LFM2-MoE config needs layer_types ('conv' or 'full_attention' per layer)")
        if types is None:
            attn = set(f.int_list("full_attn_idxs")) if f.get("full_attn_idxs") is not None else set(range(n_layers))
            types = ["full_attention" if i in attn else "conv" for i in range(n_layers)]
        mixers = _attention_pattern(types, source)
        if model_type == "lfm2_moe":  # dense MLPs in the first num_dense_layers, then MoE
            dense = f.int("num_dense_layers") or 0
            moe_layers = [i >= dense for i in range(n_layers)]
            if any(moe_layers):
                moe = MoESpec(num_experts=need("num_experts"), top_k=need("num_experts_per_tok"),
                              expert_intermediate_size=need("moe_intermediate_size"))
            spec.update(tie_word_embeddings=f.flag("tie_embedding", f.flag("tie_word_embeddings")))
        else:
            spec.update(intermediate_size=_lfm2_intermediate(f))
        spec.update(qk_norm="head")
    elif model_type == "recurrent_gemma":
        lru, kernel = f.int("lru_width") or h, need("conv1d_width")
        block = lru // heads
        state = StateSpec(kind="rglru", linear_params=2 * h * lru + lru * h + 2 * heads * block * block,
                          small_params=2 * lru + h + lru * kernel + lru + lru + 2 * lru, conv_channels=lru,
                          conv_kernel=kernel, recurrent_state_elements=lru,
                          # convolution, the two block-diagonal gates and the gated recurrence
                          scan_flops_per_token=2 * lru * kernel + 4 * block * lru + 8 * lru)
        # published configs store it as _block_types (the attribute of transformers 4's RecurrentGemmaConfig)
        pattern = f.get("_block_types") or f.get("block_types")
        if not isinstance(pattern, (list, tuple)) or not pattern or not all(isinstance(t, str) for t in pattern):
            raise ModelConfigError(f"{source}: block_types must be a list of 'recurrent' and 'attention'")
        mixers = _attention_pattern(["attention" if pattern[i % len(pattern)] == "attention" else "mamba"
                                     for i in range(n_layers)], source)
        window = f.int("attention_window_size")
        spec.update(intermediate_size=spec["intermediate_size"] // 2, mlp_bias=True, o_bias=True,
                    layer_windows=tuple(window if m == "attention" else None for m in mixers))
    elif model_type == "zamba2":
        d, m_heads, bias = need("mamba_expand") * h, need("n_mamba_heads"), f.flag("add_bias_linear")
        state = _mamba2(h, d, m_heads, d // max(m_heads, 1), need("mamba_ngroups"), need("mamba_d_state"),
                        need("mamba_d_conv"), bias, bias, f.flag("use_conv_bias"), True)
        types = _layer_types(f, n_layers)
        if types is None:
            raise ModelConfigError(f"{source}: a Zamba2 config needs layers_block_type ('mamba' or 'hybrid' per layer)")
        bad = [t for t in types if t not in ("mamba", "linear_attention", "hybrid")]
        if bad:
            raise ModelConfigError(f"{source}: unknown Zamba2 layer type {bad[0]!r} (known: mamba, hybrid)")
        mixers = ["attention+state" if t == "hybrid" else "state" for t in types]
        uses, blocks, rank = mixers.count("attention+state"), need("num_mem_blocks"), need("adapter_rank")
        # Hybrid layers run one of `num_mem_blocks` shared transformer blocks on [hidden, embeddings] (2 x hidden
        # wide): attention with heads of 2 x hidden / heads, then a gated MLP; each use adds its own LoRA-style
        # adapters (on the MLP's gate_up, and on q, k, v when use_shared_attention_adapter) and a linear layer.
        wide, inter = 2 * h, spec["intermediate_size"]
        # transformers' config derives it as 2 x hidden / heads (Zamba2Config.__post_init__), which a stored one repeats
        head_dim = f.int("attention_head_dim") or wide // heads
        attention = wide * (heads + 2 * kv_heads) * head_dim + heads * head_dim * h
        mlp = h * 2 * inter + inter * h
        adapters = h * rank + rank * 2 * inter
        if f.flag("use_shared_attention_adapter"):
            adapters += 3 * (wide * rank + rank * wide)
        # LoRA's widths over those layers. transformers builds a block for every hybrid layer and ties their weights,
        # so peft adapts each layer's copy: its attention, MLP and linear layer (its adapter lists stay frozen: the
        # script's adapter_targets)
        widths = uses * (3 * wide + (heads + 2 * kv_heads) * head_dim + heads * head_dim + 3 * h + 3 * inter + 2 * h)
        spec.update(head_dim=head_dim, v_head_dim=head_dim, attention_shared=True, extra_adapter_widths=widths,
                    adapter_rank=rank,
                    extra_linear_params=blocks * (attention + mlp) + uses * (adapters + h * h),
                    extra_small_params=blocks * (wide + h + (2 * inter + h if bias else 0)),
                    extra_linear_reuse=max(uses - blocks, 0) * (attention + mlp), norms_per_layer=1)
        mlps = [False] * n_layers  # the MLP is the shared block's
    elif model_type == "rwkv":
        att, inter = f.int("attention_hidden_size") or h, f.int("intermediate_size") or 4 * h
        # time mixing (key, value, receptance, output) and the channel mix's receptance gate; decay, bonus and
        # the five token-shift mixes
        state = StateSpec(kind="rwkv", linear_params=3 * h * att + att * h + h * h, small_params=2 * att + 5 * h,
                          conv_channels=0, conv_kernel=0, recurrent_state_elements=2 * h + 3 * att,
                          scan_flops_per_token=12 * att + 4 * h)
        spec.update(intermediate_size=inter, mlp_gated=False, norm="layernorm", norm_bias=True,
                    extra_small_params=2 * h)  # the first block's pre_ln
    else:
        raise ModelConfigError(f"{source}: model_type {model_type!r} is not a state-space or hybrid type optiplan "
                               f"knows ({', '.join(HYBRID_TYPES)})")

    if moe is not None and not 1 <= moe.top_k <= moe.num_experts:
        raise ModelConfigError(f"{source}: each token must be routed to between 1 and the {moe.num_experts} experts "
                               f"(num_experts_per_tok is {moe.top_k})")
    if spec["intermediate_size"] <= 0 and any(m and not e for m, e in zip(mlps, moe_layers)):
        raise ModelConfigError(f"{source}: intermediate_size must be positive")
    if "attention" not in "".join(mixers):
        spec.update(num_heads=1, num_kv_heads=1, head_dim=0, v_head_dim=0)
    spec.setdefault("layer_windows", (None,) * n_layers)
    if state.kind == "mamba2":  # the chunk its scan runs over (Mamba-2's, Nemotron-H's, Zamba2's or the mamba_ one)
        chunk = f.int("chunk_size") or f.int("mamba_chunk_size", required=True)
        state = state.model_copy(update={"scan_chunk": chunk})
    spec.update(state=state, layer_mixers=tuple(mixers), layer_mlps=tuple(mlps), layer_moe=tuple(moe_layers),
                moe=moe, rotary_fraction=_rope_fraction(f, model_type))
    return spec


def _rope_fraction(f: Any, model_type: str) -> float:
    """The share of a head that rotary positions rotate: partial_rotary_factor (top level in older configs, in
    rope_parameters in transformers 5), or none where the model builds no rotary embedding. Jamba's and Nemotron-H's
    modeling files never rotate; Granite 4's builds one only where "position_embedding_type" is "rope" ("self.rotary_emb
    = GraniteMoeHybridRotaryEmbedding(config) if config.position_embedding_type == \"rope\" else None"; its hybrid
    configs say "nope"), Zamba2's only under use_mem_rope ("if config.use_mem_rope: ... self.rotary_emb"; False by
    default)."""
    if model_type in NO_ROTARY_TYPES \
            or (model_type == "granitemoehybrid" and f.get("position_embedding_type") != "rope") \
            or (model_type == "zamba2" and not f.get("use_mem_rope")):
        return 0.0
    rope = f.get("rope_parameters") or {}
    value = f.get("partial_rotary_factor")
    if value is None and isinstance(rope, dict):
        value = rope.get("partial_rotary_factor")
    return float(value) if isinstance(value, (int, float)) and 0 <= value <= 1 else 1.0
