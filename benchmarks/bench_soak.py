"""Soak: many `optiplan.advise(...)` calls with random valid requests in one process, the way a long-running
service makes them. Goal (issue 16): resident memory flat within 5% from the end of the warm-up to the last call,
and no error but the user errors the requests ask for. Prints the figures and writes
benchmarks/results/soak.json.

    python benchmarks/bench_soak.py [--calls 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections import Counter

import optiplan
from _common import write_results
from optiplan import profiles
from optiplan.planner.catalog.workloads import preset_names
from optiplan.planner.errors import OptiplanError
from optiplan.planner.machine.probe import proc_kib_bytes

GOALS = (None, "memory", "latency", "throughput", "context", "cost")
ENGINES = (None, "vllm", "sglang", "tgi", "trtllm", "transformers", "llama.cpp")


def rss_bytes() -> int:
    return proc_kib_bytes("/proc/self/status", "VmRSS") or 0


def random_request(rng: random.Random) -> dict:
    workload = rng.choice(preset_names())
    request = dict(model=rng.choice(profiles.model_names()), hardware=rng.choice([*profiles.hardware_ids(), "auto"]),
                   workload=workload, engine=rng.choice(ENGINES),
                   max_quality_loss_pct=rng.choice([None, 0.0, 1.0, 5.0]))
    if workload != "fine-tune":
        request["goal"] = rng.choice(GOALS)
    if request["hardware"] != "auto":
        request["num_devices"] = rng.choice([1, 1, 2, 4, 8])
    return request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100, help="calls before the first memory reading")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    outcomes: Counter[str] = Counter()
    readings = []
    start = time.perf_counter()
    for i in range(args.calls):
        try:
            optiplan.advise(**random_request(rng))
            outcomes["plan"] += 1
        except OptiplanError as exc:  # a request the catalog cannot serve: a user error, answered in one line
            outcomes[type(exc).__name__] += 1
        if i + 1 == args.warmup or (i + 1) % 100 == 0:
            gc.collect()
            readings.append((i + 1, rss_bytes()))
    seconds = time.perf_counter() - start
    after_warmup = next(r for n, r in readings if n >= args.warmup)
    growth = (readings[-1][1] / after_warmup - 1) * 100
    print(f"{args.calls} advise calls in {seconds:.1f} s ({args.calls / seconds:.1f}/s): {dict(outcomes)}")
    print("resident memory (MB) after calls: " + ", ".join(f"{n}: {r / 1e6:.1f}" for n, r in readings))
    print(f"growth from call {args.warmup} to call {args.calls}: {growth:+.2f}% (goal: within 5%)")
    write_results("soak", {"calls": args.calls, "seconds": seconds, "outcomes": dict(outcomes),
                           "rss_bytes": readings, "growth_pct_after_warmup": growth, "goal_pct": 5.0,
                           "met": abs(growth) <= 5.0})


if __name__ == "__main__":
    main()
