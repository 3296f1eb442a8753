"""A full fine-tune without mixed precision: an fp32 model's layers keep their 16-bit tensors at 4 bytes but what a
bf16 layer keeps in fp32 already as it was (`fp32_activations.fixed_units`), against what transformers' eager layers
keep in fp32 (benchmarks/bench_activation_memory.py's harness, this CPU)."""

from __future__ import annotations

import pytest
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.plan import training
from optiplan.planner.plan.fp32_activations import fixed_units
from optiplan.planner.plan.state import PlanState
from optiplan.planner.schema.workload import Training, Workload
from script_loader import load_script


def _row(label: str):
    bench = load_script("benchmarks/bench_activation_memory.py")
    row = next(r for r in (*bench.FITTED, *bench.HELD_OUT) if r[0].startswith(label))
    return bench, bench.layer_config(row[1], **row[2])


@pytest.mark.parametrize(("label", "tokens"), [
    ("llama, gated MLP at 2 x hidden", 256),  # each RMSNorm's fp32 copy is its input: 2 x 37.2 - 8.2
    ("olmo2", 256),  # norms multiplying their weight in fp32, fp32 rotary tables
    ("glm4-moe", 256),  # an fp32 router's copy of its input is that input
    ("gemma2", 256),  # eager attention's fp32 softmax with its cast, Gemma's norms
    ("qwen3-next, full attention", 256),  # its queries a view of the projection that yields the gate
    ("mamba, inner width 2 x hidden", 256),  # the PyTorch scan: 12 bytes a channel and state, not 28
    ("mamba-2, 8 heads of 64", 512),  # at least four of its chunks: fewer keep less a token
    ("qwen3-next, gated DeltaNet of 4 value heads", 128),  # keys repeated to the value heads
    ("recurrentgemma, RG-LRU of 256 channels", 128),
    ("gpt-2, attention dropout", 256),  # the math path copies the fused projection's query and key views
])
def test_an_fp32_layer_is_counted_as_it_measures(label, tokens):
    """Twice a bf16 layer's count had been taken: Llama's layer 1.10x, OLMo 2's 1.35x, a Mamba layer's 2.1x."""
    pytest.importorskip("torch")
    bench, config = _row(label)
    measured = bench.measured_units(config, tokens, "fp32")
    assert bench.predicted_fp32_bytes(config, tokens) == pytest.approx(measured, rel=0.01)


def test_a_full_fine_tune_in_fp32_counts_its_layers_fixed_bytes_once(monkeypatch):
    """The training step's activations without mixed precision: each layer's `fixed_units` taken once, where every
    byte of the bf16 count had been doubled."""
    spec = resolve_model("qwen3-0.6b")
    state = PlanState(spec=spec, hw=resolve_hardware("h100-sxm"), devices=1, weight_dtype="bf16",
                      training=frozenset())
    job = Training(sequence_length=2048, micro_batch=1, global_batch=8)
    workload = Workload(name="t", goal="training", engine="transformers", training=job)
    fp32 = training.training_prediction(state, workload)
    monkeypatch.setattr(training, "fixed_units", lambda *a: 0.0)
    doubled = training.training_prediction(state, workload)
    fixed = sum(fixed_units(spec, layer, 2048) for layer in range(spec.num_layers))
    assert fixed > 8 * spec.num_layers  # two RMSNorms' fp32 copies and the query and key norms' a layer
    assert doubled.activation_bytes - fp32.activation_bytes == pytest.approx(2048 * spec.hidden_size * fixed, rel=1e-3)
    mixed = training.training_prediction(state.with_(training=frozenset({"mixed-precision"})), workload)
    assert mixed.activation_bytes < fp32.activation_bytes < doubled.activation_bytes
