"""The bytes a training step's streaming kernels move (`training_traffic`): its constants against a trace of a
layer's step on this CPU, and what they do to the step time."""

from __future__ import annotations

import pytest
from optiplan.planner.plan.training_traffic import (
    ADAPTER_BYTES_PER_WIDTH,
    MERGED_EXPERT_BYTES,
    TRAFFIC_PER_KEPT_BYTE,
    optimizer_traffic_bytes,
    traffic_bytes,
    traffic_recipe,
)
from script_loader import load_script


def _bench():
    return load_script("benchmarks/bench_training_traffic.py")


def test_the_recipes_traffic_is_the_layers_the_plan_runs():
    assert traffic_recipe({"mixed-precision", "lora"}) == "bf16"  # a frozen bf16 base beside its adapters
    assert traffic_recipe({"mixed-precision", "qlora", "activation-checkpointing"}) == "bf16"
    assert traffic_recipe({"mixed-precision"}) == "autocast"  # fp32 weights under bf16 autocast
    assert traffic_recipe({"mixed-precision", "fsdp"}) == "bf16"  # FSDP's mixed-precision policy
    assert traffic_recipe(set()) == "fp32"
    # the adapters' bytes come on top of their base's, more with a dropout, and more again when recomputed
    base = traffic_bytes(1.0, 0.0, 0, {"mixed-precision", "lora"})
    assert traffic_bytes(1.0, 1.0, 0, {"mixed-precision", "lora"}) == pytest.approx(base + 26.7)
    assert traffic_bytes(1.0, 1.0, 0, {"mixed-precision", "lora"}, adapter_dropout=True) > \
        traffic_bytes(1.0, 1.0, 0, {"mixed-precision", "lora"})
    assert traffic_bytes(1.0, 0.0, 0, {"mixed-precision", "activation-checkpointing"}) > \
        traffic_bytes(1.0, 0.0, 0, {"mixed-precision"})
    # autocast's weight casts move bytes whatever the tokens; a LoRA's frozen base casts none
    assert traffic_bytes(0.0, 0.0, 1000, {"mixed-precision", "activation-checkpointing"}) == 18000
    # under LoRA peft merges every routed expert with its adapters in each forward: bytes an expert weight
    assert traffic_bytes(0.0, 0.0, 0, {"mixed-precision", "lora", "activation-checkpointing"},
                         expert_weights=1000) == pytest.approx(37300)
    assert traffic_bytes(0.0, 0.0, 0, {"mixed-precision", "activation-checkpointing"}, expert_weights=1000) == 0.0
    # AdamW's update, and each micro-step's gradients added to the held ones after the first
    assert optimizer_traffic_bytes(10, "adamw", 1) == 280
    assert optimizer_traffic_bytes(10, "adamw", 3) == 280 + 2 * 120


def test_the_constants_are_what_a_traced_layer_moves():
    """A Llama layer's step traced operator by operator here reproduces the table's median ratios (within the spread
    over the six layers the table was read from)."""
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    bench = _bench()
    config = bench.layer_config("LlamaConfig", intermediate_size=4 * bench.HIDDEN)
    tokens = (64, 192)
    base, per_weight = bench.split_traffic(config, "bf16", True, tokens)
    assert base / bench.kept_bytes(config, "bf16", tokens[0]) == pytest.approx(TRAFFIC_PER_KEPT_BYTE[("bf16", True)],
                                                                                  rel=0.15)
    assert per_weight == pytest.approx(0.0, abs=0.1)  # a bf16 model casts no weights
    lora, _ = bench.split_traffic(config, "lora", True, tokens)
    adapters = (lora - base) / bench.adapted_width(config)
    assert adapters == pytest.approx(ADAPTER_BYTES_PER_WIDTH[(False, True)], rel=0.1)
    _, autocast_per_weight = bench.split_traffic(config, "autocast", True, tokens)
    assert autocast_per_weight == pytest.approx(18.0, rel=0.05)  # two forwards' casts and the fp32 gradients
    # a Mixtral layer's experts merged with their adapters in every forward (the table's median of two layers)
    mixtral = next(row for row in bench.moe_rows(tokens) if row["layer"].startswith("mixtral") and row["checkpointed"])
    assert mixtral["bytes_per_expert_weight"] == pytest.approx(MERGED_EXPERT_BYTES[True], rel=0.15)
