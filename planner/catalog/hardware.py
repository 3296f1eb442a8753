"""Hardware specs: catalog devices from `profiles/hardware/*.yaml`, and `local` (this machine).

`local` is read without importing torch: CPU cores, clock and vector width from /proc/cpuinfo,
memory from /proc/meminfo, and a CUDA device by name through `nvidia-smi` (matched to a catalog
entry by its exact marketing name) or through torch when torch is already imported.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from ... import profiles
from ..errors import HardwareError, UnknownNameError
from ..machine.calibration import calibrated_here, calibration_path, load_calibration
from ..machine.probe import cuda_devices, estimated_cpu
from ..schema import HardwareSpec, ModelSpec
from .dtypes import canonical

GIB = 1024**3


def hardware_from_dict(data: dict, where: str) -> HardwareSpec:
    """Validate one hardware profile (the YAML's fields) into a HardwareSpec."""
    try:
        d = dict(data)
        d["memory_bytes"] = int(float(d.pop("memory_gib")) * GIB)
        d["memory_bandwidth_bytes_per_s"] = float(d.pop("bandwidth_tbps")) * 1e12
        d["runtime_overhead_bytes"] = int(float(d.pop("runtime_overhead_gib", 0)) * GIB)
        if "unified_memory_gib" in d:
            d["unified_memory_bytes"] = int(float(d.pop("unified_memory_gib")) * GIB)
        return HardwareSpec(**d)
    except KeyError as exc:
        raise HardwareError(f"{where}: malformed hardware profile: missing field {exc}") from exc
    except ValidationError as exc:  # the field and what is wrong with it, not pydantic's header line
        first = exc.errors()[0]
        raise HardwareError(f"{where}: malformed hardware profile: {'.'.join(map(str, first['loc']))}: "
                            f"{first['msg']}") from exc
    except (TypeError, ValueError, OverflowError, AttributeError) as exc:
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
        try:
            data = profiles.read_yaml(path)
        except Exception as exc:  # noqa: BLE001  yaml.YAMLError, UnicodeDecodeError, OSError: one sentence
            raise HardwareError(f"{path}: not a hardware YAML: {str(exc).splitlines()[0] if str(exc) else exc}") \
                from exc
        if not isinstance(data, dict):
            raise HardwareError(f"{path}: a hardware profile must be a mapping of fields")
        return hardware_from_dict(data, str(path))
    hw_id = profiles.resolve_hardware_id(name)
    if hw_id is None:
        names = profiles.hardware_ids() + list(profiles.hardware_aliases()) + ["local"]
        raise UnknownNameError("hardware", name, names, "`optiplan catalog hardware` lists them")
    return catalog_hardware(hw_id)


def default_16bit(hw: HardwareSpec) -> str:
    """The 16-bit format a device computes in: bf16 where it has a bf16 rate, else fp16."""
    return "bf16" if hw.features.bf16 and "bf16" in hw.peak_tflops else "fp16"


def unquantized_dtype(hw: HardwareSpec) -> str:
    """The format unquantized weights run fastest in: the device's 16-bit one, fp32 where it has no 16-bit rate or a
    slower one (a CPU without 16-bit matmul instructions)."""
    d16 = default_16bit(hw)
    if d16 not in hw.peak_tflops or hw.peak_tflops[d16] < hw.peak_tflops.get("fp32", 0.0):
        return "fp32"
    return d16


def device_checkpoint_dtype(spec: ModelSpec, hw: HardwareSpec) -> str | None:
    """The published checkpoint's own low-precision weight format where the device runs it as it is, else None (the
    weights are dequantized to 16 bits): DeepSeek-V3's fp8 on a GPU with an fp8 rate; gpt-oss's MXFP4 experts on a GPU
    with a bf16 rate, where the engines' MXFP4 MoE kernels run (vLLM: Marlin on Ampere, Triton on Hopper, FlashInfer
    on Blackwell; transformers dequantizes below compute capability 7.5). An engine may state its own formats
    (`catalog.served`)."""
    if spec.checkpoint_dtype == "fp8" and hw.features.fp8 and "fp8" in hw.peak_tflops:
        return "fp8"
    if spec.checkpoint_dtype == "mxfp4" and hw.kind == "gpu" and hw.features.bf16:
        return "mxfp4"
    return None


def within_one_host(hw: HardwareSpec, devices: int) -> bool:
    """Whether `devices` of `hw` share one host (a GB200 tray holds 4 of its NVLink domain's 72)."""
    return hw.interconnect is not None and devices <= devices_per_host(hw)


def devices_per_host(hw: HardwareSpec) -> int:
    """The devices one host holds, the machine a server's processes start on together (a GB200 tray's 4 of its
    NVLink domain's 72, `devices_per_host`); its node's where the catalog states no host of its own, one where it
    states no interconnect. What a deployment launches by: a server over more spans hosts, however fast their link."""
    link = hw.interconnect
    return (link.devices_per_host or link.max_devices_per_node) if link else 1


def cost_per_million_tokens(hw: HardwareSpec, devices: int, tokens_per_s: float) -> float | None:
    """Dollars per million tokens at `tokens_per_s` on `devices` of `hw` at its catalog price (the middle of its
    range), or None where it has none or nothing runs."""
    price = hw.price.usd_per_hour if hw.price else None
    return price * devices / (tokens_per_s * 3600) * 1e6 if price and tokens_per_s > 0 else None


def devices_per_node(hw: HardwareSpec) -> int:
    """The devices one node holds (its interconnect's; one where the catalog states none)."""
    return hw.interconnect.max_devices_per_node if hw.interconnect else 1


def replicas_in_own_hosts(hw: HardwareSpec, devices: int, replicas: int) -> bool:
    """Whether a deployment's `replicas` each fill hosts of their own (more devices than a host holds, a replica's
    within one, `devices_per_host`): a plan's configs start one server per replica there, not one server of
    data-parallel ranks."""
    per_host = devices_per_host(hw)
    return replicas > 1 and devices > per_host and devices // replicas <= per_host


def server_ranks(hw: HardwareSpec, devices: int, replicas: int, independent: bool = True) -> int:
    """The data-parallel ranks (replicas) one server runs: every replica where they share a host or span hosts
    together; where each fits in a host of its own (`replicas_in_own_hosts`), those one host holds (the most whole
    replicas a node fits that divide them evenly over the servers), a server per node, where the engine's ranks in a
    server are `independent` copies (not vLLM's ranks of a MoE model, whose experts form one group over all of them,
    `engines.engine_dp_shares_experts`: one server per replica there)."""
    if not replicas_in_own_hosts(hw, devices, replicas):
        return max(replicas, 1)
    if not independent:
        return 1
    fit = max(1, devices_per_host(hw) // (devices // replicas))
    return max(d for d in range(1, fit + 1) if replicas % d == 0)


def supports_dtype(hw: HardwareSpec, dtype: str) -> bool:
    """Whether the device has a compute rate for this dtype."""
    d = canonical(dtype)
    if d in ("int4", "nf4", "mxfp4"):  # weight-only storage: runs at a 16-bit rate
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


def local_cpu() -> HardwareSpec:
    """This machine's CPU: measured figures when `optiplan calibrate` has run here, else estimates
    from /proc/cpuinfo."""
    calibration = load_calibration()
    spec = estimated_cpu()
    if not calibrated_here(calibration, spec):  # none, or a GPU's
        return spec
    return spec.model_copy(update={
        # the measured rates over the estimated ones: a dtype calibration does not measure (int8) keeps its estimate
        "peak_tflops": spec.peak_tflops | calibration["peak_tflops"],
        "memory_bandwidth_bytes_per_s": calibration["bandwidth_bytes_per_s"],
        "runtime_overhead_bytes": calibration["runtime_overhead_bytes"],
        "sources": [f"measured by `optiplan calibrate` on {calibration['measured_at']} ({calibration_path()})"],
        "notes": "Calibrated: peaks, bandwidth and runtime memory measured on this machine.",
    })


_NVIDIA_NAME = re.compile(r"^(nvidia\s+)?(geforce\s+|tesla\s+)?", re.I)


@lru_cache(maxsize=1)
def local_hardware() -> HardwareSpec:
    """This machine: its first CUDA device when there is one (catalog figures for its exact name,
    its own memory size), else its CPU."""
    for name, mem in cuda_devices():
        hw_id = profiles.resolve_hardware_id(name) or profiles.resolve_hardware_id(_NVIDIA_NAME.sub("", name))
        if hw_id:
            spec = catalog_hardware(hw_id)
            return spec.model_copy(update={"id": "local", "name": f"{name} (local, as {hw_id})",
                                           "memory_bytes": mem})
        raise HardwareError(f"this machine's CUDA device '{name}' has no catalog entry: pass --hardware with the "
                            "closest catalog id, or add a YAML for it to profiles/hardware/")
    return local_cpu()
