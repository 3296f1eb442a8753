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
from transformers_oracle import STATE_REDUCTIONS, count_params, meta_model, real_cache_bytes  # noqa: E402

FAMILIES = ("mamba", "falcon_mamba", "mamba2", "jamba", "bamba", "granitemoehybrid", "falcon_h1", "nemotron_h",
            "qwen3_next", "lfm2", "lfm2_moe", "recurrent_gemma", "rwkv", "zamba2")

# Reduced copies, each keeping its family's pattern, in the spelling of published configs.
PATTERNS = {
    "mamba": {"num_hidden_layers": 2},
    "falcon_mamba": {"num_hidden_layers": 3, "time_step_rank": "auto", "use_bias": True},
    "mamba2": {"num_hidden_layers": 2},
    "jamba": {"num_hidden_layers": 4, "attn_layer_period": 2, "attn_layer_offset": 1, "expert_layer_period": 2,
              "expert_layer_offset": 0},
    "bamba": {"num_hidden_layers": 4, "attn_layer_indices": [1], "mamba_proj_bias": True},
    "granitemoehybrid": {"num_hidden_layers": 3, "layer_types": ["mamba", "attention", "mamba"]},
    "falcon_h1": {"num_hidden_layers": 2, "mamba_rms_norm": True, "projectors_bias": True},
    "nemotron_h": {"hybrid_override_pattern": "M-*EM"},
    "qwen3_next": {"num_hidden_layers": 4, "full_attention_interval": 4},
    "lfm2": {"num_hidden_layers": 4, "full_attn_idxs": [1]},
    "recurrent_gemma": {"num_hidden_layers": 4, "num_key_value_heads": 1},  # R R A R: 8-token window, MQA
    "lfm2_moe": {"num_hidden_layers": 4, "layer_types": ["conv", "conv", "full_attention", "conv"]},
    "rwkv": {"num_hidden_layers": 2},
    # two shared blocks alternating over three hybrid layers, adapters on q, k, v too (transformers adds them
    # only to full-width k and v: as many KV heads as query heads), biases
    "zamba2": {"num_hidden_layers": 5, "layers_block_type": ["mamba", "hybrid", "hybrid", "mamba", "hybrid"],
               "num_mem_blocks": 2, "use_shared_attention_adapter": True, "add_bias_linear": True,
               "num_key_value_heads": 4},
}


# transformers' LFM2-MoE default has no layer_types and cannot be built without them: one attention layer in four.
_DEFAULT_EXTRA = {"lfm2_moe": {"layer_types": ["full_attention" if i % 4 == 3 else "conv" for i in range(32)]}}


def _default_config(model_type: str) -> dict:
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **_DEFAULT_EXTRA.get(model_type, {})).to_dict()


def _reduced(model_type: str) -> dict:
    return {"model_type": model_type, **STATE_REDUCTIONS[model_type], **PATTERNS[model_type]}


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
    for tokens in (6, 20):  # shorter and longer than every convolution, chunk and window
        cached = real_cache_bytes(fields, tokens)
        assert kv_cache_bytes(spec, tokens, "fp32", layout="transformers") == cached, f"{model_type} at {tokens}"


def test_reduced_copies_keep_their_patterns():
    """The reductions keep what the comparison is about: attention beside state layers where the family
    has both, MoE where it has it, and state in every family."""
    specs = {t: model_spec_from_config(_reduced(t), t, "r") for t in FAMILIES}
    hybrids = {t for t, s in specs.items() if s.attention_layers and s.state_layers}
    assert hybrids == {"jamba", "bamba", "granitemoehybrid", "falcon_h1", "nemotron_h", "qwen3_next", "lfm2",
                       "lfm2_moe", "recurrent_gemma", "zamba2"}
    assert {t for t, s in specs.items() if s.moe} == {"jamba", "granitemoehybrid", "nemotron_h", "qwen3_next",
                                                      "lfm2_moe"}
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
