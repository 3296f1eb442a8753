"""The analytic model against transformers on this machine's GPU (issue 14): random-weight models of 1B-8B
shapes from the catalog, bf16, batch 1 and 16, prompts of 128 and 2,048 tokens, each point measured (prefill, one
decode step at the context, peak memory) and predicted for `--hardware local --engine transformers`, side by
side. Prints the table and the median error per step kind, writes benchmarks/results/gpu_transformers.json.

Made for one H200 within a time budget: models are built once each (random weights at full size, saved as bf16)
and every point of a model is timed in interleaved rounds in this process; a model that would overrun the budget is
skipped and said so. On a CPU machine `--models` with a small folder (e.g. tests/assets/models/target) and
`--dtype fp32` runs the same code path.

    python benchmarks/gpu/bench_transformers_cuda.py [--models llama-3.2-1b,llama-3.2-3b,llama-3.1-8b]
        [--budget-s 420] [--repeats 3] [--dtype bf16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import write_results  # noqa: E402

BATCHES = (1, 16)
PROMPTS = (128, 2048)
DECODE_TOKENS = 64  # the decode step is timed at prompt + this many tokens of context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="llama-3.2-1b,llama-3.2-3b,llama-3.1-8b")
    parser.add_argument("--budget-s", type=float, default=420.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="bf16")
    args = parser.parse_args()

    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.measure.profile import measure_profile
    from optiplan.planner.schema import ProfileRequest

    start = time.perf_counter()
    rows, skipped = [], []
    for model in args.models.split(","):
        for batch in BATCHES:
            for prompt in PROMPTS:
                spent = time.perf_counter() - start
                if spent > args.budget_s:
                    skipped.append(f"{model} batch {batch} prompt {prompt}: over the {args.budget_s:.0f} s budget")
                    continue
                request = ProfileRequest(model=model, hardware="local", engine="transformers", dtype=args.dtype,
                                         attention="sdpa", batch=batch, prompt_tokens=prompt,
                                         context=prompt + DECODE_TOKENS)
                try:
                    predicted = profile(request)
                    result = measure_profile(request, predicted, repeats=args.repeats, show_progress=False)
                except Exception as exc:  # a point that cannot run here (memory, a missing kernel) is reported
                    skipped.append(f"{model} batch {batch} prompt {prompt}: {str(exc).splitlines()[0]}")
                    continue
                for point in result.measured.points:
                    if point.kind == "peak":
                        continue
                    rows.append({"model": model, "device": result.measured.device, "kind": point.kind,
                                 "batch": batch, "prompt": prompt, "measured_ms": point.measured * 1e3,
                                 "predicted_ms": point.predicted * 1e3, "error_pct": point.error_pct})
                    print(f"{model:16s} {point.kind:8s} batch {batch:3d} prompt {prompt:5d}  measured "
                          f"{point.measured * 1e3:9.2f} ms  predicted {point.predicted * 1e3:9.2f} ms  "
                          f"error {point.error_pct:+6.1f}%", flush=True)
    summary = {}
    for kind in ("prefill", "decode"):
        errors = sorted(abs(r["error_pct"]) for r in rows if r["kind"] == kind)
        if errors:
            summary[kind] = {"points": len(errors), "median_abs_error_pct": statistics.median(errors),
                             "max_abs_error_pct": errors[-1]}
            print(f"{kind}: {len(errors)} points, median absolute error {summary[kind]['median_abs_error_pct']:.1f}%, "
                  f"worst {errors[-1]:.1f}%")
    for line in skipped:
        print(f"skipped: {line}")
    write_results("gpu_transformers", {"rows": rows, "summary": summary, "skipped": skipped,
                                       "seconds": time.perf_counter() - start})


if __name__ == "__main__":
    main()
