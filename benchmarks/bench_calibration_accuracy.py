"""Prediction accuracy after calibration (issue 4 goal: median absolute error at most 15% for decode
step and prefill time, at most 5% for peak memory), with transformers on this CPU.

Calibrates on `optiplan calibrate`'s default shapes, then predicts and measures held-out shapes (other
hidden sizes, depths, batch sizes and contexts); all models are timed together in interleaved rounds.
Models are Llama-architecture with random weights (time and memory do not depend on the weights'
values). Prints the table and writes benchmarks/results/calibration_accuracy.json.

    python benchmarks/bench_calibration_accuracy.py [--repeats 11]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _common import write_results

HELD_OUT = ((384, 4), (512, 6), (192, 12), (768, 3))
FIT_PREFILLS = ((1, 32), (1, 128), (1, 512))
FIT_DECODES = ((1, 64), (2, 512), (4, 64), (8, 512))
HELD_PREFILLS = ((1, 64), (1, 256), (4, 128))
HELD_DECODES = ((1, 128), (2, 256), (8, 128), (8, 512))


def main() -> None:
    from optiplan.planner.machine.probe import estimated_cpu
    from optiplan.planner.measure.calibrate import (
        DEFAULT_SHAPES,
        calibration_setup,
        fit_factors,
        microbenchmarks,
        predict_peak_bytes,
        predict_seconds,
        random_model,
        samples,
    )
    from optiplan.planner.measure.timing import measure_models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()

    bench = microbenchmarks("cpu")
    hw = estimated_cpu().model_copy(update={"peak_tflops": bench["peak_tflops"],
                                             "memory_bandwidth_bytes_per_s": bench["bandwidth_bytes_per_s"],
                                             "runtime_overhead_bytes": bench["runtime_overhead_bytes"]})
    print(f"machine: fp32 {bench['peak_tflops']['fp32'] * 1e3:,.0f} GFLOP/s, "
          f"copy {bench['bandwidth_bytes_per_s'] / 1e9:,.1f} GB/s, runtime {bench['runtime_overhead_bytes'] / 1e6:,.0f} MB, matmul at half rate at "
          f"{bench['matmul_half_tokens']:.0f} rows")
    fit_samples, held_samples, memory_rows = [], [], []
    with tempfile.TemporaryDirectory(prefix="optiplan-accuracy-") as tmp:
        jobs, groups = [], []
        for group, shapes, prefills, decodes in (("fit", DEFAULT_SHAPES, FIT_PREFILLS, FIT_DECODES),
                                                 ("held-out", HELD_OUT, HELD_PREFILLS, HELD_DECODES)):
            for hidden, layers in shapes:
                jobs.append((random_model(Path(tmp) / f"llama-h{hidden}-l{layers}", hidden, layers), prefills, decodes))
                groups.append(group)
        # all models timed together in interleaved rounds, as calibrate does with its own
        measurements = measure_models(jobs, dtype="fp32", device="cpu", repeats=args.repeats, memory=True)
        for (path, _, _), group, m in zip(jobs, groups, measurements):
            setup = calibration_setup(path, "fp32", hw)
            (fit_samples if group == "fit" else held_samples).extend(samples(m, setup))
            peak = next(p for p in m.points if p.kind == "peak")
            predicted = predict_peak_bytes(setup, peak.batch, peak.tokens)
            memory_rows.append({"model": path.name, "group": group, "measured_bytes": peak.peak_memory_bytes,
                                "predicted_bytes": predicted,
                                "error_pct": 100 * (predicted - peak.peak_memory_bytes) / peak.peak_memory_bytes})
    factors = fit_factors(fit_samples, bench["matmul_half_tokens"])
    rows = []
    for s in held_samples:
        pred = predict_seconds(s, factors)
        rows.append({"model": Path(s["model"]).name, "kind": s["kind"], "batch": s["batch"], "tokens": s["tokens"],
                     "measured_ms": s["seconds"] * 1e3, "predicted_ms": pred * 1e3,
                     "error_pct": 100 * (pred - s["seconds"]) / s["seconds"]})
    print(f"\nfitted on {len(fit_samples)} steps of {len(DEFAULT_SHAPES)} models: {factors}")
    print(f"{'model':18s} {'step':8s} {'batch':>5s} {'tokens':>6s} {'measured ms':>12s} {'predicted ms':>12s} {'error':>7s}")
    for r in rows:
        print(f"{r['model']:18s} {r['kind']:8s} {r['batch']:5d} {r['tokens']:6d} {r['measured_ms']:12.2f} "
              f"{r['predicted_ms']:12.2f} {r['error_pct']:+6.1f}%")
    print(f"\n{'model':18s} {'group':9s} {'measured MB':>12s} {'predicted MB':>12s} {'error':>7s}")
    for r in memory_rows:
        print(f"{r['model']:18s} {r['group']:9s} {r['measured_bytes'] / 1e6:12.1f} {r['predicted_bytes'] / 1e6:12.1f} "
              f"{r['error_pct']:+6.1f}%")
    summary = {kind: statistics.median(abs(r["error_pct"]) for r in rows if r["kind"] == kind)
               for kind in ("decode", "prefill")}
    summary["peak_memory"] = statistics.median(abs(r["error_pct"]) for r in memory_rows)
    print(f"\nmedian absolute error on held-out shapes: decode {summary['decode']:.1f}% (goal <= 15%), prefill "
          f"{summary['prefill']:.1f}% (goal <= 15%), peak memory {summary['peak_memory']:.1f}% (goal <= 5%)")
    write_results("calibration_accuracy", {"machine": bench, "factors": factors, "held_out": rows,
                                           "memory": memory_rows, "median_abs_error_pct": summary,
                                           "samples": {"fit": fit_samples, "held_out": held_samples}})


if __name__ == "__main__":
    main()
