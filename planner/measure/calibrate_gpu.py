"""`optiplan calibrate` on a CUDA machine: the transformers engine's launch cost measured on this host.

Eager transformers on a GPU is launch-bound: the host launches each layer's kernels ahead of the device, and a step
takes the longer of the launches and the kernels (measured on an H200: decode of 1B-8B models took the same time at
any batch and context). What sets the launch cost is the host, not the GPU: two H200 machines ran 0.78 and 1.26 ms
per layer. So this calibration keeps the device's default efficiencies (the catalog's figures, scaled by its
microbenchmarks) and fits one launch cost per layer to catalog models built here with random weights, timed
together in interleaved rounds (`benchmarks/gpu/bench_transformers_cuda.py` does the same and keeps its runs).
The two ceilings measured here (a large bf16 matmul, a large device copy) are recorded beside it.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..machine.calibration import CALIBRATION_VERSION, fingerprint, save_calibration
from .calibrate import calibration_setup, machine_record
from .fit import fit_launch_costs, samples, step_seconds
from .microbench import copy_bandwidth, matmul_tflops
from .models import catalog_random_model
from .runtime import MeasureError, check_model_folder, load_model
from .timing import Measurement, time_loaded

# the models and steps fitted on by default: three layer counts (16, 28, 32), launch-bound and kernel-bound steps;
# each decode step is timed at its prompt plus DECODE_TOKENS of context
GPU_MODELS = ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b")
GPU_BATCHES, GPU_PROMPTS, DECODE_TOKENS = (1, 16), (128, 2048), 64
GPU_PREFILLS = tuple((b, p) for b in GPU_BATCHES for p in GPU_PROMPTS)
GPU_DECODES = tuple((b, p + DECODE_TOKENS) for b, p in GPU_PREFILLS)
MEMORY_HEADROOM = 0.8  # the models built must fit in this share of the device's free memory


def kernel_seconds(all_samples: list[dict], hw, dtype: str) -> list[float]:
    """Each sample's kernel time on `hw`: the roofline at the device's default efficiencies, at the share of their
    compute rate the transformers engine reaches there (as `profile` predicts it), no fixed costs."""
    from ..analytic.efficiency import default_efficiency
    from ..analytic.engine_rates import at_engine_share
    from ..analytic.steps import decode_step, prefill_step

    eff = at_engine_share(default_efficiency(hw, dtype, dtype, "transformers"), "transformers", hw).model_copy(
        update={"step_overhead_s": 0.0, "layer_overhead_s": 0.0, "host_overlap": False})
    setups, out = {}, []
    for s in all_samples:
        if s["model"] not in setups:
            setups[s["model"]] = calibration_setup(s["model"], dtype, hw, eff, attention="sdpa")
        setup = setups[s["model"]]
        step = (prefill_step(setup, s["batch"], s["tokens"]) if s["kind"] == "prefill"
                else decode_step(setup, s["batch"], s["tokens"]))
        out.append(step.roofline_s)
    return out


def ceilings(device: str) -> dict[str, float]:
    """The two ceilings measured here: a large bf16 matrix product (TFLOP/s) and a large device copy (bytes/s, read
    plus write); small ones off a GPU, where they only exercise the code."""
    big = device == "cuda"
    return {"bf16_matmul_tflops": matmul_tflops("bf16", n=8192 if big else 256, device=device),
            "copy_bytes_per_s": copy_bandwidth(megabytes=4096 if big else 16, device=device)}


def build_models(names: list[str], dtype: str, device: str,
                 budget_s: float = float("inf")) -> tuple[dict[str, Any], dict[str, float], list[str]]:
    """Each model on the device, with the seconds it took: a folder loaded, a catalog name (or config file) built
    with random weights. Those that would not fit in the free memory, fail to build, or come after `budget_s`
    are left out, with the reason."""
    import torch

    from ..analytic.profile import profile
    from ..schema import ProfileRequest

    start = time.perf_counter()
    built, seconds, skipped = {}, {}, []
    for name in names:
        if time.perf_counter() - start > budget_s:
            skipped.append(f"{name}: over the {budget_s:.0f} s budget")
            continue
        began = time.perf_counter()
        try:
            if Path(name).is_dir():
                check_model_folder(Path(name))  # safetensors weights only, as the CPU's calibration takes them
                built[name] = load_model(name, dtype, device)[0]
            else:
                need = profile(ProfileRequest(model=name, hardware="local", dtype=dtype)).memory.weights_bytes
                free = torch.cuda.mem_get_info()[0] if device == "cuda" else float("inf")
                if need > MEMORY_HEADROOM * free:
                    skipped.append(f"{name}: {need / 1e9:,.1f} GB of weights, {free / 1e9:,.1f} GB free")
                    continue
                built[name] = catalog_random_model(name, dtype, device)
        except Exception as exc:  # noqa: BLE001 - a model that cannot be built here is reported, the others run
            skipped.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            continue
        seconds[name] = time.perf_counter() - began
    return built, seconds, skipped


def fit_launch_cost(all_samples: list[dict], hw, dtype: str) -> dict[str, Any]:
    """The transformers engine's factors on this GPU: the device's default efficiencies, the launch cost per layer
    fitted with the launches overlapping the kernels, and each measured step against the result."""
    from ..analytic.efficiency import default_efficiency
    from ..analytic.engine_rates import at_engine_share

    kernels = kernel_seconds(all_samples, hw, dtype)
    launch = fit_launch_costs(all_samples, kernels, overlap=True)
    # the factors the kernel times were priced at (the engine's share of the compute rate among them): a calibrated
    # profile reads these as they are, without the share the documented defaults take on, so they carry it
    eff = at_engine_share(default_efficiency(hw, dtype, dtype, "transformers"), "transformers", hw)
    factors = {"flop_efficiency": eff.flop_efficiency, "bandwidth_efficiency": eff.bandwidth_efficiency,
               "step_overhead_s": launch["step_overhead_s"], "layer_overhead_s": launch["layer_overhead_s"],
               "host_overlap": True, "matmul_half_tokens": eff.matmul_half_tokens}
    points = []
    for s, k in zip(all_samples, kernels):
        pred = step_seconds(s, k, launch)
        points.append({**{key: s[key] for key in ("model", "kind", "batch", "tokens")}, "measured_s": s["seconds"],
                       "predicted_s": pred, "error_pct": 100 * (pred - s["seconds"]) / s["seconds"]})
    return {"factors": factors, "points": points,
            "median_abs_error_pct": statistics.median(abs(p["error_pct"]) for p in points),
            "at_grid_edge": launch["at_grid_edge"]}


def calibrate_gpu(models: list[str] | None = None, repeats: int = 5, dtype: str = "bf16", device: str = "cuda",
                  show_progress: bool = True) -> tuple[dict[str, Any], Path]:
    """Measure this GPU machine's launch cost for the transformers engine; save and return the calibration.
    `device` other than cuda runs the same code for tests (its fit then describes no real GPU)."""
    import torch
    from rich.progress import Progress

    from ..catalog.hardware import local_hardware

    hw = local_hardware()
    start = time.perf_counter()
    big = device == "cuda"
    measured = ceilings(device)
    built, _, skipped = build_models([str(m) for m in models] if models else list(GPU_MODELS), dtype, device)
    if not built:
        raise MeasureError("no model could be built on this device to calibrate with: " + "; ".join(skipped))
    prefills, decodes = GPU_PREFILLS if big else ((1, 16),), GPU_DECODES if big else ((1, 24),)
    with Progress(disable=not show_progress, transient=True) as bar:
        task = bar.add_task(f"timing {', '.join(Path(n).name for n in built)} on {device}", total=max(repeats, 1))
        timed = time_loaded([(model, prefills, decodes) for model in built.values()], device, repeats,
                            progress=lambda: bar.advance(task))
    all_samples = []
    for name, points in zip(built, timed):
        measurement = Measurement(model=name, device=device, dtype=dtype, points=points)
        all_samples += samples(measurement, calibration_setup(name, dtype, hw))
    del built
    if big:
        torch.cuda.empty_cache()
    data = {"calibration_version": CALIBRATION_VERSION, "fingerprint": fingerprint(),
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {**machine_record(device), "gpu": hw.name},
            "peak_tflops": {"bf16": round(measured["bf16_matmul_tflops"], 4)},
            "bandwidth_bytes_per_s": measured["copy_bytes_per_s"], "runtime_overhead_bytes": 0,
            "runtimes": {"transformers": {dtype: fit_launch_cost(all_samples, hw, dtype)}},
            "skipped": skipped, "seconds": time.perf_counter() - start}
    return data, save_calibration(data)


def calibrate_machine(models: list | None = None, repeats: int = 5, device: str = "auto",
                      show_progress: bool = True) -> tuple[dict[str, Any], Path]:
    """`optiplan calibrate`'s fit, for the CLI and the service alike: the GPU's launch cost where torch sees a CUDA
    device (or `device` says cuda), else the CPU's factors (`calibrate.calibrate`)."""
    import torch

    from .calibrate import calibrate

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise MeasureError("calibrating the GPU: torch sees no CUDA device here (calibrate the CPU instead)")
        return calibrate_gpu([str(m) for m in models] if models else None, repeats=repeats,
                             show_progress=show_progress)
    return calibrate([Path(m) for m in models] if models else None, repeats=repeats, show_progress=show_progress)
