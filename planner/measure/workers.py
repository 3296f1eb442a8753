"""Measurements that need a fresh process: peak memory (a process's high-water mark cannot be reset) and the
runtime's own resident memory. `run_worker` runs `python -m MODULE ...` and reads the JSON its last line prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from .runtime import MeasureError, load_model, vm_hwm_bytes


def peak_memory(path: str, dtype: str, device: str, batch: int, prompt: int, decode_steps: int = 4) -> int:
    """Peak memory of a fresh process that loads the model, prefills `batch` prompts and decodes a few
    tokens: VmHWM on CPU, the allocator's peak on CUDA."""
    args = json.dumps({"path": path, "dtype": dtype, "device": device, "batch": batch, "prompt": prompt,
                       "steps": decode_steps})
    out = run_worker("optiplan.planner.measure.workers", ["peak", args])
    return int(out["peak_memory_bytes"])


def baseline_rss() -> int:
    """Resident memory of a fresh process once torch and transformers are imported (the runtime's share)."""
    return int(run_worker("optiplan.planner.measure.workers", ["baseline", "{}"])["peak_memory_bytes"])


def run_worker(module: str, argv: list[str]) -> dict[str, Any]:
    """Run `python -m module *argv` in a fresh process and return the JSON its last line prints; a failure raises
    MeasureError with the worker's last error line."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, env=env,
                          check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise MeasureError(f"measurement process failed: {lines[-1] if lines else 'no output'}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_peak_after(device: str, run) -> None:
    """The worker side of a peak measurement: reset the device's peak, `run()`, print the peak as the JSON line
    `run_worker` reads (the CUDA allocator's peak, or this process's high-water mark on a CPU)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    run()
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else vm_hwm_bytes()
    print(json.dumps({"peak_memory_bytes": peak}))


def worker_main(argv: list[str]) -> None:
    mode, args = argv[0], json.loads(argv[1])
    import torch
    import transformers  # noqa: F401  (the runtime's own memory is part of the baseline)

    if mode == "baseline":
        print(json.dumps({"peak_memory_bytes": vm_hwm_bytes()}))
        return
    device = args["device"]
    model, _ = load_model(args["path"], args["dtype"], device)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, model.config.vocab_size, (args["batch"], args["prompt"]), generator=gen).to(device)

    def run():
        with torch.inference_mode():
            model.generate(ids, max_new_tokens=args["steps"], min_new_tokens=args["steps"], do_sample=False,
                           pad_token_id=model.config.eos_token_id or 0)

    print_peak_after(device, run)


if __name__ == "__main__":
    worker_main(sys.argv[1:])
