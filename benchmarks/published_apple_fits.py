"""The Apple device kind's factors (profiles/efficiency.yaml `device_kinds.apple` and the serving runtime's `apple`
costs) fitted to llama.cpp's published runs on Apple Silicon: two thirds of the points fitted, a fixed third held out
(`published_points.held_out`)."""

from __future__ import annotations

import itertools
import sys
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from optiplan import profiles  # noqa: E402
from optiplan.planner.catalog.hardware import resolve_hardware  # noqa: E402
from published_points import (  # noqa: E402
    best_fit,
    part_errors,
    parts_text,
    point_dtype,
    rounded_stats,
    table_overrides,
)

# what the decode fit searches: the share of the peak bandwidth at which Metal's mat-vecs read 16-bit weights and
# 4-bit GGUF blocks (Q4_0, Q4_K_M), and the fixed host time per token and per layer of a llama.cpp step on Metal (it
# encodes each token's graph into command buffers on the CPU, node by node)
BANDWIDTH_16BIT_GRID = tuple(round(0.55 + 0.05 * i, 2) for i in range(9))
BANDWIDTH_INT4_GRID = tuple(round(0.45 + 0.05 * i, 2) for i in range(10))
STEP_GRID = (0.0, 0.001)
LAYER_GRID = tuple(round(0.000025 * i, 6) for i in range(11))
# the prefill fit: the share of the GPU's 16-bit (= fp32) ALU peak a prompt's matmuls reach
FLOP_GRID = tuple(round(0.40 + 0.05 * i, 2) for i in range(13))
SIXTEEN_BIT = ("fp16", "bf16", "fp32")


def apple_points(points: list[dict], metric: str) -> list[dict]:
    """The points of `metric` run on an Apple GPU."""
    return [p for p in points if p["metric"] == metric and resolve_hardware(p["hardware"]).kind == "apple"]


def apple_factors(bw16: float, bw4: float, step_s: float, layer_s: float, flop: float | None = None) -> ExitStack:
    """The Apple kind's shares and the serving runtime's Apple costs set while the returned stack is open."""
    table = profiles.efficiency_table()
    kind = table["device_kinds"]["apple"]
    stack = ExitStack()
    stack.enter_context(table_overrides(kind["bandwidth_efficiency"], dict.fromkeys(SIXTEEN_BIT, bw16) | {"int4": bw4}))
    if flop is not None:
        stack.enter_context(table_overrides(kind["flop_efficiency"], dict.fromkeys(SIXTEEN_BIT, flop)))
    runtime = table["runtimes"]["serving"]
    stack.enter_context(table_overrides(runtime, {"apple": {"step_overhead_s": step_s, "layer_overhead_s": layer_s}}))
    return stack


def documented_apple() -> tuple[float, float, float, float, float]:
    """(16-bit share, int4 share, step s, layer s, 16-bit flop share) as profiles/efficiency.yaml has them."""
    table = profiles.efficiency_table()
    kind = table["device_kinds"]["apple"]
    runtime = table["runtimes"]["serving"]
    costs = runtime.get("apple", runtime["default"])
    return (kind["bandwidth_efficiency"]["fp16"], kind["bandwidth_efficiency"]["int4"], costs["step_overhead_s"],
            costs["layer_overhead_s"], kind["flop_efficiency"]["fp16"])


def fit_apple(points: list[dict]) -> dict:
    """The Apple factors that minimise the median error, then the p90, of the fitted two thirds: first the decode
    shares and costs on the batch-1 decode points, then the 16-bit flop share on the prompt-processing points with
    them; errors on both parts for the documented factors and the fitted ones."""
    decode = apple_points(points, "decode_tokens_per_s")
    prefill = apple_points(points, "prefill_tokens_per_s")
    documented = documented_apple()
    formats = {point_dtype(p) for p in decode}
    print(f"{len(decode)} decode points ({', '.join(sorted(formats))}), {len(prefill)} prompt-processing points")

    def decode_errors(x, part):
        with apple_factors(*x[:4]):
            return part_errors(decode, part)

    grid = list(itertools.product(BANDWIDTH_16BIT_GRID, BANDWIDTH_INT4_GRID, STEP_GRID, LAYER_GRID))
    best = best_fit(grid, decode_errors, lambda x: sum(abs(a - b) for a, b in zip(x, documented)))

    def prefill_errors(flop, part):
        with apple_factors(*best, flop=flop):
            return part_errors(prefill, part)

    flop = best_fit(list(FLOP_GRID), prefill_errors, lambda x: abs(x - documented[4]))
    fitted = (*best, flop)

    def everything(x, part):
        with apple_factors(*x):
            return part_errors(decode + prefill, part)

    def prefill_at(x, part):
        with apple_factors(*x):
            return part_errors(prefill, part)

    report = {}
    for name, x in (("documented", documented), ("fitted", fitted)):
        report[name] = {"factors": dict(zip(("bandwidth_16bit", "bandwidth_int4", "step_overhead_s",
                                             "layer_overhead_s", "flop_16bit"), x))}
        for label, errs in (("decode", decode_errors), ("prefill", prefill_at), ("all", everything)):
            for part in ("fitted", "held-out"):
                report[name][f"{label}-{part}"] = rounded_stats(errs(x, part))
        print(f"{name:10s} " + ", ".join(f"{k} {v:g}" for k, v in report[name]["factors"].items()))
        print("           " + parts_text(report[name], tuple(f"{label}-{part}" for label in ("decode", "prefill", "all")
                                                             for part in ("fitted", "held-out"))))

    return report
