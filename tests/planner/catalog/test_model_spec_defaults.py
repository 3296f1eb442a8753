"""Our per-type config defaults are those of transformers' own config classes, so a config.json
that leaves a field out means the same to optiplan as it does to transformers."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from optiplan.planner.catalog.model_spec import TYPE_DEFAULTS  # noqa: E402


# Fields transformers 5 keeps elsewhere: (has it, its value).
def _rope(config):
    return "partial_rotary_factor" in config.rope_parameters, config.rope_parameters.get("partial_rotary_factor")


_ELSEWHERE = {
    ("gemma3_text", "sliding_window_pattern"): lambda c: (True, c._sliding_window_pattern),
    # Cohere 2 reads the Hub's "sliding_window_pattern" into its layer types ("sliding_window_pattern", 4)
    ("cohere2", "sliding_window_pattern"): lambda c: (True, c.layer_types.index("full_attention") + 1),
    ("gpt_neox", "rotary_pct"): _rope,
    ("phi3", "partial_rotary_factor"): _rope,
    ("stablelm", "partial_rotary_factor"): _rope,
}


@pytest.mark.parametrize("model_type", sorted(TYPE_DEFAULTS))
def test_defaults_match_transformers(model_type):
    from transformers import AutoConfig

    config = AutoConfig.for_model(model_type)
    for key, ours in TYPE_DEFAULTS[model_type].items():
        read = _ELSEWHERE.get((model_type, key), lambda c: (hasattr(c, key), getattr(c, key, None)))
        present, theirs = read(config)
        assert present, f"{model_type}: transformers has no field {key}"
        if model_type in ("qwen2", "qwen3", "qwen2_moe") and key == "sliding_window":
            continue  # transformers clears it when use_sliding_window is false; we do the same in _windows
        assert theirs == ours, f"{model_type}.{key}: transformers {theirs!r}, optiplan {ours!r}"
