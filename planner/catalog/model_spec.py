"""Normalise a Hugging Face `config.json` (any supported `model_type`) into a `ModelSpec`.

Each known model type names its field spellings and the defaults of its transformers config class
(a test checks those defaults against transformers itself), so a config that leaves a field out
means the same here as it does there. Unknown types fall back to the standard field names with a
warning. Pure Python: no torch, no transformers.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from ..errors import ModelConfigError
from ..schema import MLASpec, ModelSpec, MoESpec
from .hybrid_spec import HYBRID_DEFAULTS, hybrid_spec_fields, non_attention_signs

# Defaults of each transformers config class for the fields read below (checked in
# tests/planner/test_model_spec_defaults.py against transformers' own classes).
TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {"tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False},
    "mistral": {"tie_word_embeddings": False, "sliding_window": 4096},
    "mixtral": {"tie_word_embeddings": False, "sliding_window": None, "num_local_experts": 8,
                "num_experts_per_tok": 2},
    "qwen2": {"tie_word_embeddings": False, "use_sliding_window": False, "sliding_window": 4096,
              "max_window_layers": 28},
    "qwen2_moe": {"tie_word_embeddings": False, "use_sliding_window": False, "decoder_sparse_step": 1,
                  "mlp_only_layers": [], "num_experts": 60, "num_experts_per_tok": 4,
                  "shared_expert_intermediate_size": 5632, "moe_intermediate_size": 1408, "qkv_bias": True},
    "qwen3": {"tie_word_embeddings": False, "attention_bias": False, "use_sliding_window": False,
              "max_window_layers": 28},
    "qwen3_moe": {"tie_word_embeddings": False, "attention_bias": False, "decoder_sparse_step": 1,
                  "mlp_only_layers": [], "num_experts": 128, "num_experts_per_tok": 8,
                  "moe_intermediate_size": 768},
    "gemma": {"tie_word_embeddings": True, "attention_bias": False, "head_dim": 256},
    "gemma2": {"tie_word_embeddings": True, "attention_bias": False, "head_dim": 256, "sliding_window": 4096},
    "gemma3_text": {"tie_word_embeddings": True, "attention_bias": False, "head_dim": 256,
                    "sliding_window": 4096, "sliding_window_pattern": 6},
    "phi3": {"tie_word_embeddings": False, "sliding_window": None, "partial_rotary_factor": 1.0, "resid_pdrop": 0.0},
    "phimoe": {"tie_word_embeddings": False, "attention_bias": False, "lm_head_bias": False,
               "sliding_window": None, "num_local_experts": 16, "num_experts_per_tok": 2},
    "gpt2": {"tie_word_embeddings": True, "n_inner": None, "resid_pdrop": 0.1, "attn_pdrop": 0.1},
    "gptj": {"tie_word_embeddings": False, "n_inner": None, "rotary_dim": 64, "resid_pdrop": 0.0},
    "gpt_neox": {"tie_word_embeddings": False, "attention_bias": True, "use_parallel_residual": True,
                 "rotary_pct": 0.25, "hidden_dropout": 0.0},
    "falcon": {"tie_word_embeddings": True, "parallel_attn": True, "bias": False, "multi_query": True,
               "new_decoder_architecture": False, "alibi": False, "num_ln_in_parallel_attn": None,
               "hidden_dropout": 0.0},
    "olmo": {"tie_word_embeddings": False, "attention_bias": False},
    "olmo2": {"tie_word_embeddings": False, "attention_bias": False},
    "starcoder2": {"tie_word_embeddings": True, "use_bias": True, "sliding_window": None, "residual_dropout": 0.0},
    "stablelm": {"tie_word_embeddings": False, "use_qkv_bias": False, "qk_layernorm": False,
                 "use_parallel_residual": False, "partial_rotary_factor": 0.25, "hidden_dropout": 0.0},
    "granite": {"tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False},
    "deepseek_v2": {"tie_word_embeddings": False, "attention_bias": False, "first_k_dense_replace": 0,
                    "n_shared_experts": 2, "n_routed_experts": 64, "num_experts_per_tok": None,
                    "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
                    "qk_rope_head_dim": 64, "v_head_dim": 128, "moe_intermediate_size": 1407},
    "deepseek_v3": {"tie_word_embeddings": False, "attention_bias": False, "first_k_dense_replace": 3,
                    "n_shared_experts": 1, "n_routed_experts": 256, "num_experts_per_tok": 8,
                    "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
                    "qk_rope_head_dim": 64, "v_head_dim": 128, "moe_intermediate_size": 2048},
    # GLM-4.5: DeepSeek-V3's mixture of experts (routed, shared, the first layers dense, a score-corrected router)
    # over grouped-query attention
    "glm4_moe": {"tie_word_embeddings": False, "attention_bias": False, "first_k_dense_replace": 1,
                 "n_shared_experts": 1, "n_routed_experts": 128, "num_experts_per_tok": 8,
                 "moe_intermediate_size": 1408, "use_qk_norm": False},
    # EXAONE 4: per-head query and key norms, three sliding-window layers to a full one
    "exaone4": {"tie_word_embeddings": False, "sliding_window": 4096, "sliding_window_pattern": 4},
    # Command R and Command A: attention and the MLP side by side off one LayerNorm, tied embeddings; Command A and
    # R7B (cohere2) with three sliding-window layers to a full one
    "cohere": {"tie_word_embeddings": True, "attention_bias": False, "use_qk_norm": False},
    "cohere2": {"tie_word_embeddings": True, "attention_bias": False, "sliding_window": 4096,
                "sliding_window_pattern": 4},
    "gpt_oss": {"tie_word_embeddings": False, "attention_bias": True, "head_dim": 64, "sliding_window": 128,
                "num_local_experts": 128, "num_experts_per_tok": 4},
    "llama4_text": {"tie_word_embeddings": False, "attention_bias": False, "use_qk_norm": True, "num_local_experts": 16,
                    "num_experts_per_tok": 1, "interleave_moe_layer_step": 1, "intermediate_size": 8192,
                    "intermediate_size_mlp": 16384, "attention_chunk_size": 8192},
}
SUPPORTED_TYPES = tuple(TYPE_DEFAULTS) + tuple(HYBRID_DEFAULTS)
# the config key of the dropout transformers applies to each block's output before the residual add, by model type
RESIDUAL_DROPOUT_KEYS = {"gpt2": "resid_pdrop", "gptj": "resid_pdrop", "phi3": "resid_pdrop",
                         "starcoder2": "residual_dropout", "gpt_neox": "hidden_dropout", "falcon": "hidden_dropout",
                         "stablelm": "hidden_dropout"}

# Standard field spellings, first match wins (GPT-2 and Falcon style names included).
_ALIASES = {
    "hidden_size": ("hidden_size", "n_embd", "d_model"),
    "num_hidden_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head", "num_heads"),
    "max_position_embeddings": ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"),
    # transformers 5 saves Qwen3-MoE's expert count as num_local_experts (Qwen3MoeConfig.to_dict)
    "num_experts": ("num_experts", "num_local_experts"),
}

# No real model has a dimension, layer count, vocabulary or context anywhere near this: a larger value is a typo or
# garbage, and left in it would make every figure overflow.
MAX_FIELD = 2**31 - 1

# Multimodal wrappers whose language model lives in `text_config`.
_TEXT_CONFIG_KEYS = ("text_config", "language_config", "llm_config")


class _Fields:
    """Reads config fields with this type's defaults and remembers what was missing."""

    def __init__(self, cfg: dict[str, Any], defaults: dict[str, Any], where: str):
        self.cfg, self.defaults, self.where = cfg, defaults, where

    def get(self, key: str, default: Any = None) -> Any:
        for k in _ALIASES.get(key, (key,)):
            if k in self.cfg and self.cfg[k] is not None:
                return self.cfg[k]
        if key in self.cfg:  # explicitly null
            return None
        return self.defaults.get(key, default)

    def int(self, key: str, default: Any = None, required: bool = False) -> int | None:
        value = self.get(key, default)
        if value is None:
            if required:
                raise ModelConfigError(f"{self.where}: required field '{key}' is missing")
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or int(value) != value:
            raise ModelConfigError(f"{self.where}: field '{key}' must be an integer, got {value!r}")
        if value < 0:
            raise ModelConfigError(f"{self.where}: field '{key}' must not be negative, got {value}")
        if value > MAX_FIELD:
            raise ModelConfigError(f"{self.where}: field '{key}' is {value:.3g}, beyond any real model "
                                   f"(at most {MAX_FIELD:,})")
        return int(value)

    def number(self, key: str, low: float, high: float, default: float | None = None) -> float | None:
        """A finite real number in [low, high], or None when absent."""
        value = self.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= high:
            raise ModelConfigError(f"{self.where}: field '{key}' must be a number from {low} to {high}, "
                                   f"got {value!r}")
        return float(value)

    def int_list(self, key: str) -> list[int]:
        value = self.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ModelConfigError(f"{self.where}: field '{key}' must be a list of layer indices, got {value!r}")
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.get(key, default)
        return bool(value) if value is not None else default


def _text_config(cfg: dict[str, Any]) -> dict[str, Any]:
    if "hidden_size" in cfg or "n_embd" in cfg or "d_model" in cfg:
        return cfg
    for key in _TEXT_CONFIG_KEYS:
        inner = cfg.get(key)
        if isinstance(inner, dict):
            merged = dict(inner)
            merged.setdefault("model_type", f"{cfg.get('model_type') or ''}_text")
            # the checkpoint's own type, which the engines load it by (`wrapper_model_type`, stored in the catalog's
            # configs of such checkpoints too)
            merged.setdefault("wrapper_model_type", cfg.get("model_type"))
            if merged["model_type"] == "gemma3":
                merged["model_type"] = "gemma3_text"
            return merged
    return cfg


def _rotary_fraction(f: _Fields, key: str) -> float:
    """Share of each head's dimensions that rotary embeddings rotate: a top-level field in older
    configs, inside `rope_parameters` (as partial_rotary_factor) in transformers 5 configs."""
    rope = f.cfg.get("rope_parameters") or {}
    value = f.number(key, 0.0, 1.0)
    if value is None and isinstance(rope, dict):
        value = _Fields(rope, {}, f.where).number("partial_rotary_factor", 0.0, 1.0)
    return value if value is not None else float(f.defaults.get(key, 1.0))


def _yarn_context(f: _Fields) -> int:
    """The context a config's YaRN rotary scaling reaches (its original length times its factor; 0 without one), which
    the serving engines take as the model's longest sequence where it is beyond max_position_embeddings (vLLM's
    _get_and_verify_max_len: "if rope_type == \"yarn\": derived_max_model_len = rope_scaling[
    \"original_max_position_embeddings\"]" then "derived_max_model_len *= scaling_factor"): Qwen3's 40,960 becomes
    131,072 with the block its docs give, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings":
    32768} (QwenLM/Qwen3 docs/source/deployment/vllm.md)."""
    rope = f.cfg.get("rope_scaling") or f.cfg.get("rope_parameters")
    if not isinstance(rope, dict) or (rope.get("rope_type") or rope.get("type")) != "yarn":
        return 0
    original, factor = rope.get("original_max_position_embeddings"), rope.get("factor")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (original,
                                                                                                       factor))
    # (a block the engines would not extend the context with, a factor below 1 or missing, extends nothing here)
    return int(original * factor) if numbers and original > 0 and factor >= 1 else 0


def _yarn_extended(f: _Fields, max_pos: int, warnings: list[str]) -> int:
    """The longest sequence the engines serve: max_position_embeddings, or the YaRN context beyond it (said in
    `warnings`), for attention and hybrid families alike (Qwen3-Next's hybrid config takes the same block)."""
    if (yarn := _yarn_context(f)) <= max_pos:
        return max_pos
    warnings.append(f"rope_scaling (YaRN) takes the context from max_position_embeddings {max_pos:,} to {yarn:,} "
                    "tokens, as vLLM and SGLang read it; the engines apply it to every sequence, short ones too, which "
                    "may lower their quality (Qwen3's docs advise it only where contexts are long)")
    return yarn


# Qwen's configs set a window that applies only with use_sliding_window (transformers' configs drop it otherwise);
# the first three derive their layer_types from it and max_window_layers
QWEN_WINDOW_FLAG = ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe")
QWEN_DERIVED_LAYER_TYPES = ("qwen2", "qwen3", "qwen2_moe")


def _config_window(f: _Fields, model_type: str) -> int | None:
    """The sliding window the config sets, where transformers keeps it (Qwen's only with use_sliding_window)."""
    window = f.int("sliding_window")
    return None if not window or (model_type in QWEN_WINDOW_FLAG and not f.flag("use_sliding_window")) else window


def _windows(f: _Fields, model_type: str, num_layers: int) -> list[int | None]:
    """Per-layer sliding window: explicit layer_types first, then each type's own rule."""
    window = _config_window(f, model_type)
    layer_types = f.get("layer_types")
    if isinstance(layer_types, list) and len(layer_types) == num_layers:
        return [window if t in ("sliding_attention", "chunked_attention") and window else None for t in layer_types]
    if window is None:
        return [None] * num_layers
    if model_type in ("gemma2", "gpt_oss"):  # alternating, the first layer windowed
        return [window if (i + 1) % 2 else None for i in range(num_layers)]
    if model_type in ("gemma3_text", "exaone4", "cohere2"):  # every pattern-th layer full (transformers' layer_types)
        pattern = f.int("sliding_window_pattern")
        return [window if pattern and (i + 1) % pattern else None for i in range(num_layers)]
    if model_type in QWEN_DERIVED_LAYER_TYPES:
        first = f.int("max_window_layers") or 0
        return [window if i >= first else None for i in range(num_layers)]
    if window >= (f.int("max_position_embeddings") or 0) > 0:
        return [None] * num_layers  # a window as long as the context is full attention
    return [window] * num_layers


def _chunks(f: _Fields, model_type: str, num_layers: int) -> list[int | None]:
    """Per-layer chunk of chunked local attention (`attention_chunk_size`): the layers `layer_types` calls
    chunked_attention, else Llama 4's rotary layers (transformers' Llama4TextConfig: `no_rope_layers` 1 where a layer
    applies rotary positions, by default every layer but each `no_rope_layer_interval`-th, 4; its NoPE layers attend
    to the whole context). Empty where the model chunks no layer."""
    chunk = f.int("attention_chunk_size")
    if not chunk:
        return []
    layer_types = f.get("layer_types")
    if isinstance(layer_types, list) and len(layer_types) == num_layers:
        return [chunk if t == "chunked_attention" else None for t in layer_types]
    if model_type not in ("llama4", "llama4_text"):
        return []
    rope = f.int_list("no_rope_layers")
    if len(rope) != num_layers:
        interval = f.int("no_rope_layer_interval") or 4
        rope = [int((i + 1) % interval != 0) for i in range(num_layers)]
    return [chunk if r else None for r in rope]


def _moe(f: _Fields, model_type: str, num_layers: int, hidden: int) -> tuple[MoESpec | None, list[bool]]:
    if model_type in ("mixtral", "phimoe"):
        experts = f.int("num_local_experts")
        spec = MoESpec(num_experts=experts, top_k=f.int("num_experts_per_tok", required=True),
                       expert_intermediate_size=f.int("intermediate_size", required=True))
        return spec, [True] * num_layers
    if model_type == "gpt_oss":  # every layer MoE; the router and each expert's projections carry biases
        spec = MoESpec(num_experts=f.int("num_local_experts", required=True),
                       top_k=f.int("num_experts_per_tok") or f.int("experts_per_token", required=True),
                       expert_intermediate_size=f.int("intermediate_size", required=True), router_bias=True,
                       expert_bias=True)
        return spec, [True] * num_layers
    if model_type in ("qwen2_moe", "qwen3_moe"):
        experts = f.int("num_experts") or 0
        step = f.int("decoder_sparse_step") or 1
        only_mlp = set(f.int_list("mlp_only_layers"))
        layers = [experts > 0 and i not in only_mlp and (i + 1) % step == 0 for i in range(num_layers)]
        shared = f.int("shared_expert_intermediate_size") if model_type == "qwen2_moe" else 0
        spec = MoESpec(num_experts=experts, top_k=f.int("num_experts_per_tok"),
                       expert_intermediate_size=f.int("moe_intermediate_size", required=True),
                       shared_intermediate_size=shared or 0, shared_expert_gate=model_type == "qwen2_moe")
        return (spec if any(layers) else None), layers
    if model_type == "llama4_text":
        # Llama 4: a MoE block on every `interleave_moe_layer_step`-th layer (Maverick: every other one, Scout: all),
        # each with one shared expert the size of a routed one beside the routed ones (transformers'
        # Llama4TextMoe: `shared_expert = Llama4TextMLP(config)`); the other layers are dense, of
        # `intermediate_size_mlp` (the spec's `intermediate_size`)
        experts, step = f.int("num_local_experts") or 0, f.int("interleave_moe_layer_step") or 1
        chosen = set(f.int_list("moe_layers")) if f.get("moe_layers") is not None else \
            set(range(step - 1, num_layers, step))
        layers = [experts > 0 and i in chosen for i in range(num_layers)]
        inter = f.int("intermediate_size", required=True)
        spec = MoESpec(num_experts=experts, top_k=f.int("num_experts_per_tok", required=experts > 0),
                       expert_intermediate_size=inter, shared_intermediate_size=inter)
        return (spec if any(layers) else None), layers
    if model_type in ("deepseek_v2", "deepseek_v3", "glm4_moe"):
        experts = f.int("n_routed_experts") or 0
        first_dense = f.int("first_k_dense_replace") or 0
        layers = [experts > 0 and i >= first_dense for i in range(num_layers)]
        inter = f.int("moe_intermediate_size", required=True)
        spec = MoESpec(num_experts=experts, top_k=f.int("num_experts_per_tok", required=experts > 0),
                       expert_intermediate_size=inter,
                       shared_intermediate_size=(f.int("n_shared_experts") or 0) * inter,
                       router_score_bias=model_type in ("deepseek_v3", "glm4_moe"))
        return (spec if any(layers) else None), layers
    # Generic MoE fields on an unknown type: count experts only if the usual names are there.
    experts = f.int("num_local_experts") or f.int("num_experts") or f.int("n_routed_experts")
    if experts and f.int("num_experts_per_tok"):
        inter = f.int("moe_intermediate_size") or f.int("intermediate_size", required=True)
        return MoESpec(num_experts=experts, top_k=f.int("num_experts_per_tok"),
                       expert_intermediate_size=inter), [True] * num_layers
    return None, [False] * num_layers


def model_spec_from_config(config: dict[str, Any], name: str, source: str) -> ModelSpec:
    """Build a ModelSpec from the fields of a config.json. Raises ModelConfigError on bad input."""
    try:
        return _spec_from_config(config, name, source)
    except ValidationError as exc:  # a field of the wrong kind that reached the spec
        first = exc.errors()[0]
        raise ModelConfigError(f"{source}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc


def _spec_from_config(config: dict[str, Any], name: str, source: str) -> ModelSpec:
    if not isinstance(config, dict):
        raise ModelConfigError(f"{source}: a config must be a JSON object, got {type(config).__name__}")
    cfg = _text_config(config)
    model_type = str(cfg.get("model_type") or "")
    if model_type in HYBRID_DEFAULTS:  # state-space and hybrid families (catalog/hybrid_spec.py)
        hybrid = _Fields(cfg, HYBRID_DEFAULTS[model_type], source)
        fields = hybrid_spec_fields(hybrid, model_type, name, source)
        notes = list(fields.get("warnings", ()))
        fields.update(max_position_embeddings=_yarn_extended(hybrid, fields["max_position_embeddings"], notes),
                      warnings=tuple(notes))
        return ModelSpec(**fields)
    warnings: list[str] = []
    if model_type not in TYPE_DEFAULTS and non_attention_signs(cfg):
        raise ModelConfigError(f"{source}: model_type '{model_type or '?'}' is not one optiplan knows, and its fields "
                               f"({', '.join(non_attention_signs(cfg)[:4])}) describe layers that are not attention, "
                               f"which the standard fields would misread; known types: {', '.join(SUPPORTED_TYPES)}")
    if model_type not in TYPE_DEFAULTS:
        warnings.append(f"model_type '{model_type or '?'}' is not one optiplan knows "
                        f"({', '.join(SUPPORTED_TYPES)}); read with the standard config fields")
    f = _Fields(cfg, TYPE_DEFAULTS.get(model_type, {}), source)

    hidden = f.int("hidden_size", required=True)
    layers = f.int("num_hidden_layers", required=True)
    heads = f.int("num_attention_heads", required=True)
    vocab = f.int("vocab_size", required=True)
    if not hidden or not layers or not heads or not vocab:
        raise ModelConfigError(f"{source}: hidden_size, num_hidden_layers, num_attention_heads and "
                               "vocab_size must all be positive")
    kv_heads = f.int("num_key_value_heads") or f.int("num_kv_heads") or heads
    head_dim = f.int("head_dim") or hidden // heads
    if not head_dim:
        raise ModelConfigError(f"{source}: hidden_size ({hidden}) is smaller than num_attention_heads ({heads}) and "
                               "no head_dim is given")
    if heads % kv_heads:
        raise ModelConfigError(f"{source}: num_attention_heads ({heads}) is not a multiple of "
                               f"num_key_value_heads ({kv_heads})")
    max_pos = f.int("max_position_embeddings") or 0
    if max_pos <= 0:
        max_pos = 2048
        warnings.append("config has no max_position_embeddings; assuming 2048")
    max_pos = _yarn_extended(f, max_pos, warnings)

    spec: dict[str, Any] = dict(
        name=name, model_type=model_type or "unknown", source=source, vocab_size=vocab, hidden_size=hidden,
        num_layers=layers, num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, v_head_dim=head_dim,
        intermediate_size=f.int("intermediate_size") or 4 * hidden,
        qkv_bias=f.flag("attention_bias"), o_bias=f.flag("attention_bias"), mlp_bias=f.flag("mlp_bias"),
        tie_word_embeddings=f.flag("tie_word_embeddings"), max_position_embeddings=max_pos,
        rotary_fraction=_rotary_fraction(f, "partial_rotary_factor"),
        attn_logit_softcap=f.number("attn_logit_softcapping", 1e-6, 1e6),
    )
    norm_bias_types = {"gpt2", "gptj", "gpt_neox", "falcon", "starcoder2", "stablelm", "phimoe"}
    if model_type in norm_bias_types:
        spec.update(norm="layernorm", norm_bias=True)

    if model_type == "qwen2":
        spec.update(qkv_bias=True, o_bias=False)
    elif model_type == "qwen2_moe":
        spec.update(qkv_bias=f.flag("qkv_bias", True), o_bias=False)
    elif model_type in ("qwen3", "qwen3_moe"):
        spec.update(qk_norm="head")
    elif model_type == "gemma2":
        spec.update(norms_per_layer=4)
    elif model_type == "gemma3_text":
        spec.update(norms_per_layer=4, qk_norm="head")
        if f.cfg.get("wrapper_model_type") == "gemma3":
            # named as the engines know the checkpoint: Gemma 3 4B-27B publish the multimodal
            # Gemma3ForConditionalGeneration (model_type gemma3), which vLLM, SGLang and TGI load as a vision-language
            # model (TGI without prefix caching or prefill chunks); the 1B is text-only (gemma3_text)
            spec.update(model_type="gemma3")
    elif model_type == "exaone4":
        spec.update(qk_norm="head")
    elif model_type == "glm4_moe":
        # its output projection carries no bias whatever attention_bias says (Glm4MoeAttention: o_proj bias=False)
        spec.update(o_bias=False, qk_norm="head" if f.flag("use_qk_norm") else "none")
    elif model_type == "olmo":
        spec.update(norm="nonparametric")
    elif model_type in ("olmo2", "olmo3"):
        spec.update(qk_norm="full")
    elif model_type == "phimoe":
        spec.update(lm_head_bias=f.flag("lm_head_bias"))
    elif model_type == "gpt_oss":
        spec.update(attention_sinks=True)
    elif model_type == "llama4_text":
        # named as the engines know the architecture (its language model is `llama4_text` inside a `llama4`
        # checkpoint; vLLM, SGLang, TGI and TensorRT-LLM list the latter); the dense layers' MLP, the MoE layers'
        # experts being `intermediate_size` (`_moe`). Its QK norm is a plain L2 norm, without weights
        spec.update(model_type="llama4", qk_norm="l2" if f.flag("use_qk_norm") else "none",
                    intermediate_size=f.int("intermediate_size_mlp") or spec["intermediate_size"])
        chunk = f.int("attention_chunk_size")
        if chunk:
            warnings.append(f"chunked attention ({chunk:,}-token chunks on the layers with rotary positions): a "
                            "serving engine's kernels attend to a token's own chunk, its cache keeps every key (as "
                            "TensorRT-LLM, SGLang and vLLM through 0.11 keep it by default; a hybrid cache, where on, "
                            f"frees the older chunks: less memory than predicted past {chunk:,} tokens)")
    elif model_type in ("cohere", "cohere2"):
        # attention and MLP side by side off one weight-only LayerNorm (CohereDecoderLayer: "hidden_states =
        # self.input_layernorm(hidden_states)" feeds self_attn and mlp; CohereLayerNorm has no bias). Its query and
        # key norms are per head with a weight for each head ("CohereLayerNorm(hidden_size=(self.num_heads,
        # self.head_dim))"): as many weights as a norm over the whole width, which is how they are counted
        spec.update(norm="layernorm", parallel_attention=True, norms_per_layer=1,
                    qk_norm="full" if f.flag("use_qk_norm") else "none")
    elif model_type == "starcoder2":
        bias = f.flag("use_bias")
        spec.update(mlp_gated=False, qkv_bias=bias, o_bias=bias, mlp_bias=bias)
    elif model_type == "stablelm":
        parallel = f.flag("use_parallel_residual")
        spec.update(qkv_bias=f.flag("use_qkv_bias"), o_bias=False, parallel_attention=parallel,
                    norms_per_layer=1 if parallel else 2, qk_norm="full" if f.flag("qk_layernorm") else "none")
    elif model_type == "gpt_neox":
        bias = f.flag("attention_bias")
        spec.update(mlp_gated=False, qkv_bias=bias, o_bias=bias, mlp_bias=True,
                    parallel_attention=f.flag("use_parallel_residual"),
                    rotary_fraction=_rotary_fraction(f, "rotary_pct"))
    elif model_type == "gpt2":
        spec.update(mlp_gated=False, qkv_bias=True, o_bias=True, mlp_bias=True,
                    intermediate_size=f.int("n_inner") or 4 * hidden, learned_positions=max_pos,
                    rotary_fraction=0.0)
    elif model_type == "gptj":  # attention and MLP side by side off one LayerNorm; rotary on rotary_dim of each head
        spec.update(mlp_gated=False, qkv_bias=False, o_bias=False, mlp_bias=True, lm_head_bias=True,
                    intermediate_size=f.int("n_inner") or 4 * hidden, parallel_attention=True, norms_per_layer=1,
                    rotary_fraction=min(1.0, (f.int("rotary_dim") or head_dim) / head_dim))
    elif model_type == "falcon":
        bias = f.flag("bias")
        new_arch = f.flag("new_decoder_architecture")
        parallel = f.flag("parallel_attn")
        if new_arch:
            kv_heads = f.int("num_kv_heads") or heads
            norms = f.int("num_ln_in_parallel_attn") or 2
        else:
            kv_heads = 1 if f.flag("multi_query") else heads
            norms = 1 if parallel else 2
        spec.update(num_kv_heads=kv_heads, mlp_gated=False, qkv_bias=bias, o_bias=bias, mlp_bias=bias,
                    intermediate_size=f.int("ffn_hidden_size") or 4 * hidden, parallel_attention=parallel or new_arch,
                    norms_per_layer=norms, rotary_fraction=0.0 if f.flag("alibi") else 1.0)
    elif model_type in ("deepseek_v2", "deepseek_v3"):
        mla = MLASpec(q_lora_rank=f.int("q_lora_rank"), kv_lora_rank=f.int("kv_lora_rank", required=True),
                      qk_nope_head_dim=f.int("qk_nope_head_dim", required=True),
                      qk_rope_head_dim=f.int("qk_rope_head_dim", required=True),
                      v_head_dim=f.int("v_head_dim", required=True))
        spec.update(mla=mla, num_kv_heads=heads, head_dim=mla.qk_nope_head_dim + mla.qk_rope_head_dim,
                    v_head_dim=mla.v_head_dim, mlp_bias=False)

    if model_type in RESIDUAL_DROPOUT_KEYS:
        spec["residual_dropout"] = f.number(RESIDUAL_DROPOUT_KEYS[model_type], 0.0, 0.999) or 0.0
    # the attention probabilities' dropout ("dropout=0.0 if not self.training else self.attention_dropout")
    spec["attention_dropout"] = f.number("attn_pdrop" if model_type in ("gpt2", "gptj") else "attention_dropout",
                                         0.0, 0.999) or 0.0
    moe, layer_moe = _moe(f, model_type, layers, hidden)
    quant = config.get("quantization_config") or cfg.get("quantization_config")
    method = str(quant.get("quant_method", "")).lower() if isinstance(quant, dict) else ""
    if method == "fp8":
        spec["checkpoint_dtype"] = "fp8"
    elif method == "mxfp4" and moe is not None:
        # transformers' MXFP4 integration stores the routed experts alone in it (integrations/mxfp4.py replaces the
        # experts' modules; gpt-oss's config lists self_attn, the router, embedding and head in
        # modules_to_not_convert): the other weights stay 16-bit
        spec.update(checkpoint_dtype="mxfp4", checkpoint_modules="experts")
    # transformers' caches read a window the config sets as every layer's, unless the config types its layers (in
    # its file, or derived by Qwen's configs: layer_windows holds those)
    spec.update(config_window=bool(_config_window(f, model_type)) and not isinstance(f.get("layer_types"), list)
                and model_type not in QWEN_DERIVED_LAYER_TYPES)
    spec.update(moe=moe, layer_moe=tuple(layer_moe), layer_windows=tuple(_windows(f, model_type, layers)),
                layer_chunks=tuple(_chunks(f, model_type, layers)), warnings=tuple(warnings))
    if spec["intermediate_size"] <= 0:
        raise ModelConfigError(f"{source}: intermediate_size must be positive")
    if moe is not None and not 1 <= (moe.top_k or 0) <= moe.num_experts:
        raise ModelConfigError(f"{source}: each token must be routed to between 1 and the {moe.num_experts} experts "
                               f"(num_experts_per_tok is {moe.top_k})")
    return ModelSpec(**spec)
