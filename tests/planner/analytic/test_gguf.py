"""GGUF file types' block types per tensor (`analytic.gguf`) against the sizes llama.cpp's quantize README measured."""

from __future__ import annotations

import pytest
from optiplan.planner.analytic.gguf import gguf_bits, use_more_bits
from optiplan.planner.analytic.params import param_counts
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.errors import RequestError


def _file_bits(model: str, file_type: str) -> float:
    spec = resolve_model(model)
    c, b = param_counts(spec), gguf_bits(spec, file_type)
    bits = c.linear * b.linear + c.embedding * b.embedding + c.lm_head * b.output + c.small * 32  # norms in F32
    return bits / c.total


def test_the_rules_reproduce_the_quantize_readme():
    # tools/quantize/README.md, Llama-3.1-8B: Q4_K_M 4.8944 and Q8_0 8.5008 bits per weight
    assert _file_bits("llama-3.1-8b", "Q4_K_M") == pytest.approx(4.8944, rel=5e-4)
    assert _file_bits("llama-3.1-8b", "Q8_0") == pytest.approx(8.5008, rel=5e-4)


def test_which_layers_and_tensors_get_more_bits():
    assert sum(use_more_bits(i, 32) for i in range(32)) == 16  # first and last 4, and every third between
    assert [i for i in range(8) if use_more_bits(i, 8)] == [0, 3, 6, 7]
    one = gguf_bits(resolve_model("llama-3.2-1b"), "Q4_K_M")
    assert one.embedding == one.output == 6.5625  # tied: the embedding takes the head's Q6_K
    assert gguf_bits(resolve_model("llama-3.1-8b"), "Q4_K_M").embedding == 4.5
    # Mixtral (8 experts) keeps attn_k and attn_v in Q8_0 and attn_output in Q5_K: more than a dense model's mix
    mixtral = gguf_bits(resolve_model("mixtral-8x7b"), "Q4_K_M").linear
    assert 4.8 < mixtral < 4.95 and gguf_bits(resolve_model("mixtral-8x7b"), "Q4_0").linear == 4.5
    with pytest.raises(RequestError, match="optiplan models Q4_0, Q4_K_M, Q8_0"):
        gguf_bits(resolve_model("llama-3.1-8b"), "IQ2_XXS")
