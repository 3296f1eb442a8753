"""Layers that run attention beside or before a Mamba-2 mixer: Falcon-H1's side by side off one norm (both mixers
counted, its Mamba-2 without the gated norm, what its µP vector makes of the projection under autocast) and Zamba2's
shared transformer block before its mixer, against what transformers' eager layers keep
(benchmarks/bench_activation_memory.py's harness, this CPU; layers measured after their terms were set)."""

from __future__ import annotations

import pytest
from script_loader import load_script

LABELS = ("falcon-h1, attention beside Mamba-2 of 4 heads of 128 in 2 groups",
          "zamba2, a shared block of 4 heads of 128")


def _bench_row(label):
    bench = load_script("benchmarks/bench_activation_memory.py")
    return bench, [r for r in bench.HELD_OUT if r[0].startswith(label)]


@pytest.mark.parametrize("label", LABELS)
def test_both_mixers_of_a_hybrid_layer_are_counted(label):
    """Falcon-H1's layer had been counted as its attention alone (37.6 units of the 169.4 an earlier one keeps);
    Zamba2's as its attention and mixer, its shared block's wide norm and input, MLP and linear layer left out
    (0.81)."""
    pytest.importorskip("torch")
    bench, rows = _bench_row(label)
    config = bench.layer_config(rows[0][1], **rows[0][2])
    assert bench.predicted_units(config, 256) == pytest.approx(bench.measured_units(config, 256), rel=0.005)
    assert bench.predicted_fp32_bytes(config, 256) == pytest.approx(bench.measured_units(config, 256, "fp32"),
                                                                    rel=0.005)


@pytest.mark.parametrize("label", LABELS)
def test_autocast_and_lora_change_a_hybrid_layer_as_measured(label):
    """Falcon-H1's: over fp32 weights its fp32 µP vector promotes the projection to fp32, which the gate keeps whole
    (+9.5 units where the Mamba-2 count alone would take 12 away); under LoRA its ungated mixer frees no norm's
    output. Zamba2's: its shared block's wide input cast for each of its key and value projections."""
    pytest.importorskip("torch")
    from optiplan.planner.plan.training_activations import lora_units

    bench, rows = _bench_row(label)
    autocast = bench.change_rows("autocast", rows, 256, False, bench.layer_config, 0, bench.predicted_autocast_units)
    lora = bench.change_rows("lora", rows, 256, False, bench.two_layers, 1,
                             lambda spec: lora_units(spec, 1, bench.LORA_RANK, autocast=True))
    if label.startswith("falcon"):
        assert autocast[0]["measured_units"] > 5
    for row in (*autocast, *lora):
        assert abs(row["error_of_layer"]) < 0.005, row
