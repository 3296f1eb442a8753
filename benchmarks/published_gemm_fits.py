"""llama.cpp's prompt GEMMs on CUDA GPUs fitted to its published prompt-processing points, two thirds of the points
fitted, a fixed third held out (`published_points.held_out`): its cuBLAS GEMMs' share of their peak (`gemm_share`,
the peak at fp16 accumulation where the kernel accumulates so) and their bound per streaming multiprocessor
(`gemm_unit_tflops`), which the profile's 16-bit formats state and its quantized ones share (before b3216 their
prompts ran cuBLAS on weights converted to fp16; MMQ since, priced as it). The fit takes the points that ran cuBLAS;
those that ran MMQ are reported beside them."""

from __future__ import annotations

import itertools
import sys
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from optiplan.planner.analytic.engine_rates import dequantize_pass  # noqa: E402
from optiplan.planner.catalog.engines import engine_profile, engine_table  # noqa: E402
from optiplan.planner.catalog.hardware import resolve_hardware  # noqa: E402
from published_points import (  # noqa: E402
    best_fit,
    part_errors,
    parts_text,
    point_dtype,
    point_engine,
    rounded_stats,
    table_overrides,
)

# the cuBLAS GEMMs' share of their peak and TFLOP/s per SM that the fit searches
SHARE_GRID = tuple(round(0.30 + 0.02 * i, 2) for i in range(26))
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


def runs_cublas(p: dict) -> bool:
    """Whether the point's prompt ran the cuBLAS GEMM: 16-bit weights, or quantized ones on a build that converted
    them for it (`gemm_dequantize`), as against MMQ."""
    dtype = point_dtype(p)
    return dtype in SIXTEEN_BIT or dequantize_pass(point_engine(p), dtype, resolve_hardware(p["hardware"])) is not None


def check_aliases(engine: str) -> None:
    """Every kernel entry of the profile, and of its `versions` rules, that states the cuBLAS GEMM's share or bound
    holds the fp16 entry's very mappings (YAML aliases), through which `cublas_rates` varies them all: one that wrote
    the figures out would silently stay put while the fit moved the rest."""
    profile = engine_table()[engine]
    fp16 = profile["kernels"]["fp16"]
    for entries in (profile["kernels"], *(r["kernels"] for r in profile.get("versions") or () if "kernels" in r)):
        for fmt, entry in entries.items():
            for key in ("gemm_share", "gemm_unit_tflops"):
                if key in entry and entry[key] is not fp16[key]:
                    raise ValueError(f"{engine}'s {fmt} kernel states its own {key}, not the fp16 entry's alias "
                                     "(*cublas_share, *cublas_unit): the fit would not vary it")


def cublas_rates(engine: str, x: tuple[float, float] | None) -> ExitStack:
    """The cuBLAS GEMMs' share and bound per SM (`x`; None: neither) while the returned stack is open: set in the
    profile's fp16 entry's mappings, which its other cuBLAS entries (bf16, the pre-b3216 quantized ones) share."""
    fp16 = engine_table()[engine]["kernels"]["fp16"]
    stack = ExitStack()
    for key, value in zip(("gemm_share", "gemm_unit_tflops"), x or (None, None)):
        stack.enter_context(table_overrides(fp16[key], {"cuda": value}))
    return stack


def fit_gemm_units(points: list[dict], engine: str = "llama.cpp") -> dict:
    """The cuBLAS GEMMs' share and bound per SM that minimise the median error, then the p90, of the engine's
    prompt-processing points that ran them, in the fitted two thirds. Errors on both parts (and on the points that ran
    MMQ) without them, with the documented values and with the fitted ones."""
    check_aliases(engine)
    own = gemm_points(points, engine)
    cublas, mmq = [p for p in own if runs_cublas(p)], [p for p in own if not runs_cublas(p)]
    kernels = engine_profile(engine)["kernels"]
    documented = (kernels["fp16"]["gemm_share"]["cuda"], kernels["fp16"]["gemm_unit_tflops"]["cuda"])

    def errors(x, part):
        with cublas_rates(engine, x):
            return part_errors(cublas, part)

    print(f"searching {len(SHARE_GRID) * len(UNIT_GRID_16BIT)} candidates on {len(cublas)} cuBLAS points "
          f"({len(mmq)} MMQ points beside them)", file=sys.stderr, flush=True)
    best = best_fit(list(itertools.product(SHARE_GRID, UNIT_GRID_16BIT)), errors,
                    lambda x: (abs(x[0] - documented[0]), abs(x[1] - documented[1])))
    report = {name: {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")}
              | {"gemm_share": x and x[0], "gemm_unit_tflops_16bit": x and x[1]}
              for name, x in (("none", None), ("documented", documented), ("fitted", best))}
    for name, r in report.items():
        rates = "the documented efficiency, unbounded" if r["gemm_share"] is None else (
            f"{r['gemm_share']:.2f} of their peak, at most {r['gemm_unit_tflops_16bit']:.2f} TFLOP/s per SM")
        print(f"{name:10s} {engine}'s cuBLAS GEMMs at {rates}: " + parts_text(r, ("fitted", "held-out")))
    for name, x in (("documented", documented), ("fitted", best)) if mmq else ():
        with cublas_rates(engine, x):
            errs = {part: part_errors(mmq, part) for part in ("fitted", "held-out")}
        r = report[f"mmq at {name}"] = {part: rounded_stats(e) for part, e in errs.items() if e}
        print(f"{name:10s} the MMQ points, priced as those GEMMs: " + parts_text(r, tuple(r)))
    return report
