"""The analytic model against transformers on this machine's GPU, and the transformers engine calibrated there
(issue 14): random-weight models of 1B-8B shapes from the catalog, bf16, batch 1 and 16, prompts of 128 and 2,048
tokens. Each point (prefill, one decode step at the context, peak memory) is measured and predicted for
`--hardware local --engine transformers` side by side; then the engine's factors are fitted to the measured steps
(`optiplan calibrate`'s fit), each model held out in turn, so the fitted figures are judged on a model they never
saw. Prints the table and the errors per step kind, writes the JSON to `--out`.

Made for one H200 within a time budget: each model is built once, with random weights, directly on the GPU (no
save and reload); then the points of all models are timed together in interleaved rounds in this process
(`measure.time_loaded`, the timing of `optiplan profile --measure` and `optiplan calibrate`), so that a slow spell
of the host falls on every model alike; each peak is read from the CUDA allocator. A model not built within the
budget is skipped and said so. On a CPU machine `--models` with a config file (e.g. tests/assets/models/target/config.json)
and `--dtype fp32` runs the same code path.

    python benchmarks/gpu/bench_transformers_cuda.py [--models llama-3.2-1b,llama-3.2-3b,llama-3.1-8b]
        [--budget-s 60] [--repeats 5] [--dtype bf16] [--batches 1,16] [--prompts 128,2048] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

BATCHES = (1, 16)
PROMPTS = (128, 2048)
DECODE_TOKENS = 64  # the decode step is timed at prompt + this many tokens of context
PEAK_DECODE_STEPS = 4  # the peak is read over a prefill and this many decode steps, as `profile --measure` does


def ceilings(device: str) -> dict[str, float]:
    """The two ceilings measured here: a large bf16 matrix product and a large device copy (read + write)."""
    from optiplan.planner.measure.microbench import copy_bandwidth, matmul_tflops

    big = device == "cuda"
    return {"bf16_matmul_tflops": matmul_tflops("bf16", n=8192 if big else 512, device=device),
            "copy_bytes_per_s": copy_bandwidth(megabytes=4096 if big else 64, device=device)}


def peak_bytes(model, device: str, batch: int, prompt: int) -> int:
    """This model's peak over one prefill of (batch, prompt) and a few decode steps, from the CUDA allocator: its
    weights plus what the run allocated beyond everything resident before it (the other models, built alongside)."""
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


def measure_models(names: list[str], dtype: str, device: str, repeats: int, hw, batches=BATCHES, prompts=PROMPTS,
                   budget_s: float = float("inf")):
    """Rows (measured beside predicted), fit samples and build seconds of catalog models, all built first and timed
    together in interleaved rounds (a slow spell of the host falls on every model alike, as `optiplan calibrate`
    does); the names not built within `budget_s`, with the reason."""
    from optiplan.planner.measure.models import catalog_random_model
    from optiplan.planner.measure.timing import time_loaded

    start = time.perf_counter()
    models, builds, skipped = {}, {}, []
    for name in names:
        if time.perf_counter() - start > budget_s:
            skipped.append(f"{name}: over the {budget_s:.0f} s budget")
            continue
        try:
            built = time.perf_counter()
            models[name] = catalog_random_model(name, dtype, device)
            builds[name] = time.perf_counter() - built
        except Exception as exc:  # a model that cannot be built here (memory, an unknown type) is reported
            skipped.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    prefills = [(b, p) for b in batches for p in prompts]
    decodes = [(b, p + DECODE_TOKENS) for b, p in prefills]
    timed = time_loaded([(model, prefills, decodes) for model in models.values()], device, repeats)
    rows, all_samples = [], []
    for (name, model), points in zip(models.items(), timed):
        peaks = {(b, p): peak_bytes(model, device, b, p) for b, p in prefills}
        new, fit_samples = compare(name, dtype, hw, points, peaks)
        rows += new
        all_samples += fit_samples
    return rows, all_samples, builds, skipped


def compare(name: str, dtype: str, hw, points, peaks: dict) -> tuple[list[dict], list[dict]]:
    """Each measured point of a model beside the prediction, and the points as fit samples."""
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.measure.calibrate import calibration_setup
    from optiplan.planner.measure.fit import samples
    from optiplan.planner.measure.timing import Measurement
    from optiplan.planner.schema import ProfileRequest

    rows = []
    for point in points:
        prompt = point.tokens if point.kind == "prefill" else point.tokens - DECODE_TOKENS
        predicted = profile(ProfileRequest(model=name, hardware="local", engine="transformers", dtype=dtype,
                                           attention="sdpa", batch=point.batch, prompt_tokens=prompt,
                                           context=prompt + DECODE_TOKENS))
        pred_s = (predicted.latency.ttft_ms if point.kind == "prefill" else predicted.latency.tpot_ms) / 1e3
        row = {"model": name, "kind": point.kind, "batch": point.batch, "prompt": prompt, "tokens": point.tokens,
               "measured_ms": point.median_s * 1e3, "spread_ms": point.spread_s * 1e3, "predicted_ms": pred_s * 1e3,
               "error_pct": 100 * (pred_s - point.median_s) / point.median_s}
        peak = peaks.get((point.batch, prompt)) if point.kind == "prefill" else None
        if peak:
            mem = predicted.memory
            pred_bytes = mem.per_device_bytes - mem.runtime_overhead_bytes  # the allocator sees no CUDA context
            row.update(measured_peak_bytes=peak, predicted_peak_bytes=pred_bytes,
                       memory_error_pct=100 * (pred_bytes - peak) / peak)
        rows.append(row)
    device = "cuda" if peaks and any(peaks.values()) else "cpu"
    measurement = Measurement(model=name, device=device, dtype=dtype, points=points)
    return rows, samples(measurement, calibration_setup(name, dtype, hw))


def held_out(all_samples: list[dict], half_tokens: float) -> dict:
    """The engine's factors fitted on all models, and on all but one with the one left out predicted."""
    from optiplan.planner.measure.fit import fit_and_report, fit_factors, predict_seconds

    models = sorted({s["model"] for s in all_samples})
    report = {"all": fit_and_report(all_samples, half_tokens), "held_out": []}
    if len(models) < 2:
        return report
    for left in models:
        factors = fit_factors([s for s in all_samples if s["model"] != left], half_tokens)
        for s in all_samples:
            if s["model"] == left:
                pred = predict_seconds(s, factors)
                report["held_out"].append({"model": left, "kind": s["kind"], "batch": s["batch"],
                                           "tokens": s["tokens"], "measured_s": s["seconds"], "predicted_s": pred,
                                           "error_pct": 100 * (pred - s["seconds"]) / s["seconds"],
                                           "factors": factors})
    return report


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="llama-3.2-1b,llama-3.2-3b,llama-3.1-8b")
    parser.add_argument("--budget-s", type=float, default=60.0, help="build no model after this many seconds")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--prompts", default=",".join(map(str, PROMPTS)))
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "results" / "gpu_transformers.json")
    args = parser.parse_args()

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
    half = local_hardware_half_tokens(hw, args.dtype)
    fitted = held_out(all_samples, half) if all_samples else {}
    result = {"device": torch.cuda.get_device_name() if device == "cuda" else hw.name, "hardware": hw.name,
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
              "dtype": args.dtype, "ceilings": measured_ceilings, "build_seconds": builds, "rows": rows,
              "summary": {"shipped": summary(rows)}, "samples": all_samples, "fit": fitted, "skipped": skipped,
              "seconds": time.perf_counter() - start}
    if fitted:
        result["summary"]["fitted_all"] = summary(fitted["all"]["points"])
        result["summary"]["fitted_held_out"] = summary(fitted["held_out"]) if fitted["held_out"] else {}
    for label, figures in result["summary"].items():
        for kind, s in figures.items():
            print(f"{label:16s} {kind:8s} {s['points']:2d} points: median |error| {s['median_abs_error_pct']:5.1f}%, "
                  f"worst {s['max_abs_error_pct']:5.1f}%")
    if fitted:
        f = fitted["all"]["factors"]
        print(f"fitted (all models): flop efficiency {f['flop_efficiency']:.3f}, bandwidth efficiency "
              f"{f['bandwidth_efficiency']:.3f}, step {f['step_overhead_s'] * 1e3:.3f} ms, per layer "
              f"{f['layer_overhead_s'] * 1e6:.1f} us")
    for line in skipped:
        print(f"skipped: {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} ({time.perf_counter() - start:.0f} s)")


def local_hardware_half_tokens(hw, dtype: str) -> float:
    """The matmul rows at half efficiency the shipped defaults give this device (the fit keeps it: the GPU run
    has too few shapes to pin it down)."""
    from optiplan.planner.analytic.efficiency import default_efficiency

    return default_efficiency(hw, dtype, dtype, "transformers").matmul_half_tokens


if __name__ == "__main__":
    sys.exit(main())
