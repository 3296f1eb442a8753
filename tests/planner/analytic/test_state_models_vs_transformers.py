"""State-space, linear-attention and hybrid models against transformers itself.

Parameters: transformers' own default config of every family, built on the `meta` device, total and
active per token exactly equal. Cache: a reduced-width copy of each family (its layer pattern kept,
written the way published configs write it) run on CPU; what its cache holds after forward passes
of two lengths (keys and values, convolution and recurrent states) equals `kv_cache_bytes`
exactly, and its parameters equal the analytic count too.
"""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from optiplan.planner.analytic.kvcache import attention_kv_bytes, kv_cache_bytes, state_elements  # noqa: E402
from optiplan.planner.analytic.params import param_counts  # noqa: E402
from optiplan.planner.catalog.model_spec import model_spec_from_config  # noqa: E402
from transformers_oracle import count_params, meta_model, real_cache_bytes  # noqa: E402

FAMILIES = ("mamba", "falcon_mamba", "mamba2", "jamba", "bamba", "granitemoehybrid", "falcon_h1", "nemotron_h",
            "qwen3_next", "lfm2")

_SMALL = {"hidden_size": 32, "vocab_size": 128, "intermediate_size": 64, "num_attention_heads": 4,
          "num_key_value_heads": 2, "max_position_embeddings": 128}
_MAMBA2 = {"mamba_n_heads": 4, "mamba_d_head": 16, "mamba_d_state": 8, "mamba_n_groups": 2}

# Reduced copies, each keeping its family's pattern, in the spelling of published configs.
REDUCED = {
    "mamba": {"hidden_size": 32, "vocab_size": 128, "num_hidden_layers": 2, "state_size": 8, "time_step_rank": 4},
    "falcon_mamba": {"hidden_size": 32, "vocab_size": 128, "num_hidden_layers": 3, "state_size": 8,
                     "time_step_rank": "auto", "use_bias": True},
    "mamba2": {"hidden_size": 32, "vocab_size": 128, "num_hidden_layers": 2, "num_heads": 4, "head_dim": 16,
               "n_groups": 2, "state_size": 8, "time_step_rank": 4},
    "jamba": {**_SMALL, "num_hidden_layers": 4, "mamba_dt_rank": 4, "attn_layer_period": 2, "attn_layer_offset": 1,
              "num_experts": 4, "expert_layer_period": 2, "expert_layer_offset": 0, "use_mamba_kernels": False},
    "bamba": {**_SMALL, **_MAMBA2, "num_hidden_layers": 4, "attn_layer_indices": [1], "mamba_proj_bias": True},
    "granitemoehybrid": {**_SMALL, **_MAMBA2, "num_hidden_layers": 3, "layer_types": ["mamba", "attention", "mamba"],
                         "num_local_experts": 4, "shared_intermediate_size": 32},
    "falcon_h1": {**_SMALL, **_MAMBA2, "num_hidden_layers": 2, "mamba_d_ssm": 64, "mamba_rms_norm": True,
                  "projectors_bias": True},
    "nemotron_h": {**_SMALL, "head_dim": 8, "mamba_num_heads": 4, "mamba_head_dim": 16, "ssm_state_size": 8,
                   "n_groups": 2, "hybrid_override_pattern": "M-*EM", "moe_intermediate_size": 32,
                   "moe_shared_expert_intermediate_size": 32, "n_routed_experts": 4},
    "qwen3_next": {**_SMALL, "num_hidden_layers": 4, "head_dim": 16, "linear_num_key_heads": 2,
                   "linear_num_value_heads": 4, "linear_key_head_dim": 8, "linear_value_head_dim": 16,
                   "num_experts": 4, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 32,
                   "num_experts_per_tok": 2, "layer_types": None, "full_attention_interval": 4},
    "lfm2": {**_SMALL, "num_hidden_layers": 4, "layer_types": None, "full_attn_idxs": [1]},
}


def _default_config(model_type: str) -> dict:
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type).to_dict()


def _reduced(model_type: str) -> dict:
    fields = {"model_type": model_type, **REDUCED[model_type]}
    return {k: v for k, v in fields.items() if v is not None}


def _counts(fields: dict, name: str) -> tuple[tuple[int, int], tuple[int, int]]:
    spec = model_spec_from_config(fields, name, "test")
    counts, moe = param_counts(spec), spec.moe
    real = count_params(meta_model(fields), moe.top_k if moe else None, moe.num_experts if moe else None)
    return (counts.total, counts.active), real


@pytest.mark.parametrize("model_type", FAMILIES)
def test_params_of_default_config_match_meta_model(model_type):
    predicted, real = _counts(_default_config(model_type), model_type)
    assert predicted == real, f"{model_type}: (total, active) {predicted} vs transformers {real}"


@pytest.mark.parametrize("model_type", FAMILIES)
def test_cache_and_params_of_reduced_copy_match_real_model(model_type):
    fields = _reduced(model_type)
    predicted, real = _counts(fields, model_type)
    assert predicted == real, f"{model_type}: (total, active) {predicted} vs transformers {real}"
    spec = model_spec_from_config(fields, model_type, "test")
    for tokens in (6, 20):  # shorter and longer than every convolution and chunk
        cached = real_cache_bytes(fields, tokens)
        assert kv_cache_bytes(spec, tokens, "fp32", layout="transformers") == cached, f"{model_type} at {tokens}"


def test_reduced_copies_keep_their_patterns():
    """The reductions keep what the comparison is about: attention beside state layers where the family
    has both, MoE where it has it, and state in every family."""
    specs = {t: model_spec_from_config(_reduced(t), t, "r") for t in FAMILIES}
    hybrids = {t for t, s in specs.items() if s.attention_layers and s.state_layers}
    assert hybrids == {"jamba", "bamba", "granitemoehybrid", "falcon_h1", "nemotron_h", "qwen3_next", "lfm2"}
    assert {t for t, s in specs.items() if s.moe} == {"jamba", "granitemoehybrid", "nemotron_h", "qwen3_next"}
    assert all(state_elements(s, "transformers") > 0 for s in specs.values())


def test_state_is_constant_in_context_and_attention_kv_grows():
    spec = model_spec_from_config(_default_config("jamba"), "jamba", "test")
    state = kv_cache_bytes(spec, 1, "bf16") - attention_kv_bytes(spec, 1, "bf16")
    for context in (1024, 131072):
        assert kv_cache_bytes(spec, context, "bf16") - attention_kv_bytes(spec, context, "bf16") == state
    # 4 attention layers of 32, 8 KV heads of 128: 16 KiB per token; 28 Mamba layers: d_inner 8192 x (16 + 3)
    assert attention_kv_bytes(spec, 1000, "bf16") == 4 * 8 * 128 * 2 * 2 * 1000
    assert state == 28 * 8192 * (16 + 3) * 2
    # a quantized KV cache leaves the state at 16 bits
    assert kv_cache_bytes(spec, 1000, "fp8") - attention_kv_bytes(spec, 1000, "fp8") == state
