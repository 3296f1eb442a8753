"""Local hardware detection and dtype spellings."""

from __future__ import annotations

import pytest
from optiplan.planner.catalog import hardware
from optiplan.planner.catalog.dtypes import DtypeError, canonical, weight_format
from optiplan.planner.errors import HardwareError


@pytest.mark.parametrize("spelling, name", [("torch.bfloat16", "bf16"), ("half", "fp16"), ("float32", "fp32"),
                                            ("torch.float8_e4m3fn", "fp8"), ("INT8", "int8"), ("w4a16", "int4")])
def test_dtype_spellings(spelling, name):
    assert canonical(spelling) == name


def test_unknown_dtype():
    with pytest.raises(DtypeError, match="known: bf16"):
        canonical("int3")


def test_quantized_bits_per_weight():
    assert weight_format("int4").bits_per_weight(4096) == 4 + 20 / 128
    assert weight_format("int8").bits_per_weight(4096) == 8 + 16 / 4096  # one scale per row
    assert weight_format("nf4").bits_per_weight(4096) == 4 + 32 / 64
    assert weight_format("bf16").bits_per_weight(4096) == 16


def test_local_cpu_is_read_from_this_machine(monkeypatch):
    monkeypatch.setattr(hardware, "cuda_devices", lambda: [])
    hardware.local_hardware.cache_clear()
    spec = hardware.local_hardware()
    assert spec.id == "local" and spec.kind == "cpu" and spec.memory_bytes > 2**30
    assert spec.peak_tflops["fp32"] > 0
    hardware.local_hardware.cache_clear()


def test_local_cuda_device_uses_its_catalog_entry(monkeypatch):
    monkeypatch.setattr(hardware, "cuda_devices", lambda: [("NVIDIA H100 80GB HBM3", 81559 * 2**20)])
    hardware.local_hardware.cache_clear()
    spec = hardware.local_hardware()
    assert spec.id == "local" and "h100-sxm" in spec.name and spec.memory_bytes == 81559 * 2**20
    assert spec.peak_tflops["bf16"] == 989
    monkeypatch.setattr(hardware, "cuda_devices", lambda: [("NVIDIA Mystery GPU", 2**34)])
    hardware.local_hardware.cache_clear()
    with pytest.raises(HardwareError, match="Mystery GPU' has no catalog entry"):
        hardware.local_hardware()
    hardware.local_hardware.cache_clear()


def test_hardware_yaml_file(tmp_path):
    path = tmp_path / "my-gpu.yaml"
    path.write_text("id: my-gpu\nname: My GPU\nkind: gpu\nvendor: me\nmemory_gib: 32\nbandwidth_tbps: 1.0\n"
                    "peak_tflops: {bf16: 100, fp16: 100}\nfeatures: {backend: cuda, bf16: true}\nsources: [me]\n")
    spec = hardware.resolve_hardware(str(path))
    assert spec.memory_bytes == 32 * 2**30
    # an interconnect without the `kind` every catalog device states: PCIe where its name says so (a file written
    # before the field had been refused)
    two = path.read_text().replace("id: my-gpu", "id: my-pcie-gpu") + \
        "interconnect: {name: PCIe4 x16, bandwidth_gbps: 64}\n"
    path.write_text(two)
    assert hardware.resolve_hardware(str(path)).interconnect.over_pcie
    path.write_text("id: broken\nname: x\n")
    with pytest.raises(HardwareError, match="malformed hardware profile"):
        hardware.resolve_hardware(str(path))
    # a field of the wrong kind is named, not pydantic's header line
    path.write_text(two.replace("bandwidth_gbps: 64", "bandwidth_gbps: fast"))
    with pytest.raises(HardwareError, match="interconnect.bandwidth_gbps"):
        hardware.resolve_hardware(str(path))


def test_no_torch_import_for_profiles():
    import subprocess
    import sys

    code = ("import sys, optiplan; optiplan.profile('llama-3.1-8b'); "
            "from optiplan.planner.cli import main; sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("device, measured", [("cpu", True), ("cuda", False)])
def test_local_cpu_takes_only_a_calibration_of_this_cpu(monkeypatch, device, measured):
    """A calibration of the CPU replaces the estimates with what it measured; one of this machine's GPU leaves them."""
    calibration = {"machine": {"device": device}, "peak_tflops": {"fp32": 1234.0},
                   "bandwidth_bytes_per_s": 5e12, "runtime_overhead_bytes": 2**20, "measured_at": "2026-12-05"}
    monkeypatch.setattr(hardware, "load_calibration", lambda: calibration)
    spec = hardware.local_cpu()
    assert (spec.peak_tflops["fp32"] == 1234.0) is measured
    assert (spec.memory_bandwidth_bytes_per_s == 5e12) is measured
