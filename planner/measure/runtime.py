"""What every measurement shares: optiplan's dtype names as torch dtypes, quiet transformers, loading a model folder
for timing, device synchronisation, this process's peak memory, and the error for a model that cannot be measured.
torch and transformers are imported inside the functions, only when a measurement runs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..errors import MeasureError, OptiplanError
from ..machine.probe import proc_kib_bytes


def reset_vm_hwm() -> bool:
    """Reset this process's peak resident memory to its current resident memory (Linux: `5` written to
    /proc/self/clear_refs), so that a later `vm_hwm_bytes` reads the peak of what ran since, not of loading the
    model (an fp32 checkpoint converted to bf16 peaks at 1.5 times its size while loading). False where the system
    has no such reset (macOS: the peak since the process started stands)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def vm_hwm_bytes() -> int:
    """Peak resident memory of this process (Linux `VmHWM`), in bytes."""
    peak = proc_kib_bytes("/proc/self/status", "VmHWM")
    if peak:
        return peak
    import resource
    import sys

    # ru_maxrss is in kilobytes on Linux and the BSDs, in bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def check_model_folder(path: Path, allow_pickle: bool = False, error: type[OptiplanError] = MeasureError) -> None:
    """A folder transformers can load: a config and safetensors weights (pickle weights, which can run code when
    loaded, only when allowed). Raises `error` with what is wrong otherwise."""
    if not path.is_dir():
        raise error(f"{path}: not a folder")
    if not (path / "config.json").is_file():
        raise error(f"{path}: no config.json; expected a Hugging Face model folder")
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise error(f"{path / 'config.json'}: not valid JSON ({str(exc).splitlines()[0]})") from exc
    if not isinstance(config, dict):
        raise error(f"{path / 'config.json'}: not a JSON object")
    if list(path.glob("*.safetensors")):
        return
    if not (list(path.glob("*.bin")) or list(path.glob("*.pt"))):
        raise error(f"{path}: no weights (*.safetensors)")
    if not allow_pickle:
        raise error(f"{path}: weights are pickle files (*.bin), which can run code when loaded; convert them to "
                    f"safetensors or pass --allow-pickle if you trust the source")


def torch_dtype(name: str):
    """The torch dtype for optiplan's name of it (fp32, bf16, fp16)."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


# Libraries whose own warnings and logs optiplan silences unless asked (`optiplan --verbose`)
THIRD_PARTY = ("torch", "torchao", "transformers", "optimum", "hqq", "accelerate", "safetensors")


def quiet_libraries() -> None:
    """Silence the libraries' own progress bars, load reports, logs and warnings (torchao alone prints a dozen
    lines at import): optiplan shows its own progress. Imports torch first, which resets its loggers' levels on
    import. OPTIPLAN_VERBOSE=1 (`optiplan --verbose`) leaves them all on."""
    import logging
    import warnings

    if os.environ.get("OPTIPLAN_VERBOSE") == "1":
        return
    import torch  # noqa: F401  (its import configures the torch loggers; set their levels after it)

    for name in (*THIRD_PARTY, "ContinuousBatchingLogger"):  # the last: "no fast path on CPU", every call
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in THIRD_PARTY:
        warnings.filterwarnings("ignore", module=name)
    from transformers.utils import logging as hf_logging  # may import torchao, which logs as it loads

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_model(path: str, dtype: str, device: str):
    import torch
    from transformers import AutoModelForCausalLM

    quiet_libraries()
    start = time.perf_counter()
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype))
    except Exception as exc:  # noqa: BLE001  mismatched shapes, invalid config, unreadable weights: one line
        raise MeasureError(f"{path}: transformers cannot load it: {str(exc).splitlines()[0]}") from exc
    model = model.to(device).eval()
    if device == "cuda":
        torch.cuda.synchronize()
    return model, time.perf_counter() - start


def sync(device: str) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU needs nothing)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
