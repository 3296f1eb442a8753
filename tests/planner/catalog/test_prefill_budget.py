"""TGI's launcher computes its prefill budget from the card and the model where --max-batch-prefill-tokens is unset
(`prefill_chunk_by_compute` in profiles/engines/tgi.yaml, `planner/catalog/prefill_budget.py`)."""

from __future__ import annotations

from optiplan.planner.catalog.engines import engine_chunk_budget, engine_prefill_chunk
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.catalog.prefill_budget import launcher_flop_per_token


def test_the_launchers_flops_per_token_and_budget_for_llama_3_1_8b_on_an_h100():
    spec, h100 = resolve_model("llama-3.1-8b"), resolve_hardware("h100-sxm")
    assert launcher_flop_per_token(spec) == 15_032_385_536  # q, k, v, attention, o and the MLP, 32 layers
    assert engine_prefill_chunk("tgi", None, h100, 1, spec) == 59_870  # 900e12 / that
    assert engine_prefill_chunk("tgi", None, h100, 1) == 4096  # no model given: the fallback


def test_the_budget_scales_with_the_shards_and_stops_at_the_context():
    spec = resolve_model("llama-3.1-70b")
    one, four = (engine_prefill_chunk("tgi", None, resolve_hardware("a100-80gb-sxm"), n, spec) for n in (1, 4))
    # below the fallback on one card (the launcher keeps any figure above 100), four times it on four
    assert one == int(312e12 // launcher_flop_per_token(spec)) == 2113 and abs(four - 4 * one) <= 3
    short = resolve_model("tinyllama-1.1b")  # 2,048 positions: below the fallback too
    assert engine_prefill_chunk("tgi", None, resolve_hardware("h200-sxm"), 1, short) == 2048


def test_cards_the_launchers_table_lacks_keep_the_fallback():
    spec = resolve_model("llama-3.1-8b")
    for device in ("h100-pcie", "t4", "rtx-4090", "b200"):  # names nvidia-smi reports that are not its keys
        assert engine_prefill_chunk("tgi", None, resolve_hardware(device), 1, spec) == 4096, device
    # its ROCm image does not chunk: whole prompts up to the same 4,096 a prefill batch
    assert engine_prefill_chunk("tgi", None, resolve_hardware("mi300x"), 1, spec) is None
    assert engine_chunk_budget("tgi", 2048, resolve_hardware("mi300x"), 1, spec) == 4096
    # other engines set theirs by device alone
    assert engine_prefill_chunk("vllm", None, resolve_hardware("h100-sxm"), 1, spec) == 8192
