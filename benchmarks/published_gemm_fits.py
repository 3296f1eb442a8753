"""A kernel's GEMM rate per streaming multiprocessor (`gemm_unit_tflops` under a weight format in an engine profile's
kernels) fitted to the engine's published prompt-processing points on CUDA GPUs: two thirds of the points fitted, a
fixed third held out (`published_points.held_out`). llama.cpp's quantized GEMMs reach much less of a data-centre
GPU's tensor peak than of a GeForce card's: their rate follows the GPU's SMs, not its peak."""

from __future__ import annotations

import itertools
import sys
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from optiplan.planner.catalog.engines import engine_table  # noqa: E402
from optiplan.planner.catalog.hardware import resolve_hardware  # noqa: E402
from published_points import (  # noqa: E402
    best_fit,
    part_errors,
    parts_text,
    point_dtype,
    rounded_stats,
    table_overrides,
)

# TFLOP/s per SM the fit searches: the quantized GEMMs' (MMQ, or dequantization into FP16 cuBLAS) and the 16-bit
# GEMMs' (cuBLAS)
UNIT_GRID = tuple(round(0.30 + 0.02 * i, 2) for i in range(66))
UNIT_GRID_16BIT = tuple(round(0.80 + 0.05 * i, 2) for i in range(25))
QUANTIZED = ("int4", "int8")
SIXTEEN_BIT = ("fp16", "bf16")


def gemm_points(points: list[dict], engine: str) -> list[dict]:
    """The engine's prompt-processing points with quantized or 16-bit weights on a CUDA GPU of known SM count."""
    def on_cuda(p):
        hw = resolve_hardware(p["hardware"])
        return hw.features.backend == "cuda" and hw.compute_units is not None
    return [p for p in points if p["engine"] == engine and p["metric"] == "prefill_tokens_per_s"
            and point_dtype(p) in QUANTIZED + SIXTEEN_BIT and on_cuda(p)]


def unit_rates(engine: str, rates: tuple[float | None, float | None]) -> ExitStack:
    """The engine's quantized and 16-bit kernels' `gemm_unit_tflops` on CUDA set to `rates` (None: removed) while the
    returned stack is open."""
    kernels = engine_table()[engine]["kernels"]
    stack = ExitStack()
    for formats, rate in ((QUANTIZED, rates[0]), (SIXTEEN_BIT, rates[1])):
        for fmt in formats:
            stack.enter_context(table_overrides(kernels[fmt], {"gemm_unit_tflops": None if rate is None
                                                               else {"cuda": rate}}))
    return stack


def documented_rates(engine: str) -> tuple[float | None, float | None]:
    kernels = engine_table()[engine]["kernels"]
    return tuple((kernels[formats[0]].get("gemm_unit_tflops") or {}).get("cuda") for formats in (QUANTIZED, SIXTEEN_BIT))


def fit_gemm_units(points: list[dict], engine: str = "llama.cpp") -> dict:
    """The TFLOP/s per SM of `engine`'s quantized and 16-bit GEMMs on CUDA that minimise the median error, then the
    p90, of its prompt-processing points in the fitted two thirds; errors on both parts with no such bound, with the
    documented ones and with the fitted ones."""
    own = gemm_points(points, engine)
    documented = documented_rates(engine)

    def errors(x, part):
        with unit_rates(engine, x):
            return part_errors(own, part)

    print(f"searching {len(UNIT_GRID) * len(UNIT_GRID_16BIT)} candidates on {len(own)} points", file=sys.stderr,
          flush=True)
    best = best_fit(list(itertools.product(UNIT_GRID, UNIT_GRID_16BIT)), errors,
                    lambda x: (abs(x[0] - (documented[0] or x[0])), -x[1]))
    report = {name: {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")}
              | {"gemm_unit_tflops": x[0], "gemm_unit_tflops_16bit": x[1]}
              for name, x in (("none", (None, None)), ("documented", documented), ("fitted", best))}
    for name, r in report.items():
        rates = "none" if r["gemm_unit_tflops"] is None else (
            f"{r['gemm_unit_tflops']:.2f} (quantized) and {r['gemm_unit_tflops_16bit'] or 0:.2f} (16-bit) TFLOP/s "
            "per SM")
        print(f"{name:10s} {engine} GEMMs on CUDA at {rates}: " + parts_text(r, ("fitted", "held-out")))
    return report
