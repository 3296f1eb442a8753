"""The training model's attention terms at real widths and its rotary tables once a model, against what transformers'
eager layers keep for their backward (benchmarks/bench_activation_memory.py's harness, this CPU)."""

from __future__ import annotations

import pytest
from script_loader import load_script


@pytest.mark.parametrize(("model", "units"), [("llama-3.1-8b", 49.16), ("phi-3-mini-4k", 51.50),
                                             ("qwen1.5-moe-a2.7b", 86.47)])
def test_a_layer_at_its_catalog_widths_is_counted_as_it_measures(model, units):
    """Llama-3.1-8B's layer at its own widths keeps 49.16 bytes per token and hidden unit. The attention constants had
    been fitted at heads of 32 on a hidden size of 256 (2.14, and 4.5 a query width), where the kernel's per-head
    statistics and the rotary tables weigh 0.6; at heads of 128 on 4,096 they weigh 0.16, and the layer had been
    counted at 49.64. Phi-3-mini's (51.50) had been counted 3-4% low: its concatenated queries make the output
    projection keep a copy of the attention's output. Qwen1.5-MoE's (86.47) had been counted 0.7% high: its router's
    and its dispatch's tensors are bytes a token (Mixtral's 60, and 28 a routed expert), which flat units fitted at a
    hidden size of 256 had scaled with the width."""
    pytest.importorskip("torch")
    bench = load_script("benchmarks/bench_activation_memory.py")
    catalog = load_script("benchmarks/bench_activation_catalog.py")
    config = catalog.catalog_layer_config(model)
    measured = bench.measured_units(config, 128)
    assert measured == pytest.approx(units, abs=0.01)
    assert bench.predicted_units(config, 128) == pytest.approx(measured, abs=0.05)


@pytest.mark.parametrize(("cls_name", "overrides", "layers"), [
    ("LlamaConfig", dict(intermediate_size=512, num_hidden_layers=2), 2),
    # a set of tables for its window layers and one for its global layers
    ("Gemma3TextConfig", dict(intermediate_size=1024, num_hidden_layers=3, pad_token_id=0, bos_token_id=0,
                              eos_token_id=0,
                              layer_types=["sliding_attention", "full_attention", "sliding_attention"]), 3),
    # two sets in every layer: its rotation repeats the model's tables for the queries and again for the keys
    ("GPTJConfig", dict(n_embd=256, n_layer=2, n_head=8, rotary_dim=16, n_positions=1024, pad_token_id=0,
                        bos_token_id=0, eos_token_id=0), 2),
])
def test_the_rotary_tables_are_kept_once_a_model(cls_name, overrides, layers):
    """The model builds its rotary tables once and hands them to every layer, so its layers keep them once together:
    what each layer keeps, less what the whole model keeps, is the tables each layer shares with another, the model's
    tables (`rotary_table_units`) counted once where each layer's count had held them. Gemma 3 keeps a set for each
    layer type; GPT-J's layers make their own (counted in `layer_activation_units`)."""
    pytest.importorskip("torch")
    from optiplan.planner.plan.training_activations import layer_activation_units, rotary_table_units

    bench = load_script("benchmarks/bench_activation_memory.py")
    config = bench.layer_config(cls_name, **overrides)
    spec = bench.predicted_spec(config)
    tables = rotary_table_units(spec, fp32_weights=False)
    a_set = 4 * 32 / 256 if cls_name != "GPTJConfig" else 0.0  # cos and sin, 2 bytes a head dimension each
    assert tables == {"LlamaConfig": a_set, "Gemma3TextConfig": 2 * a_set, "GPTJConfig": 0.0}[cls_name]
    whole = bench.measured_units(config, 256, layer_index=None)
    each = sum(bench.measured_units(config, 256, layer_index=layer) for layer in range(layers))
    assert each - whole == pytest.approx(layers * a_set - tables, abs=0.01)
    if cls_name == "LlamaConfig":  # the rest of the count exact too, but for the norms' fp32 statistic a token
        counted = sum(layer_activation_units(spec, layer) for layer in range(layers)) + tables
        assert counted == pytest.approx(whole, abs=0.1)


def test_attention_dropout_on_a_cpu_is_counted_as_sdpas_math_path():
    """GPT-2's config sets attention dropout (0.1), which no fused CPU kernel takes: SDPA runs its math path and keeps
    fp32 queries, keys and values repeated to every head, and three fp32 tensors a score (its softmax, the dropout mask
    and the dropped probabilities) over every key of the sequence. At 1,024 tokens that is 12 heads x 1,024 keys x 12
    bytes a token on each layer, 192 units over GPT-2's 768, where the fused kernel's count had been taken for a CPU
    as for a GPU; on a GPU the flash and memory-efficient kernels take the dropout, and nothing changes."""
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model
    from optiplan.planner.plan.attention_activations import (
        math_attention_units,
        packed_attention_units,
        runs_math_path,
    )
    from optiplan.planner.plan.state import PlanState
    from optiplan.planner.plan.training import training_prediction
    from optiplan.planner.schema.workload import Training, Workload

    gpt2 = resolve_model("gpt2")
    assert gpt2.attention_dropout == 0.1
    q = 768
    assert math_attention_units(gpt2, 0, 1024, 2) == pytest.approx(
        (12 * q + 12 * 12 * 1024 + 2 * q - 4 * q - 4 * q - 4 * 12) / 768)
    workload = Workload(goal="training", training=Training(sequence_length=1024, global_batch=1))
    training = frozenset({"mixed-precision"})

    def activations(hardware, spec):
        return training_prediction(PlanState(spec=spec, hw=resolve_hardware(hardware), devices=1,
                                             weight_dtype="bf16", training=training), workload).activation_bytes

    no_dropout = gpt2.model_copy(update={"attention_dropout": 0.0})
    added = activations("epyc-9004", gpt2) - activations("epyc-9004", no_dropout)
    # in place of the packed documents' mask's units, which the math path keeps no bias for
    per_layer = math_attention_units(gpt2, 0, 1024, 2) - packed_attention_units(gpt2, 0, 1024)
    assert added == pytest.approx(1024 * 768 * gpt2.num_layers * per_layer, rel=1e-6)
    assert activations("h100-sxm", gpt2) == activations("h100-sxm", no_dropout)
    # eager attention (no SDPA for Gemma 2) keeps its own scores, dropout or not: no math path to count
    gemma2 = resolve_model("gemma-2-9b").model_copy(update={"attention_dropout": 0.1})
    assert not runs_math_path(gemma2, cpu=True) and runs_math_path(gpt2, cpu=True)
    assert not runs_math_path(gpt2, cpu=False)


def test_concatenated_queries_cost_a_copy_only_where_a_flash_kernel_runs():
    """Phi-3 concatenates its rotated and unrotated query parts, so a flash kernel, which lays its output out as its
    queries, leaves the output projection a copy to keep (2 units a query width: measured on this CPU, where SDPA
    runs a flash kernel masked or not). On CUDA the rendered script's packed-document mask takes SDPA to the
    memory-efficient kernel, whose output is token-major: no copy, and LoRA's adapter on the output projection keeps a
    cast of its own instead. Llama's queries are rotated in place: no copy either way."""
    from optiplan.planner.catalog.models import resolve_model
    from optiplan.planner.plan.training_activations import lora_units, output_copy_units

    phi3, llama = resolve_model("phi-3-mini-4k"), resolve_model("llama-3.1-8b")
    assert output_copy_units(phi3, 0, flash_kernel=True) == pytest.approx(2.0)
    assert output_copy_units(phi3, 0, flash_kernel=False) == 0.0
    assert output_copy_units(llama, 0, flash_kernel=True) == 0.0
    gpu, cpu = (lora_units(phi3, 1, 8, autocast=True, flash_kernel=flash) for flash in (False, True))
    assert gpu - cpu == pytest.approx(2.0)
