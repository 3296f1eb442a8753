"""What every measurement shares: optiplan's dtype names as torch dtypes, quiet transformers, loading a model folder
for timing, device synchronisation, this process's peak memory, and the error for a model that cannot be measured.
torch and transformers are imported inside the functions, only when a measurement runs."""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import OptiplanError
from ..machine.probe import proc_kib_bytes


class MeasureError(OptiplanError):
    """A model that cannot be measured here."""


def vm_hwm_bytes() -> int:
    """Peak resident memory of this process (Linux `VmHWM`), in bytes."""
    peak = proc_kib_bytes("/proc/self/status", "VmHWM")
    if peak:
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def check_model_folder(path: Path) -> None:
    """A folder transformers can load: a config and weights. Raises MeasureError otherwise."""
    if not (path / "config.json").is_file():
        raise MeasureError(f"{path}: no config.json; `--measure` needs a Hugging Face model folder")
    weights = list(path.glob("*.safetensors")) + list(path.glob("*.bin"))
    if not weights:
        raise MeasureError(f"{path}: no weights (*.safetensors); `--measure` runs the real model")


def torch_dtype(name: str):
    """The torch dtype for optiplan's name of it (fp32, bf16, fp16)."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def quiet_transformers() -> None:
    """Silence transformers' progress bars and load reports: optiplan shows its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_model(path: str, dtype: str, device: str):
    import torch
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    start = time.perf_counter()
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype), attn_implementation="sdpa")
    except Exception as exc:  # noqa: BLE001  mismatched shapes, invalid config, unreadable weights: one line
        raise MeasureError(f"{path}: transformers cannot load it: {str(exc).splitlines()[0]}") from exc
    model = model.to(device).eval()
    if device == "cuda":
        torch.cuda.synchronize()
    return model, time.perf_counter() - start


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
