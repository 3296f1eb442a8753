"""Speed of the analytic profiler (issue 2 goals: a whole `optiplan profile ... --json` process under
0.5 s on a 2-core machine; every catalog model on every catalog device in one process under 1 ms per
pair). Prints the figures and writes benchmarks/results/profile_speed.json.

    python benchmarks/bench_profile_speed.py [--runs 15]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from _common import time_cli, write_results

COMMAND = ["profile", "llama-3.1-70b", "--hardware", "h100-sxm", "--gpus", "2", "--context", "8192", "--batch", "16",
           "--json"]


def pair_times(rounds: int) -> dict:
    from optiplan import profiles
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.catalog.hardware import catalog_hardware
    from optiplan.planner.catalog.models import resolve_model
    from optiplan.planner.errors import OptiplanError
    from optiplan.planner.schema import ProfileRequest

    requests = []
    for model in profiles.model_names():
        context = min(4096, resolve_model(model).max_position_embeddings)
        for hw_id in profiles.hardware_ids():
            dtype = "bf16" if catalog_hardware(hw_id).features.bf16 else "fp16"
            requests.append(ProfileRequest(model=model, hardware=hw_id, dtype=dtype, context=context))
    failures = 0
    per_round = []
    for _ in range(rounds):
        start = time.perf_counter()
        for request in requests:
            try:
                profile(request)
            except OptiplanError:
                failures += 1
        per_round.append((time.perf_counter() - start) / len(requests))
    return {"pairs": len(requests), "failures": failures // rounds, "ms_per_pair_rounds": [t * 1e3 for t in per_round]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    times = time_cli(COMMAND, args.runs)
    pairs = pair_times(args.rounds)
    first_round = pairs["ms_per_pair_rounds"][0]
    result = {
        "command": "optiplan " + " ".join(COMMAND),
        "process_s_median": statistics.median(times), "process_s_min": min(times), "process_s_max": max(times),
        "process_runs": len(times),
        "pairs": pairs["pairs"], "pair_failures": pairs["failures"],
        "ms_per_pair_first_round": first_round,
        "ms_per_pair_median": statistics.median(pairs["ms_per_pair_rounds"]),
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
    }
    print(f"optiplan profile ... --json, whole process: median {result['process_s_median']:.3f} s "
          f"(min {result['process_s_min']:.3f}, max {result['process_s_max']:.3f}, {len(times)} runs; goal < 0.5 s)")
    print(f"{pairs['pairs']} model x device pairs in one process: {first_round:.3f} ms/pair cold, "
          f"{result['ms_per_pair_median']:.3f} ms/pair median over {args.rounds} rounds "
          f"({pairs['failures']} rejected; goal < 1 ms)")
    write_results("profile_speed", result)


if __name__ == "__main__":
    main()
