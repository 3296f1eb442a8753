"""The catalogs as data: complete, sourced, dense peaks, exact names and no colliding aliases."""

from __future__ import annotations

import pytest
from optiplan import profiles
from optiplan.planner.catalog.hardware import catalog_hardware
from optiplan.planner.catalog.model_spec import SUPPORTED_TYPES

REFERENCE_DEVICES = ["h200-sxm", "h100-sxm", "h100-pcie", "a100-80gb-sxm", "a100-40gb", "l40s", "l4", "a10g", "t4",
                     "rtx-4090", "rtx-3090", "b200", "gb200", "mi300x", "mi325x", "tpu-v5e", "m2-ultra", "m3-max",
                     "epyc-9004"]
REFERENCE_MODELS = ["llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mistral-7b-v0.1", "mixtral-8x7b",
                    "qwen2.5-7b", "qwen2.5-72b", "qwen3-30b-a3b", "gemma-2-9b", "phi-3-mini-4k", "deepseek-v3", "gpt2",
                    "tinyllama-1.1b", "llama-3.2-1b", "qwen2.5-0.5b"]


def test_every_reference_device_is_there():
    assert set(REFERENCE_DEVICES) <= set(profiles.hardware_ids())


@pytest.mark.parametrize("hw_id", profiles.hardware_ids())
def test_hardware_profile_is_complete_and_sourced(hw_id):
    hw = catalog_hardware(hw_id)
    assert hw.memory_bytes > 0 and hw.memory_bandwidth_bytes_per_s > 0
    assert hw.sources, f"{hw_id} names no source"
    assert hw.peak_tflops and all(v > 0 for v in hw.peak_tflops.values())
    assert hw.features.fp8 == ("fp8" in hw.peak_tflops)
    assert hw.features.bf16 == ("bf16" in hw.peak_tflops)
    assert hw.price is not None and hw.price.as_of


def test_peaks_are_dense_not_sparse():
    # the with-sparsity H100 figure (1979 for bf16) is a known wrong copy
    assert catalog_hardware("h100-sxm").peak_tflops["bf16"] == 989
    assert catalog_hardware("h100-sxm").peak_tflops["fp8"] == 1979
    assert catalog_hardware("gb200").bandwidth_tbps == 8.0  # not aiconfigurator's 13.4


def test_capabilities_follow_the_architecture():
    for hw_id in ("l4", "l40s", "rtx-4090", "h100-sxm", "h200-sxm", "b200"):
        assert catalog_hardware(hw_id).features.fp8, hw_id
    for hw_id in ("a100-80gb-sxm", "a10g", "t4"):
        assert not catalog_hardware(hw_id).features.fp8, hw_id
    assert not catalog_hardware("t4").features.bf16
    assert catalog_hardware("h100-sxm").features.flash_attention == 3
    assert catalog_hardware("a100-80gb-sxm").features.flash_attention == 2
    assert catalog_hardware("b200").features.fp4


def test_every_reference_model_and_five_more():
    names = profiles.model_names()
    assert set(REFERENCE_MODELS) <= set(names)
    assert len(names) >= len(REFERENCE_MODELS) + 5


@pytest.mark.parametrize("name", profiles.model_names())
def test_model_entry_is_a_published_config(name, catalog_entries):
    entry = catalog_entries[name]
    assert entry["name"] == name and entry["source"] and entry["published_params_total"] > 0
    assert entry["config"]["model_type"] in SUPPORTED_TYPES


def test_aliases_are_exact_and_unique():
    models, hardware = profiles.model_aliases(), profiles.hardware_aliases()  # raise on any collision
    assert models["meta-llama/llama-3.1-8b"] == "llama-3.1-8b"
    assert hardware["h100"] == "h100-sxm"
    assert profiles.resolve_model_name("llama-3.1") is None  # no fuzzy matching
    assert profiles.resolve_hardware_id("H100-SXM") == "h100-sxm"  # case does not matter


def test_a_pcie_card_is_not_its_nvlink_board():
    """The A100 40GB PCIe card (and the name nvidia-smi gives it) talks over PCIe: it took the NVLink board's entry,
    so tensor parallelism over four of them was priced at NVLink's all-reduce."""
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema.core import ProfileRequest

    assert profiles.resolve_hardware_id("nvidia a100-pcie-40gb") == "a100-40gb-pcie"
    assert profiles.resolve_hardware_id("nvidia a100-sxm4-40gb") == "a100-40gb"
    pcie, sxm = catalog_hardware("a100-40gb-pcie"), catalog_hardware("a100-40gb")
    assert pcie.peak_tflops == sxm.peak_tflops and pcie.bandwidth_tbps == sxm.bandwidth_tbps
    assert pcie.interconnect.bandwidth_gbps < sxm.interconnect.bandwidth_gbps / 5

    def latency(hw):
        return profile(ProfileRequest(model="llama-3.1-70b", hardware=hw, num_devices=4, dtype="bf16", batch=1,
                                      context=2048)).latency

    pcie_latency, sxm_latency = latency("a100-40gb-pcie"), latency("a100-40gb")
    # the same chip on one device; over four, the all-reduce crosses PCIe
    assert catalog_hardware("a100-40gb-pcie").measured == catalog_hardware("a100-40gb").measured
    assert pcie_latency.allreduce_ms_per_layer > 2 * sxm_latency.allreduce_ms_per_layer  # 0.034 against 0.012 ms
    assert pcie_latency.tpot_ms > sxm_latency.tpot_ms
