"""Hardware specs: catalog devices from `profiles/hardware/*.yaml`, and `local` (this machine).

`local` is read without importing torch: CPU cores, clock and vector width from /proc/cpuinfo,
memory from /proc/meminfo, and a CUDA device by name through `nvidia-smi` (matched to a catalog
entry by its exact marketing name) or through torch when torch is already imported.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from ... import profiles
from .dtypes import canonical
from ..errors import HardwareError, UnknownNameError
from ..schema import HardwareFeatures, HardwareSpec

GIB = 1024**3


def hardware_from_dict(data: dict, where: str) -> HardwareSpec:
    """Validate one hardware profile (the YAML's fields) into a HardwareSpec."""
    try:
        d = dict(data)
        d["memory_bytes"] = int(float(d.pop("memory_gib")) * GIB)
        d["memory_bandwidth_bytes_per_s"] = float(d.pop("bandwidth_tbps")) * 1e12
        d["runtime_overhead_bytes"] = int(float(d.pop("runtime_overhead_gib", 0)) * GIB)
        return HardwareSpec(**d)
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise HardwareError(f"{where}: malformed hardware profile: {exc}".splitlines()[0]) from exc


@lru_cache(maxsize=None)
def catalog_hardware(hw_id: str) -> HardwareSpec:
    return hardware_from_dict(profiles.load_hardware(hw_id), f"profiles/hardware/{hw_id}.yaml")


def resolve_hardware(name: str) -> HardwareSpec:
    """A catalog id or alias, `local` for this machine, or a path to a hardware YAML file."""
    if name.strip().lower() == "local":
        return local_hardware()
    path = Path(name)
    if name.endswith((".yaml", ".yml")) and path.is_file():
        return hardware_from_dict(profiles.read_yaml(path), str(path))
    hw_id = profiles.resolve_hardware_id(name)
    if hw_id is None:
        names = profiles.hardware_ids() + list(profiles.hardware_aliases()) + ["local"]
        raise UnknownNameError("hardware", name, names, "`optiplan catalog hardware` lists them")
    return catalog_hardware(hw_id)


def supports_dtype(hw: HardwareSpec, dtype: str) -> bool:
    """Whether the device has a compute rate for this dtype."""
    d = canonical(dtype)
    if d in ("int4", "nf4"):  # weight-only storage: runs at a 16-bit rate
        return True
    if d == "fp8" and not hw.features.fp8:
        return False
    if d == "fp4" and not hw.features.fp4:
        return False
    if d == "bf16" and not hw.features.bf16:
        return False
    return d in hw.peak_tflops or d == "int8"


# ---------------------------------------------------------------------------------------------
# local
# ---------------------------------------------------------------------------------------------

# Default bandwidth per memory channel is unknown without measuring; this conservative figure per
# core is replaced by `optiplan calibrate` (measured) when a calibration file exists.
_LOCAL_BW_PER_CORE = 8e9
_LOCAL_BW_CAP = 200e9


def _cpuinfo() -> dict[str, str]:
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


def _total_memory_bytes() -> int:
    total = proc_kib_bytes("/proc/meminfo", "MemTotal")
    if total:
        return total
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return 8 * GIB


def _cuda_devices() -> list[tuple[str, int]]:
    """(name, memory bytes) of each CUDA device, without importing torch."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return [(torch.cuda.get_device_name(i), torch.cuda.get_device_properties(i).total_memory)
                for i in range(torch.cuda.device_count())]
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


def local_cpu() -> HardwareSpec:
    """This machine's CPU: measured figures when `optiplan calibrate` has run here, else estimates
    from /proc/cpuinfo."""
    from ..measure.calibrate import calibration_path, load_calibration

    calibration = load_calibration()
    spec = _estimated_cpu()
    if calibration is None or calibration.get("machine", {}).get("device") != "cpu":
        return spec
    return spec.model_copy(update={
        "peak_tflops": calibration["peak_tflops"],
        "memory_bandwidth_bytes_per_s": calibration["bandwidth_bytes_per_s"],
        "runtime_overhead_bytes": calibration["runtime_overhead_bytes"],
        "sources": [f"measured by `optiplan calibrate` on {calibration['measured_at']} ({calibration_path()})"],
        "notes": "Calibrated: peaks, bandwidth and runtime memory measured on this machine.",
    })


def _estimated_cpu() -> HardwareSpec:
    info = _cpuinfo()
    cores = os.cpu_count() or 1
    flags = set(info.get("flags", "").split())
    mhz = float(info.get("cpu MHz", 0) or 0) or 2000.0
    # FP32 FLOP per cycle per core: two FMA pipes of the widest vector unit.
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    fp32_tflops = cores * mhz * 1e6 * lanes * 2 * 2 / 1e12
    peaks = {"fp32": round(fp32_tflops, 3)}
    bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    if bf16:
        peaks["bf16"] = round(fp32_tflops * (8 if "amx_bf16" in flags else 2), 3)
    else:
        peaks["bf16"] = peaks["fp32"]  # torch upcasts bf16 matmuls on such CPUs
    peaks["int8"] = round(fp32_tflops * (4 if "avx512_vnni" in flags or "avx_vnni" in flags else 1), 3)
    model_name = info.get("model name", platform.processor() or platform.machine())
    return HardwareSpec(
        id="local", name=f"{model_name} ({cores} cores)", kind="cpu", vendor="local",
        memory_bytes=_total_memory_bytes(),
        memory_bandwidth_bytes_per_s=min(cores * _LOCAL_BW_PER_CORE, _LOCAL_BW_CAP),
        peak_tflops=peaks,
        features=HardwareFeatures(backend="cpu", bf16=True, fp16=True, int8_tensor_cores=False),
        runtime_overhead_bytes=int(0.3 * GIB),
        sources=["/proc/cpuinfo and /proc/meminfo of this machine",
                 f"peak derived: {cores} cores x {mhz:.0f} MHz x {lanes} lanes x 2 FMA pipes x 2 FLOP",
                 "bandwidth: a conservative estimate per core until `optiplan calibrate` measures it"],
        notes="Estimated from this machine's description; calibrate to replace the estimates with measurements.",
    )


_NVIDIA_NAME = re.compile(r"^(nvidia\s+)?(geforce\s+|tesla\s+)?", re.I)


@lru_cache(maxsize=1)
def local_hardware() -> HardwareSpec:
    """This machine: its first CUDA device when there is one (catalog figures for its exact name,
    its own memory size), else its CPU."""
    for name, mem in _cuda_devices():
        hw_id = profiles.resolve_hardware_id(name) or profiles.resolve_hardware_id(_NVIDIA_NAME.sub("", name))
        if hw_id:
            spec = catalog_hardware(hw_id)
            return spec.model_copy(update={"id": "local", "name": f"{name} (local, as {hw_id})",
                                           "memory_bytes": mem})
        raise HardwareError(f"this machine's CUDA device '{name}' has no catalog entry: pass --hardware with the "
                            "closest catalog id, or add a YAML for it to profiles/hardware/")
    return local_cpu()
