"""This machine, read without torch: CPU model, cores, clock and vector width from /proc/cpuinfo, memory from
/proc/meminfo, CUDA devices through torch when it is already imported or else `nvidia-smi`, and the estimated
`HardwareSpec` of the CPU that `optiplan calibrate` refines. A leaf: nothing of optiplan's below it but the schema."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from ..schema import HardwareFeatures, HardwareSpec

GIB = 1024**3

# Default bandwidth per memory channel is unknown without measuring; this conservative figure per
# core is replaced by `optiplan calibrate` (measured) when a calibration file exists.
_LOCAL_BW_PER_CORE = 8e9
_LOCAL_BW_CAP = 200e9


def cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info.setdefault(k.strip(), v.strip())
    return info


def proc_kib_bytes(path: str, key: str) -> int | None:
    """A `Key:  N kB` field of a Linux /proc file (meminfo, self/status) in bytes, or None elsewhere."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def total_memory_bytes() -> int:
    total = proc_kib_bytes("/proc/meminfo", "MemTotal")
    if total:
        return total
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return 8 * GIB


def cuda_devices() -> list[tuple[str, int]]:
    """(name, memory bytes) of each CUDA device, without importing torch (torch's view where it is imported)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return [(torch.cuda.get_device_name(i), torch.cuda.get_device_properties(i).total_memory)
                for i in range(torch.cuda.device_count())]
    return smi_devices()


def smi_devices() -> list[tuple[str, int]]:
    """(name, memory bytes) of each CUDA device nvidia-smi lists, those CUDA_VISIBLE_DEVICES names by index where it
    does, as CUDA reads it (in its order, up to its first entry that is no device index: -1 hides the rest): the same
    answer whether or not the process imported torch, which the machine's fingerprint needs (`calibrate` imports it,
    `advise` does not). The indices are nvidia-smi's, in PCI bus order: CUDA's too under CUDA_DEVICE_ORDER=PCI_BUS_ID
    or where the GPUs are alike; a UUID list leaves every device."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = _smi_all()
    if visible is None or any(part.strip().startswith(("GPU-", "MIG-")) for part in visible.split(",")):
        return devices
    picked = []
    for part in visible.split(","):
        if not part.strip().isdigit() or int(part) >= len(devices):
            break
        picked.append(devices[int(part)])
    return picked


def _smi_all() -> list[tuple[str, int]]:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    devices = []
    for line in out.strip().splitlines():
        name, _, mib = line.rpartition(",")
        if name and mib.strip().isdigit():
            devices.append((name.strip(), int(mib) * 1024**2))
    return devices


BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # the CPU flags of a native bf16 multiply


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX); without, torch's bf16 matmuls are slower than
    fp32 ones (measured here: a 64 x 2048 GEMM 4x)."""
    return bool(BF16_FLAGS & set(cpuinfo().get("flags", "").split()))


def estimated_cpu() -> HardwareSpec:
    info = cpuinfo()
    cores = os.cpu_count() or 1
    flags = set(info.get("flags", "").split())
    mhz = float(info.get("cpu MHz", 0) or 0) or 2000.0
    # FP32 FLOP per cycle per core: two FMA pipes of the widest vector unit.
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    fp32_tflops = cores * mhz * 1e6 * lanes * 2 * 2 / 1e12
    peaks = {"fp32": round(fp32_tflops, 3)}
    bf16 = bool(BF16_FLAGS & flags)
    if bf16:
        peaks["bf16"] = round(fp32_tflops * (8 if "amx_bf16" in flags else 2), 3)
    else:
        peaks["bf16"] = peaks["fp32"]  # torch upcasts bf16 matmuls on such CPUs
    peaks["int8"] = round(fp32_tflops * (4 if "avx512_vnni" in flags or "avx_vnni" in flags else 1), 3)
    model_name = info.get("model name", platform.processor() or platform.machine())
    return HardwareSpec(
        id="local", name=f"{model_name} ({cores} cores)", kind="cpu", vendor="local",
        memory_bytes=total_memory_bytes(),
        memory_bandwidth_bytes_per_s=min(cores * _LOCAL_BW_PER_CORE, _LOCAL_BW_CAP),
        peak_tflops=peaks,
        features=HardwareFeatures(backend="cpu", bf16=True, fp16=True, int8_tensor_cores=False),
        runtime_overhead_bytes=int(0.3 * GIB),
        sources=["/proc/cpuinfo and /proc/meminfo of this machine",
                 f"peak derived: {cores} cores x {mhz:.0f} MHz x {lanes} lanes x 2 FMA pipes x 2 FLOP",
                 "bandwidth: a conservative estimate per core until `optiplan calibrate` measures it"],
        notes="Estimated from this machine's description; calibrate to replace the estimates with measurements.",
    )
