"""Speculative decoding's step model against published measurements.

EAGLE-3 (arXiv 2503.01840, SGLang v0.4.4 on one H100, Llama-3.1-8B-Instruct, MT-bench, a chain of 3 proposals):
158.34 -> 373.25 tokens/s at batch 1 (2.36x) and 1.38x the throughput at batch 64. The acceptance the planner uses
(`EAGLE3_ACCEPTANCE` in planner/plan/techniques/speculative.py) is solved here from the batch-1 point with the same
step model the plan search uses (SGLang-like: CUDA graphs, paged KV, flash attention, bf16); the batch-64 point is
printed beside it: the share of the step model's gain it keeps there is the planner's batch correction
(`SPECULATIVE_GAIN_KEPT` in planner/analytic/speculation.py). Two points fix two numbers: nothing here is held out.

    python benchmarks/bench_speculation_published.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from optiplan.planner.catalog.hardware import resolve_hardware  # noqa: E402
from optiplan.planner.catalog.models import resolve_model  # noqa: E402
from optiplan.planner.plan.predict import speculation_speedup  # noqa: E402
from optiplan.planner.plan.state import PlanState, Speculation  # noqa: E402
from optiplan.planner.plan.techniques.speculative import EAGLE3_ACCEPTANCE, EAGLE3_TOKENS  # noqa: E402

CONTEXT = 512  # MT-bench: prompts of about a hundred tokens, answers of several hundred
POINTS = [  # (batch, published speedup, what it sets)
    (1, 373.25 / 158.34, "acceptance"),
    (64, 1.38, "batch correction"),
]


def serving_state(acceptance: float) -> PlanState:
    state = PlanState(spec=resolve_model("llama-3.1-8b"), hw=resolve_hardware("h100-sxm"), devices=1,
                      weight_dtype="bf16", paged_kv=True, continuous_batching=True, attention="flash", graphs=True)
    return state.with_(speculation=Speculation("eagle3", EAGLE3_TOKENS, acceptance))


def solve(batch: int, target: float) -> float:
    """The acceptance whose predicted speedup at `batch` equals `target` (bisection; speedup grows with it)."""
    low, high = 0.0, 0.999
    for _ in range(60):
        mid = (low + high) / 2
        if speculation_speedup(serving_state(mid), batch, CONTEXT) < target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def main() -> None:
    solved = solve(POINTS[0][0], POINTS[0][1])
    print(f"acceptance solved from the batch-1 point: {solved:.3f} (planner uses {EAGLE3_ACCEPTANCE})")
    rows = []
    for batch, published, split in POINTS:
        raw = speculation_speedup(serving_state(EAGLE3_ACCEPTANCE), batch, CONTEXT, kept=False)
        predicted = speculation_speedup(serving_state(EAGLE3_ACCEPTANCE), batch, CONTEXT)
        rows.append({"batch": batch, "published": round(published, 3), "step_model": round(raw, 3),
                     "predicted": round(predicted, 3), "ratio": round(predicted / published, 3), "split": split})
        print(f"batch {batch:>3}: published {published:.2f}x; step model {raw:.2f}x "
              f"(kept share {(published - 1) / (raw - 1):.2f}); with the measured batch correction {predicted:.2f}x")
    write_results("speculation_published", {"solved_acceptance": round(solved, 4),
                                            "acceptance": EAGLE3_ACCEPTANCE, "points": rows})


if __name__ == "__main__":
    main()
