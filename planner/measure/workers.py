"""Measurements that need a fresh process: peak memory (a process's high-water mark cannot be reset) and the
runtime's own resident memory. `run_worker` runs `python -m MODULE ...` and reads the JSON its last line prints."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from typing import Any

from .runtime import MeasureError, load_model, reset_vm_hwm, vm_hwm_bytes


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


# a worker loads one model and runs a few steps: far longer than this is a wedged driver or a swapping host
WORKER_TIMEOUT_S = 1800


def run_worker(module: str, argv: list[str], timeout_s: float = WORKER_TIMEOUT_S) -> dict[str, Any]:
    """Run `python -m module *argv` in a fresh process and return the JSON object it prints last (a library may
    print after it); a failure, a kill (the out-of-memory killer's, most often) or a hang past `timeout_s` raises
    MeasureError saying which."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, env=env,
                              check=False, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise MeasureError(f"measurement process gave no answer in {timeout_s:.0f} s and was stopped") from exc
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    if proc.returncode < 0:
        raise MeasureError(f"measurement process was killed by signal {-proc.returncode}"
                           f"{' (out of memory?)' if -proc.returncode == 9 else ''}"
                           f"{f'; its last line: {lines[-1]}' if lines else ''}")
    if proc.returncode != 0:
        raise MeasureError(f"measurement process failed: {lines[-1] if lines else 'no output'}")
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            answer = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(answer, dict):
            return answer
    raise MeasureError(f"measurement process ended without its answer{f': {lines[-1]}' if lines else ''}")


def pad_token(config) -> int:
    """A padding id for generate: the config's end-of-sequence id (the first of a list, as Llama 3's Instruct configs
    give several), else 0."""
    eos = getattr(config, "eos_token_id", None)
    eos = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
    return eos if isinstance(eos, int) else 0


def print_peak_after(device: str, run) -> None:
    """The worker side of a peak measurement: reset the device's peak, `run()`, print the peak as the JSON line
    `run_worker` reads (the CUDA allocator's peak, or this process's high-water mark on a CPU, reset to what the
    loaded model holds before the run where the system allows it: `reset_vm_hwm`)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:
        gc.collect()  # the loading's garbage goes before the mark is reset
        reset_vm_hwm()
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
                           pad_token_id=pad_token(model.config))

    print_peak_after(device, run)


if __name__ == "__main__":
    worker_main(sys.argv[1:])
