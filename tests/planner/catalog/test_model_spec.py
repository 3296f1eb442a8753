"""Normalising config.json files: every architectural feature the analytic model depends on."""

from __future__ import annotations

import pytest
from optiplan.planner.catalog.model_spec import model_spec_from_config
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.errors import ModelConfigError

LLAMA = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
         "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 1000, "max_position_embeddings": 2048}


def spec(**overrides):
    return model_spec_from_config({**LLAMA, **overrides}, "t", "test")


def test_gqa_mqa_mha():
    assert spec().attention_kind == "GQA"
    assert spec(num_key_value_heads=1).attention_kind == "MQA"
    assert spec(num_key_value_heads=8).attention_kind == "MHA"
    assert spec(num_key_value_heads=None).num_kv_heads == 8  # absent: MHA, as transformers defaults it
    assert resolve_model("falcon-7b").num_kv_heads == 1  # multi_query
    assert resolve_model("deepseek-v3").attention_kind == "MLA"


def test_explicit_head_dim():
    assert spec().head_dim == 32
    assert spec(head_dim=64).head_dim == 64
    g = resolve_model("gemma-2-9b")
    assert g.head_dim == 256 and g.num_heads * g.head_dim != g.hidden_size


def test_partial_rotary_biases_tied():
    assert resolve_model("gpt-neox-20b").rotary_fraction == 0.25
    assert resolve_model("stablelm-2-1.6b").rotary_fraction == 0.25
    gptj = resolve_model("gpt-j-6b")  # rotary_dim 64 of 256
    assert gptj.rotary_fraction == 0.25 and gptj.lm_head_bias and not gptj.qkv_bias and gptj.mlp_bias
    assert model_spec_from_config({"model_type": "gptj", "n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 100,
                                   "rotary_dim": None}, "t", "test").rotary_fraction == 1.0
    assert resolve_model("qwen2.5-7b").qkv_bias and not resolve_model("qwen2.5-7b").o_bias
    assert resolve_model("starcoder2-7b").mlp_bias and not resolve_model("starcoder2-7b").mlp_gated
    assert resolve_model("gpt2").tie_word_embeddings and resolve_model("gpt2").learned_positions == 1024
    assert not resolve_model("llama-3.1-8b").tie_word_embeddings


def test_moe_dense_first_layers_and_shared_experts():
    v3 = resolve_model("deepseek-v3")
    assert v3.layer_moe[:3] == (False, False, False) and all(v3.layer_moe[3:])
    assert v3.moe.num_experts == 256 and v3.moe.top_k == 8 and v3.moe.shared_intermediate_size == 2048
    qmoe = resolve_model("qwen1.5-moe-a2.7b")
    assert qmoe.moe.shared_expert_gate and all(qmoe.layer_moe)
    assert resolve_model("mixtral-8x7b").moe.top_k == 2


def test_moe_layer_frequency_and_mlp_only_layers():
    base = {**LLAMA, "model_type": "qwen3_moe", "num_experts": 8, "num_experts_per_tok": 2,
            "moe_intermediate_size": 64}
    s = model_spec_from_config({**base, "decoder_sparse_step": 2}, "t", "test")
    assert s.layer_moe == (False, True, False, True)
    s = model_spec_from_config({**base, "mlp_only_layers": [0]}, "t", "test")
    assert s.layer_moe == (False, True, True, True)


def test_a_transformers_5_qwen3_moe_config_names_its_experts_num_local_experts():
    """transformers 5 saves Qwen3-MoE's expert count as num_local_experts: it had been read as the type's default of
    128 experts (a 4-expert model priced at 32 times its experts)."""
    config = {**LLAMA, "model_type": "qwen3_moe", "num_local_experts": 4, "num_experts_per_tok": 2,
              "moe_intermediate_size": 64}
    assert model_spec_from_config(config, "t", "test").moe.num_experts == 4


def test_mla_with_and_without_q_lora():
    assert resolve_model("deepseek-v3").mla.q_lora_rank == 1536
    lite = resolve_model("deepseek-v2-lite")
    assert lite.mla.q_lora_rank is None and lite.mla.kv_lora_rank == 512
    assert lite.head_dim == 192 and lite.v_head_dim == 128


def test_sliding_window_patterns():
    mistral = resolve_model("mistral-7b-v0.1")
    assert set(mistral.layer_windows) == {4096}
    g2 = resolve_model("gemma-2-9b")
    assert g2.layer_windows[:4] == (4096, None, 4096, None)
    g3 = resolve_model("gemma-3-27b")
    assert g3.layer_windows[:6] == (1024,) * 5 + (None,)
    assert set(resolve_model("qwen2.5-7b").layer_windows) == {None}  # use_sliding_window false
    assert set(resolve_model("phi-3-mini-4k").layer_windows) == {2047}
    s = spec(sliding_window=16, layer_types=["sliding_attention", "full_attention"] * 2)
    assert s.layer_windows == (16, None, 16, None)


def test_parallel_attention():
    assert resolve_model("falcon-7b").parallel_attention and resolve_model("falcon-7b").norms_per_layer == 1
    assert resolve_model("gpt-neox-20b").parallel_attention
    gptj = resolve_model("gpt-j-6b")  # one LayerNorm feeds attention and MLP side by side
    assert gptj.parallel_attention and gptj.norms_per_layer == 1
    assert not resolve_model("llama-3.1-8b").parallel_attention


def test_unknown_type_falls_back_with_warning():
    s = model_spec_from_config({**LLAMA, "model_type": "my_new_arch"}, "t", "test")
    assert s.num_layers == 4 and any("my_new_arch" in w for w in s.warnings)


def test_gpt2_style_field_names():
    s = model_spec_from_config({"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100,
                                "n_positions": 128}, "t", "test")
    assert (s.hidden_size, s.num_layers, s.num_heads, s.intermediate_size) == (64, 2, 4, 256)


def test_multimodal_wrapper_uses_text_config():
    s = model_spec_from_config({"model_type": "gemma3", "text_config": {**LLAMA, "model_type": "gemma3_text"}},
                               "t", "test")
    # named as the engines load the checkpoint: its own type, a vision-language model to them
    assert s.model_type == "gemma3" and s.norms_per_layer == 4


def test_llama4_interleaves_moe_layers_with_a_shared_expert_and_dense_layers_of_their_own_width():
    # Maverick: MoE on every other layer (the odd ones), 128 routed experts and one shared expert of 8,192 there,
    # dense MLPs of 16,384 (intermediate_size_mlp) between; the architecture is named as the engines list it
    maverick = resolve_model("llama-4-maverick")
    assert maverick.model_type == "llama4" and maverick.layer_moe == (False, True) * 24
    assert maverick.intermediate_size == 16384
    assert (maverick.moe.num_experts, maverick.moe.top_k, maverick.moe.expert_intermediate_size,
            maverick.moe.shared_intermediate_size) == (128, 1, 8192, 8192)
    assert all(resolve_model("llama-4-scout").layer_moe)
    # the multimodal wrapper is read through its text_config, an explicit moe_layers list wins over the step, and
    # the chunked layers are the rotary ones (every fourth is NoPE), their cache kept whole, with a warning saying so
    wrapped = model_spec_from_config({"model_type": "llama4", "text_config": {
        **LLAMA, "model_type": "llama4_text", "num_local_experts": 4, "moe_layers": [0, 3],
        "interleave_moe_layer_step": 2}}, "t", "test")
    assert wrapped.model_type == "llama4" and wrapped.layer_moe == (True, False, False, True)
    assert wrapped.intermediate_size == 16384  # transformers' default intermediate_size_mlp: the dense layers' MLP
    assert wrapped.layer_windows == (None,) * 4 and any("chunked attention" in w for w in wrapped.warnings)
    assert wrapped.layer_chunks == (8192, 8192, 8192, None)


@pytest.mark.parametrize("model_type, fields", [
    # GLM-4.5: had been read as an unknown type, every layer MoE and no shared expert
    ("glm4_moe", dict(moe_intermediate_size=64, n_routed_experts=8, num_experts_per_tok=2, first_k_dense_replace=1,
                      attention_bias=True, use_qk_norm=True)),
    # EXAONE 4: had been read as an unknown type, without its query-key norms and with every layer windowed
    ("exaone4", dict(num_hidden_layers=4)),
])
def test_glm_4_5_and_exaone_4_count_what_transformers_builds(model_type, fields):
    """A small config of each, counted parameter for parameter against transformers' own model (on the meta
    device); GLM-4.5's score-correction bias is a buffer there, which its checkpoint stores beside the router."""
    torch = pytest.importorskip("torch")
    from optiplan.planner.analytic.params import param_counts
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(model_type, hidden_size=128, intermediate_size=256, num_attention_heads=4,
                                  num_key_value_heads=2, head_dim=32, vocab_size=128,
                                  **{"num_hidden_layers": 3, **fields})
    spec = model_spec_from_config(config.to_dict(), model_type, "test")
    assert not spec.warnings and spec.model_type == model_type
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    buffers = sum(b.numel() for name, b in model.named_buffers() if "e_score_correction_bias" in name)
    assert param_counts(spec).total == sum(p.numel() for p in model.parameters()) + buffers
    if model_type == "glm4_moe":
        assert spec.layer_moe == (False, True, True) and spec.moe.shared_intermediate_size == 64
        assert spec.moe.router_score_bias and spec.qk_norm == "head"
    else:
        assert spec.qk_norm == "head" and spec.layer_windows == (4096, 4096, 4096, None)


@pytest.mark.parametrize("model, fields", [
    ("qwen2.5-7b", {"use_sliding_window": True, "max_window_layers": 4}),  # the layers past the fourth windowed
    ("qwen2.5-7b", {"use_sliding_window": True}),  # max_window_layers covers every layer: none windowed
    ("qwen3-30b-a3b", {"use_sliding_window": False, "sliding_window": 4096}),  # the window dropped without the flag
    ("qwen3-30b-a3b", {"use_sliding_window": True, "sliding_window": 4096}),
    ("gemma-2-9b", {}),
    ("gemma-2-9b", {"layer_types": ["full_attention"] * 42}),  # typed layers win over the window
    ("phi-3.5-moe", {}),  # a window as long as its context: every layer sliding to transformers' caches
    ("mistral-small-24b", {}),
    ("mixtral-8x7b", {"sliding_window": 4096}),
    ("llama-4-scout", {}),
    ("jamba-1.5-mini", {}),
])
def test_the_layers_transformers_caches_as_windows_are_the_specs(model, fields):
    """`windowed_cache_layers`, which refuses transformers' quantized caches and compiled decode, names window layers
    exactly where transformers' own caches make them (cache_utils.get_layer_types_and_kwargs)."""
    pytest.importorskip("torch")
    from optiplan import profiles
    from optiplan.optimizers.compile import window_layer_types
    from optiplan.optimizers.kv_cache import layer_types
    from transformers import AutoConfig

    config = {**profiles.load_model(model)["config"], **fields}
    spec = model_spec_from_config(dict(config), model, "test")
    model_type = config.pop("model_type")
    transformers_windows = window_layer_types().intersection(layer_types(AutoConfig.for_model(model_type, **config)))
    assert bool(spec.windowed_cache_layers) == bool(transformers_windows), (spec.windowed_cache_layers,
                                                                            transformers_windows)


@pytest.mark.parametrize("bad, message", [
    ({"hidden_size": None}, "hidden_size"),
    ({"num_hidden_layers": "32"}, "must be an integer"),
    ({"num_attention_heads": 0}, "must all be positive"),
    ({"num_key_value_heads": 3}, "not a multiple"),
    ({"vocab_size": -5}, "must not be negative"),
])
def test_malformed_configs_say_what_is_wrong(bad, message):
    cfg = {**LLAMA, **bad}
    cfg = {k: v for k, v in cfg.items() if v is not None}
    with pytest.raises(ModelConfigError, match=message) as err:
        model_spec_from_config(cfg, "t", "path/to/config.json")
    assert "path/to/config.json" in str(err.value)


def test_config_must_be_an_object():
    with pytest.raises(ModelConfigError, match="JSON object"):
        model_spec_from_config([1, 2], "t", "x.json")


def test_a_wrapper_config_finds_its_catalog_family():
    """A Gemma 3 config file (the multimodal wrapper, named gemma3 as the engines load it) finds the catalog's Gemma 3
    family, whose smaller models draft for it and are distilled into."""
    from optiplan.planner.plan.advise import _family

    text = {"model_type": "gemma3_text", "hidden_size": 5376, "intermediate_size": 21504, "num_attention_heads": 32,
            "num_hidden_layers": 62, "num_key_value_heads": 16, "head_dim": 128, "vocab_size": 262208,
            "max_position_embeddings": 131072, "sliding_window": 1024}
    s = model_spec_from_config({"model_type": "gemma3", "text_config": text}, "t", "test")
    assert s.model_type == "gemma3" and _family(s) == "gemma3"


def test_yarn_rope_scaling_sets_the_context_as_the_engines_read_it(tmp_path):
    """Qwen3 serves 40,960 tokens as published and 131,072 with the YaRN block its docs give (vLLM derives the longest
    sequence from it: original length x factor); a config whose YaRN is already its max_position_embeddings
    (DeepSeek-V3, gpt-oss) is unchanged and unwarned. A refusal of a longer context says how to get there."""
    from click.testing import CliRunner
    from optiplan import profiles
    from optiplan.planner.cli.main import main

    config = dict(profiles.load_model("qwen3-8b")["config"])
    assert model_spec_from_config(config, "qwen3", "test").max_position_embeddings == 40_960
    config["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    yarn = model_spec_from_config(config, "qwen3-yarn", "test")
    assert yarn.max_position_embeddings == 131_072
    assert any("YaRN" in w and "short ones too" in w for w in yarn.warnings)
    for odd in ({"rope_type": "yarn", "factor": "4"}, {"rope_type": "yarn", "factor": 0.5,
                                                       "original_max_position_embeddings": 32768}):
        config["rope_scaling"] = odd  # a block no engine extends the context with extends nothing, and is no error
        assert model_spec_from_config(config, "qwen3-odd", "test").max_position_embeddings == 40_960
    for name, context in (("deepseek-v3", 163_840), ("gpt-oss-20b", 131_072)):
        published = resolve_model(name)
        assert published.max_position_embeddings == context and not any("YaRN" in w for w in published.warnings)
    refused = CliRunner().invoke(main, ["profile", "qwen3-8b", "--context", "131072"])
    assert refused.exit_code == 2 and "qwen3-8b reaches 131,072 tokens with YaRN" in refused.output
    assert '"original_max_position_embeddings": 32768' in refused.output
    other = CliRunner().invoke(main, ["profile", "gpt2", "--context", "4096"])
    assert other.exit_code == 2 and "YaRN" not in other.output


def test_a_hybrid_config_takes_its_yarn_block_too():
    """Qwen3-Next (Gated DeltaNet beside attention) reads its context as the attention families do: 262,144 as
    published, four times that with a YaRN block over it, warned."""
    from optiplan import profiles

    config = dict(profiles.load_model("qwen3-next-80b-a3b")["config"])
    assert model_spec_from_config(config, "qwen3-next", "test").max_position_embeddings == 262_144
    config["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 262_144}
    yarn = model_spec_from_config(config, "qwen3-next-yarn", "test")
    assert yarn.max_position_embeddings == 1_048_576 and yarn.state_layers > 0
    assert any("YaRN" in w for w in yarn.warnings)


def test_an_edited_config_file_is_read_again(tmp_path):
    """resolve_model caches its answers, a config file's only while the file is unchanged: a long-running server
    answering for a model folder sees an edit (the layer count, here) without a restart."""
    import json
    import os

    from optiplan import profiles

    folder = tmp_path / "tiny"
    folder.mkdir()
    config = dict(profiles.load_model("qwen3-8b")["config"])
    (folder / "config.json").write_text(json.dumps(config))
    assert resolve_model(str(folder)).num_layers == config["num_hidden_layers"]
    assert resolve_model(str(folder)) is resolve_model(str(folder))  # unchanged: the cached answer
    (folder / "config.json").write_text(json.dumps(config | {"num_hidden_layers": 4 * config["num_hidden_layers"]}))
    later = os.stat(folder / "config.json").st_mtime_ns + 10**9  # a later time even where the clock is coarse
    os.utime(folder / "config.json", ns=(later, later))
    assert resolve_model(str(folder)).num_layers == 4 * config["num_hidden_layers"]
    assert resolve_model(str(folder / "config.json")).num_layers == 4 * config["num_hidden_layers"]
