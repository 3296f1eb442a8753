"""State-space and hybrid configs read into layer patterns: defaults as transformers declares them, the
spellings published configs use, and clear errors for what cannot be read."""

from __future__ import annotations

import dataclasses

import pytest
from optiplan.planner.catalog.hybrid_spec import HYBRID_DEFAULTS, UNBOUNDED_CONTEXT
from optiplan.planner.catalog.model_spec import model_spec_from_config
from optiplan.planner.errors import ModelConfigError

# Defaults transformers keeps outside its dataclass fields: (type, field) -> how it treats an absent value.
_NOT_FIELDS = {("qwen3_next", "full_attention_interval"): 4,  # popped from kwargs, default 4
               ("qwen3_next", "mlp_only_layers"): None}  # None: no MLP-only layer, as our []


@pytest.mark.parametrize("model_type", sorted(HYBRID_DEFAULTS))
def test_defaults_match_transformers(model_type):
    pytest.importorskip("transformers")
    from transformers import CONFIG_MAPPING

    cls = CONFIG_MAPPING[model_type]
    declared = {f.name: f.default for f in dataclasses.fields(cls)}
    for key, ours in HYBRID_DEFAULTS[model_type].items():
        if (model_type, key) in _NOT_FIELDS:
            assert key not in declared or declared[key] == _NOT_FIELDS[model_type, key]
            continue
        assert key in declared, f"{model_type}: transformers has no field {key}"
        assert declared[key] == ours, f"{model_type}.{key}: transformers {declared[key]!r}, optiplan {ours!r}"


def _mixers(spec) -> str:
    return "".join({"state": "S", "attention": "A", "attention+state": "B", "none": "-"}[m] for m in spec.layer_mixers)


def test_mamba_config_without_attention_fields():
    """The issue's first symptom: a Mamba config has no num_attention_heads and no context limit."""
    spec = model_spec_from_config({"model_type": "mamba", "hidden_size": 768, "num_hidden_layers": 24,
                                   "vocab_size": 50280}, "m", "test")
    assert _mixers(spec) == "S" * 24 and spec.attention_layers == 0 and spec.attention_kind == "none"
    assert spec.max_position_embeddings == UNBOUNDED_CONTEXT and not spec.warnings
    assert spec.state.recurrent_state_elements == 1536 * 16 and spec.state.conv_channels == 1536


def test_nemotron_h_pattern_string():
    spec = model_spec_from_config({"model_type": "nemotron_h", "hidden_size": 64, "vocab_size": 100,
                                   "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                                   "mamba_num_heads": 4, "mamba_head_dim": 32, "n_groups": 1,
                                   "hybrid_override_pattern": "M-M*-E"}, "n", "test")
    assert _mixers(spec) == "S-SA--" and spec.layer_mlps == (False, True, False, False, True, True)
    assert spec.layer_moe == (False,) * 5 + (True,) and spec.norms_per_layer == 1 and not spec.mlp_gated
    with pytest.raises(ModelConfigError, match="unknown Nemotron-H layer type 'X'"):
        model_spec_from_config({"model_type": "nemotron_h", "hidden_size": 64, "vocab_size": 100,
                                "hybrid_override_pattern": "MX"}, "n", "test")
    with pytest.raises(ModelConfigError, match="needs hybrid_override_pattern"):
        model_spec_from_config({"model_type": "nemotron_h", "hidden_size": 64, "vocab_size": 100,
                                "num_hidden_layers": 4}, "n", "test")


@pytest.mark.parametrize("fields, pattern", [
    ({"model_type": "jamba", "num_hidden_layers": 8}, "SSSSASSS"),
    ({"model_type": "bamba", "num_hidden_layers": 4, "attn_layer_indices": [2]}, "SSAS"),
    ({"model_type": "granitemoehybrid", "num_hidden_layers": 3, "layer_types": ["mamba", "attention", "mamba"]},
     "SAS"),
    ({"model_type": "qwen3_next", "num_hidden_layers": 8}, "SSSASSSA"),
    ({"model_type": "lfm2", "num_hidden_layers": 4, "full_attn_idxs": [1, 3]}, "SASA"),
    ({"model_type": "lfm2", "num_hidden_layers": 3, "layer_types": ["conv", "full_attention", "conv"]}, "SAS"),
    ({"model_type": "falcon_h1", "num_hidden_layers": 2}, "BB"),
])
def test_layer_patterns(fields, pattern):
    base = {"hidden_size": 256, "vocab_size": 1000, "num_attention_heads": 4, "num_key_value_heads": 2,
            "mamba_n_heads": 8, "intermediate_size": 512}
    spec = model_spec_from_config({**base, **fields}, "h", "test")
    assert _mixers(spec) == pattern
    assert spec.attention_layers == pattern.count("A") + pattern.count("B")


def test_bad_patterns_are_errors():
    base = {"hidden_size": 256, "vocab_size": 1000, "num_attention_heads": 4, "num_hidden_layers": 2}
    with pytest.raises(ModelConfigError, match="one type per layer"):
        model_spec_from_config({**base, "model_type": "qwen3_next", "layer_types": ["full_attention"]}, "q", "t")
    with pytest.raises(ModelConfigError, match="unknown layer type 'cross'"):
        model_spec_from_config({**base, "model_type": "lfm2", "layer_types": ["conv", "cross"]}, "l", "t")
    with pytest.raises(ModelConfigError, match="must equal the Mamba inner width"):
        model_spec_from_config({**base, "model_type": "bamba", "mamba_n_heads": 7, "mamba_d_head": 64}, "b", "t")


def test_plain_transformer_json_unchanged():
    """A dense model's spec carries none of the hybrid fields into its JSON."""
    spec = model_spec_from_config({"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 2,
                                   "num_attention_heads": 4, "vocab_size": 1000, "max_position_embeddings": 512},
                                  "l", "t")
    dumped = spec.model_dump()
    assert not {"layer_mixers", "layer_mlps", "state", "attn_output_gate"} & set(dumped)
    assert spec.attention_layers == 2 and spec.state_layers == 0


def test_unknown_type_with_state_fields_is_refused_not_misread():
    """Issue 19, item 6: an unknown hybrid (here Jamba's fields under another name) is an error naming the known
    types; an unknown plain decoder is still read, with a warning."""
    jamba = {"hidden_size": 256, "num_hidden_layers": 8, "num_attention_heads": 4, "vocab_size": 1000,
             "attn_layer_period": 8, "mamba_d_state": 16}
    with pytest.raises(ModelConfigError, match=r"not one optiplan knows.*attn_layer_period, mamba_d_state.*jamba"):
        model_spec_from_config({**jamba, "model_type": "jamba2"}, "j", "test")
    with pytest.raises(ModelConfigError, match="layer_types"):
        model_spec_from_config({**{k: v for k, v in jamba.items() if "mamba" not in k and "attn" not in k},
                                "model_type": "new_hybrid", "layer_types": ["full_attention", "linear_attention"] * 4},
                               "n", "test")
    plain = model_spec_from_config({"model_type": "my_llama", "hidden_size": 256, "num_hidden_layers": 2,
                                    "num_attention_heads": 4, "vocab_size": 1000, "max_position_embeddings": 512,
                                    "layer_types": ["full_attention", "sliding_attention"], "sliding_window": 64},
                                   "p", "test")
    assert plain.layer_windows == (None, 64) and "is not one optiplan knows" in plain.warnings[0]


@pytest.mark.parametrize("fields", [
    {"model_type": "granitemoehybrid", "layer_types": ["mamba", "attention"]},
    {"model_type": "granitemoehybrid", "layer_types": ["mamba", "attention"], "position_embedding_type": "nope"},
    {"model_type": "granitemoehybrid", "layer_types": ["mamba", "attention"], "position_embedding_type": "rope"},
    {"model_type": "zamba2", "layers_block_type": ["mamba", "hybrid"]},
    {"model_type": "zamba2", "layers_block_type": ["mamba", "hybrid"], "use_mem_rope": True},
    {"model_type": "jamba", "attn_layer_period": 2, "attn_layer_offset": 1},
    {"model_type": "bamba", "attn_layer_indices": [1]},
])
def test_rotary_only_where_transformers_builds_it(fields):
    """A hybrid rotates where its modeling file builds a rotary embedding (Granite 4 under "rope", Zamba2 under
    use_mem_rope, never Jamba), which the training count's rotary tables follow."""
    pytest.importorskip("transformers")
    import torch
    from transformers import CONFIG_MAPPING, AutoModelForCausalLM

    small = {"hidden_size": 64, "vocab_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "intermediate_size": 128, "mamba_n_heads": 4, "mamba_d_head": 32,
             "mamba_d_state": 16, "mamba_headdim": 32, "n_mamba_heads": 4, "pad_token_id": 0, "bos_token_id": 1,
             "eos_token_id": 2}
    cfg = CONFIG_MAPPING[fields["model_type"]](**{**small, **fields})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    built = any(type(m).__name__.endswith("RotaryEmbedding") for m in model.modules())
    spec = model_spec_from_config({**small, **fields}, "h", "test")
    assert (spec.rotary_fraction > 0) == built
