"""This machine's calibration file: where it lives (under the user's cache folder, keyed by a fingerprint of the
machine's compute), reading it and writing it. What goes in it is measured by `optiplan.planner.measure.calibrate`;
the analytic model reads it through here, so reading never imports the measuring code (or torch)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from ..fsutil import write_text_atomic
from .probe import cpuinfo, smi_devices, total_memory_bytes

CALIBRATION_VERSION = "3"  # 2: split rooflines, measured matmul half-size; 3: fits keyed by "runtimes"


def cache_dir() -> Path:
    root = os.environ.get("OPTIPLAN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "optiplan")
    return Path(root) / "calibration"


def fingerprint() -> str:
    """Identifies this machine's compute: CPU model, core count, memory size and CUDA device, if any."""
    info = cpuinfo()
    parts = [info.get("model name", platform.processor() or platform.machine()), str(os.cpu_count()),
             str(round(total_memory_bytes() / 2**30)), ";".join(n for n, _ in smi_devices())]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def calibration_path() -> Path:
    return cache_dir() / f"{fingerprint()}.json"


# what every reader of a calibration takes from it (`calibrate` and `calibrate_gpu` write all of them)
REQUIRED = {"machine": dict, "peak_tflops": dict, "bandwidth_bytes_per_s": (int, float),
            "runtime_overhead_bytes": (int, float), "runtimes": dict, "measured_at": str}


def load_calibration() -> dict[str, Any] | None:
    """This machine's calibration, or None when it was never calibrated, was written by another version, or cannot be
    used (unreadable, or without what its readers take: said once on stderr, with how to mend it)."""
    path = calibration_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # a JSON or UTF-8 error is a ValueError
        return _unusable(str(path), f"not readable JSON ({type(exc).__name__})")
    if not isinstance(data, dict):
        return _unusable(str(path), "not a JSON object")
    if data.get("calibration_version") != CALIBRATION_VERSION:
        return None
    missing = sorted(k for k, kind in REQUIRED.items() if not isinstance(data.get(k), kind))
    return _unusable(str(path), f"without {', '.join(missing)}") if missing else data


@functools.lru_cache(maxsize=None)
def _unusable(path: str, why: str) -> None:
    sys.stderr.write(f"warning: the calibration file {path} is {why}: ignored; `optiplan calibrate` writes it again\n")


def save_calibration(data: dict[str, Any]) -> Path:
    """Write this machine's calibration (atomically: an interrupted run leaves the previous one)."""
    return write_text_atomic(calibration_path(), json.dumps(data, indent=2))


def calibrated_device(calibration: dict[str, Any] | None) -> str | None:
    """The device `calibration` measured ("cpu" or "cuda"), None where there is none or it names none."""
    return ((calibration or {}).get("machine") or {}).get("device")


def calibrated_here(calibration: dict[str, Any] | None, hw) -> bool:
    """Whether `calibration` measured `hw`'s kind of device on this machine: a GPU's (cuda), or the CPU's where the
    machine's `local` device is its CPU. A CPU calibration on a machine whose `local` is its GPU fits nothing there."""
    return calibrated_device(calibration) == ("cuda" if hw.kind == "gpu" else "cpu")
