"""Speed of `optiplan advise` (issue 3 goal: the whole `optiplan advise ... --format json` process
under 1 s on this machine, without importing torch). Prints the figures and writes
benchmarks/results/advise_speed.json.

    python benchmarks/bench_advise_speed.py [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics

from _common import time_cli, write_results

COMMANDS = {
    "8b-l4-chat": ["advise", "llama-3.1-8b", "--hardware", "l4", "--workload", "chat", "--format", "json"],
    "mixtral-2xh100-throughput": ["advise", "mixtral-8x7b", "--hardware", "h100-sxm", "--gpus", "2", "--goal",
                                  "throughput", "--format", "json"],
    "70b-auto-rag": ["advise", "llama-3.1-70b", "--hardware", "auto", "--workload", "rag-long-context",
                     "--max-quality-loss", "1%", "--format", "json"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    results = {}
    for name, cmd in COMMANDS.items():
        times = time_cli(cmd, args.runs)
        results[name] = {"command": "optiplan " + " ".join(cmd), "median_s": statistics.median(times),
                         "min_s": min(times), "max_s": max(times), "runs": len(times)}
        print(f"{name:28s} median {results[name]['median_s']:.3f} s (min {min(times):.3f}, max {max(times):.3f}; "
              f"goal < 1 s)")
    write_results("advise_speed", results)


if __name__ == "__main__":
    main()
