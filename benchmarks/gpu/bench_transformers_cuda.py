"""The analytic model against transformers on this machine's GPU, and the transformers engine's launch costs
fitted there (issue 14): random-weight models of 1B-8B shapes from the catalog, bf16, batch 1 and 16, prompts of
128 and 2,048 tokens. Each point (prefill, one decode step at the context, peak memory) is measured and predicted
for `--hardware local --engine transformers` side by side; then the launch costs per step and per layer are fitted
to the measured steps at the device's default efficiencies (`fit.fit_launch_costs`), overlapping the kernels (the
host launches ahead of the device) and added to them, each model held out in turn, so the fitted figures are
judged on a model they never saw. Prints the table and the errors per step kind, writes the JSON to `--out`.
(Fitting all four of calibrate's factors to such a run traded bandwidth for launch cost: decode is launch-bound at
every batch, and the fit put the bandwidth at 28% of peak.)

Made for one H200 within a time budget: each model is built once, with random weights, directly on the GPU (no
save and reload); then the points of all models are timed together in interleaved rounds in this process
(`measure.time_loaded`, the timing of `optiplan profile --measure` and `optiplan calibrate`), so that a slow spell
of the host falls on every model alike; each peak is read from the CUDA allocator. A model not built within the
budget is skipped and said so. On a CPU machine `--models` with a model folder (e.g. tests/assets/models/target)
and `--dtype fp32` runs the same code path. `--refit` compares saved runs (benchmarks/gpu/measured/) with today's
prediction and fits them again without a GPU; with `--write-accuracy` their errors become the band reports show
for eager transformers on a GPU.

    python benchmarks/gpu/bench_transformers_cuda.py [--models llama-3.2-1b,llama-3.2-3b,llama-3.1-8b]
        [--budget-s 60] [--repeats 5] [--dtype bf16] [--batches 1,16] [--prompts 128,2048] [--out FILE]
    python benchmarks/gpu/bench_transformers_cuda.py --refit benchmarks/gpu/measured/*.json \\
        [--fitted-on h200-transformers.json --write-accuracy]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import error_stats  # noqa: E402

# what `optiplan calibrate` times on a GPU, by default: the same models, batches, prompts and decode context
from optiplan.planner.measure.calibrate_gpu import (  # noqa: E402
    DECODE_TOKENS,
    GPU_BATCHES,
    GPU_MODELS,
    GPU_PROMPTS,
    ceilings,
)

PEAK_DECODE_STEPS = 4  # the peak is read over a prefill and this many decode steps, as `profile --measure` does


def peak_bytes(model, device: str, batch: int, prompt: int) -> int:
    """This model's peak over one prefill of (batch, prompt) and a few decode steps, from the CUDA allocator: its
    weights plus what the run allocated beyond everything resident before it (the other models, built alongside, and
    cuBLAS's workspace, 32 MiB on Hopper, which a model timed alone allocates inside its first run instead)."""
    import torch
    from transformers import DynamicCache

    if device != "cuda":
        return 0
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        ids = torch.randint(1, model.config.vocab_size, (batch, prompt), device=device)
        cache = DynamicCache(config=model.config)
        out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        for _ in range(PEAK_DECODE_STEPS):
            out = model(input_ids=out.logits[:, -1:].argmax(-1), cache=cache, use_cache=True)
        del out, cache, ids
    torch.cuda.synchronize()
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return int(torch.cuda.max_memory_allocated() - before + weights)


def measure_models(names: list[str], dtype: str, device: str, repeats: int, hw, batches=GPU_BATCHES, prompts=GPU_PROMPTS,
                   budget_s: float = float("inf")):
    """Rows (measured beside predicted), fit samples and build seconds of catalog models (or folders), all built
    first and timed together in interleaved rounds (a slow spell of the host falls on every model alike, as `optiplan
    calibrate` does); the names not built within `budget_s`, with the reason."""
    from optiplan.planner.measure.calibrate_gpu import build_models
    from optiplan.planner.measure.timing import time_loaded

    models, builds, skipped = build_models(names, dtype, device, budget_s)
    prefills = [(b, p) for b in batches for p in prompts]
    decodes = [(b, p + DECODE_TOKENS) for b, p in prefills]
    timed = time_loaded([(model, prefills, decodes) for model in models.values()], device, repeats)
    rows, all_samples = [], []
    for (name, model), points in zip(models.items(), timed):
        peaks = {(b, p): peak_bytes(model, device, b, p) for b, p in prefills}
        new, fit_samples = compare(name, dtype, device, hw, points, peaks)
        rows += new
        all_samples += fit_samples
    return rows, all_samples, builds, skipped


def compare(name: str, dtype: str, device: str, hw, points, peaks: dict) -> tuple[list[dict], list[dict]]:
    """Each measured point of a model beside the prediction, and the points as fit samples."""
    from optiplan.planner.measure.calibrate import calibration_setup
    from optiplan.planner.measure.fit import samples
    from optiplan.planner.measure.timing import Measurement

    rows = []
    for point in points:
        prompt = point.tokens if point.kind == "prefill" else point.tokens - DECODE_TOKENS
        row = {"model": name, "kind": point.kind, "batch": point.batch, "prompt": prompt, "tokens": point.tokens,
               "measured_ms": point.median_s * 1e3, "spread_ms": point.spread_s * 1e3}
        peak = peaks.get((point.batch, prompt)) if point.kind == "prefill" else None
        if peak:
            row["measured_peak_bytes"] = peak
        rows.append(row)
    measurement = Measurement(model=name, device=device, dtype=dtype, points=points)
    return predicted_rows(rows, "local", dtype), samples(measurement, calibration_setup(name, dtype, hw))


def launch_fits(all_samples: list[dict], kernel_s: list[float]) -> dict:
    """The transformers engine's launch costs fitted on the measured steps, with them overlapping the kernels and
    added to them: on all models, and on all but one with the one left out predicted, each in turn."""
    from optiplan.planner.measure.fit import fit_launch_costs, step_seconds

    models = sorted({s["model"] for s in all_samples})
    report = {}
    for label, overlap in (("overlapped", True), ("added", False)):
        fitted = fit_launch_costs(all_samples, kernel_s, overlap)
        points, held = [], []
        for s, k in zip(all_samples, kernel_s):
            pred = step_seconds(s, k, fitted)
            points.append({"model": s["model"], "kind": s["kind"], "batch": s["batch"], "tokens": s["tokens"],
                           "error_pct": 100 * (pred - s["seconds"]) / s["seconds"]})
        for left in models if len(models) > 1 else ():
            keep = [i for i, s in enumerate(all_samples) if s["model"] != left]
            f = fit_launch_costs([all_samples[i] for i in keep], [kernel_s[i] for i in keep], overlap)
            for s, k in zip(all_samples, kernel_s):
                if s["model"] == left:
                    pred = step_seconds(s, k, f)
                    held.append({"model": left, "kind": s["kind"], "batch": s["batch"], "tokens": s["tokens"],
                                 "error_pct": 100 * (pred - s["seconds"]) / s["seconds"], "factors": f})
        report[label] = {"factors": fitted, "points": points, "held_out": held}
    return report


def predicted_rows(rows: list[dict], hardware: str, dtype: str) -> list[dict]:
    """The measured rows beside the prediction for `hardware` (`local` where measured; a saved run's catalog device
    on another machine): step time, and peak memory where the row has a measured peak."""
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    out = []
    for r in rows:
        p = profile(ProfileRequest(model=r["model"], hardware=hardware, engine="transformers", dtype=dtype,
                                   attention="sdpa", batch=r["batch"], prompt_tokens=r["prompt"],
                                   context=r["prompt"] + DECODE_TOKENS))
        pred = p.latency.ttft_ms if r["kind"] == "prefill" else p.latency.tpot_ms
        row = {**r, "predicted_ms": pred, "error_pct": 100 * (pred - r["measured_ms"]) / r["measured_ms"]}
        if r.get("measured_peak_bytes"):
            peak = r["measured_peak_bytes"]
            pred_bytes = p.memory.per_device_bytes - p.memory.runtime_overhead_bytes  # the allocator sees no context
            row.update(predicted_peak_bytes=pred_bytes, memory_error_pct=100 * (pred_bytes - peak) / peak)
        out.append(row)
    return out


def summary(rows: list[dict], key: str = "error_pct") -> dict[str, dict]:
    out = {}
    for kind in ("prefill", "decode"):
        errors = sorted(abs(r[key]) for r in rows if r["kind"] == kind)
        if errors:
            out[kind] = {"points": len(errors), "median_abs_error_pct": statistics.median(errors),
                         "max_abs_error_pct": errors[-1]}
    mem = sorted(abs(r["memory_error_pct"]) for r in rows if "memory_error_pct" in r)
    if mem:
        out["memory"] = {"points": len(mem), "median_abs_error_pct": statistics.median(mem),
                         "max_abs_error_pct": mem[-1]}
    return out


def catalog_id(result: dict) -> str:
    """The catalog device a saved run was measured on ("NVIDIA H200 (local, as h200-sxm)" -> h200-sxm)."""
    match = re.search(r"as ([\w.+-]+)\)", result.get("hardware", ""))
    return result.get("catalog_hardware") or (match.group(1) if match else result["hardware"])


def report(result: dict) -> None:
    """Print the summaries and the fitted launch costs of a result."""
    for label, figures in result["summary"].items():
        for kind, s in figures.items():
            print(f"{label:22s} {kind:8s} {s['points']:2d} points: median |error| {s['median_abs_error_pct']:5.1f}%, "
                  f"worst {s['max_abs_error_pct']:5.1f}%")
    for label, fit in result.get("fit", {}).items():
        f = fit["factors"]
        print(f"launch costs {label} (all models): {f['step_overhead_s'] * 1e3:.2f} ms per step + "
              f"{f['layer_overhead_s'] * 1e6:.0f} us per layer"
              + (" (at the edge of the fit's grid: the data want more)" if f.get("at_grid_edge") else ""))


def add_fits(result: dict, hw) -> None:
    """Fit the launch costs to the result's samples and summarise prediction errors (in place)."""
    from optiplan.planner.measure.calibrate_gpu import kernel_seconds

    if not result["samples"]:
        return
    result["fit"] = launch_fits(result["samples"], kernel_seconds(result["samples"], hw, result["dtype"]))
    for label, fit in result["fit"].items():
        result["summary"][f"{label}_all"] = summary(fit["points"])
        if fit["held_out"]:
            result["summary"][f"{label}_held_out"] = summary(fit["held_out"])


def refit(paths: list[Path], write_accuracy: bool = False, fitted_on: str | None = None) -> None:
    """Saved runs against today's defaults, and the launch costs fitted again to each (no GPU needed). With
    `write_accuracy`, the errors over all the runs become the band reports show for eager transformers on a GPU:
    today's prediction's, except on the run the defaults were fitted to (`fitted_on`, a file name), whose timings
    count with each model held out of the fit (memory is not fitted: today's errors)."""
    from optiplan.planner.analytic.accuracy import EAGER_GPU_ACCURACY_FILE
    from optiplan.planner.catalog.hardware import resolve_hardware

    timing, memory = [], []
    for path in paths:
        result = json.loads(path.read_text())
        hw_id = catalog_id(result)
        today = predicted_rows(result["rows"], hw_id, result["dtype"])
        result["summary"] = {"as_measured": summary(result["rows"]), "today": summary(today)}
        add_fits(result, resolve_hardware(hw_id))
        held = result.get("fit", {}).get("overlapped", {}).get("held_out", [])
        timing += held if path.name == fitted_on and held else today
        memory += [abs(r["memory_error_pct"]) for r in today if "memory_error_pct" in r]
        print(f"{path}: {result['device']} ({hw_id}), {len(result['rows'])} points")
        report(result)
    if write_accuracy:
        figures = {}
        for figure, category in (("tpot_ms", "decode"), ("ttft_ms", "prefill"), ("memory_bytes", "memory")):
            errors = memory if category == "memory" else [abs(r["error_pct"]) for r in timing if r["kind"] == category]
            if errors:
                figures[figure] = {"category": f"transformers-gpu-{category}",
                                   **{k: round(v, 1) if k != "points" else v for k, v in error_stats(errors).items()}}
        names = ", ".join(p.name + (" (held out by model)" if p.name == fitted_on else "") for p in paths)
        EAGER_GPU_ACCURACY_FILE.write_text(
            "# Eager transformers on a GPU: the analytic model's absolute error against our own GPU runs (H200s), by\n"
            "# figure; reports show the median as the band. Written by `python benchmarks/gpu/bench_transformers_cuda.py\n"
            "# --refit benchmarks/gpu/measured/*.json --fitted-on h200-transformers.json --write-accuracy`; do not edit\n"
            "# by hand.\n"
            + yaml.safe_dump({"source": f"benchmarks/gpu/bench_transformers_cuda.py on {names}", "figures": figures},
                             sort_keys=False))
        print(f"wrote {EAGER_GPU_ACCURACY_FILE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(GPU_MODELS))
    parser.add_argument("--budget-s", type=float, default=60.0, help="build no model after this many seconds")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--batches", default=",".join(map(str, GPU_BATCHES)))
    parser.add_argument("--prompts", default=",".join(map(str, GPU_PROMPTS)))
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "results" / "gpu_transformers.json")
    parser.add_argument("--refit", type=Path, nargs="+", metavar="JSON",
                        help="measure nothing: compare saved runs with today's prediction and fit them again")
    parser.add_argument("--fitted-on", metavar="NAME",
                        help="with --refit: the saved run (file name) the shipped launch costs were fitted to; its "
                             "timings count held out by model in --write-accuracy")
    parser.add_argument("--write-accuracy", action="store_true",
                        help="with --refit: store today's errors over the runs as the band of eager transformers on "
                             "a GPU (profiles/transformers_gpu_accuracy.yaml)")
    args = parser.parse_args()
    if args.refit:
        missing = [str(path) for path in args.refit if not path.is_file()]
        if missing:
            parser.error(f"no saved run at {', '.join(missing)} (benchmarks/gpu/measured/ holds the kept ones)")
        return refit(args.refit, args.write_accuracy, args.fitted_on)
    if args.write_accuracy or args.fitted_on:
        parser.error("--write-accuracy and --fitted-on go with --refit")

    import torch
    import transformers
    from optiplan.planner.catalog.hardware import local_hardware

    device = "cuda" if torch.cuda.is_available() else "cpu"
    start = time.perf_counter()
    hw = local_hardware()
    measured_ceilings = ceilings(device)
    print(f"{hw.name}: bf16 matmul {measured_ceilings['bf16_matmul_tflops']:.0f} TFLOP/s, copy "
          f"{measured_ceilings['copy_bytes_per_s'] / 1e12:.2f} TB/s", flush=True)
    rows, all_samples, builds, skipped = measure_models(
        args.models.split(","), args.dtype, device, args.repeats, hw, [int(b) for b in args.batches.split(",")],
        [int(p) for p in args.prompts.split(",")], args.budget_s)
    for r in rows:
        mem = (f"  peak {r['measured_peak_bytes'] / 2**30:6.2f} GiB predicted "
               f"{r['predicted_peak_bytes'] / 2**30:6.2f} ({r['memory_error_pct']:+.1f}%)"
               if "memory_error_pct" in r else "")
        print(f"{r['model']:16s} {r['kind']:8s} batch {r['batch']:3d} prompt {r['prompt']:5d}  measured "
              f"{r['measured_ms']:9.2f} ms  predicted {r['predicted_ms']:9.2f} ms  error {r['error_pct']:+6.1f}%"
              f"{mem}", flush=True)
    result = {"device": torch.cuda.get_device_name() if device == "cuda" else hw.name, "hardware": hw.name,
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
              "dtype": args.dtype, "ceilings": measured_ceilings, "build_seconds": builds, "rows": rows,
              "summary": {"as_measured": summary(rows)}, "samples": all_samples, "skipped": skipped}
    add_fits(result, hw)
    result["seconds"] = time.perf_counter() - start
    report(result)
    for line in skipped:
        print(f"skipped: {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
