"""Weight quantization on the real test model: smaller weights, near-identical quality, and a folder that
loads back (through plain transformers where the format allows)."""

from __future__ import annotations

import pytest
from artifact_helpers import roundtrip
from optiplan.optimizers import metrics
from optiplan.optimizers.registry import check_supported
from optiplan.optimizers.workspace import NotSupportedHere

PROMPT = "The for statement is"


@pytest.mark.parametrize("technique, max_ratio", [("weight-int8", 0.32), ("weight-w8a8-int8", 0.32)])
def test_torchao_int8_is_smaller_keeps_quality_and_reloads_with_plain_transformers(
        technique, max_ratio, workspace, base, tmp_path):
    from transformers import AutoModelForCausalLM

    check_supported(technique, "cpu").apply(workspace, {})
    loaded = roundtrip(workspace, tmp_path)
    assert metrics.weights_bytes(loaded) < max_ratio * metrics.weights_bytes(base)
    ppl_base, ppl = metrics.perplexity(base, max_tokens=512), metrics.perplexity(loaded, max_tokens=512)
    assert abs(ppl / ppl_base - 1) < 0.02
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert type(plain.model.layers[0].mlp.up_proj.weight).__name__ == "Int8Tensor"
    assert loaded.generate_text(PROMPT, 8) == base.generate_text(PROMPT, 8)


@pytest.mark.parametrize("technique, max_ratio", [("weight-int4", 0.30), ("weight-fp8", 0.40)])
def test_quanto_weights_round_trip_through_optiplan_load(technique, max_ratio, workspace, base, tmp_path):
    from transformers import AutoModelForCausalLM

    # the checkpoint's decoding rules come back with it (from_config had rebuilt them from config.json: an instruct
    # model's repetition penalty and extra end-of-turn ids lost, and verify comparing two decoding rules)
    workspace.model.generation_config.repetition_penalty = 1.3
    check_supported(technique, "cpu").apply(workspace, {})
    loaded = roundtrip(workspace, tmp_path)
    assert loaded.model.generation_config.repetition_penalty == 1.3
    assert type(loaded.model.model.layers[0].mlp.up_proj).__name__.startswith("Q")
    assert metrics.weights_bytes(loaded) < max_ratio * metrics.weights_bytes(base)
    assert metrics.perplexity(loaded, max_tokens=512) < 1.10 * metrics.perplexity(base, max_tokens=512)
    with pytest.raises(OSError, match="model.safetensors"):  # a plain loader finds no weights, never garbage
        AutoModelForCausalLM.from_pretrained(tmp_path / "out")


@pytest.mark.parametrize("technique", ["weight-nf4", "weight-int4-gptq"])
def test_gpu_only_quantization_is_refused_on_cpu_with_the_reason(technique):
    with pytest.raises(NotSupportedHere, match="cuda"):
        check_supported(technique, "cpu")


def test_a_technique_without_an_optimizer_says_where_it_can_run():
    with pytest.raises(NotSupportedHere, match="serving engine"):
        check_supported("tensor-parallel", "cpu")


@pytest.mark.parametrize("technique, params", [("weight-int8", {}), ("weight-int8", {"backend": "quanto"}),
                                               ("weight-int4", {})])
def test_a_model_whose_experts_are_fused_tensors_is_refused_weight_formats(technique, params, target_path):
    """transformers 5 keeps a mixture of experts' experts as 3-D parameters (Mixtral's `experts.gate_up_proj`), which
    torchao, quanto and the Triton kernel, quantizing linear layers, leave in full precision: on a tiny Mixtral int8
    had saved 6% of the weights while its manifest said every linear layer was quantized."""
    import torch
    from optiplan.optimizers.workspace import Workspace
    from transformers import AutoTokenizer, MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2, vocab_size=512)
    torch.manual_seed(0)
    model = MixtralForCausalLM(config).eval()
    assert any(p.dim() == 3 for p in model.parameters())  # the layout this guards against
    ws = Workspace(model=model, tokenizer=AutoTokenizer.from_pretrained(target_path), device="cpu",
                   source=target_path)
    with pytest.raises(NotSupportedHere, match="fused 3-D tensors"):
        check_supported(technique, "cpu").apply(ws, params)


def test_a_dense_model_is_not_refused_for_its_fused_expert_check(workspace):
    workspace.refuse_fused_experts("int8")  # the test model (Llama): linear layers only
