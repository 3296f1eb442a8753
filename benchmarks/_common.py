"""Shared by the benchmarks: wall time of whole `optiplan` processes, and writing results as JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def time_cli(args: list[str], runs: int) -> list[float]:
    """Seconds per run of `optiplan ARGS` (one warm-up run first, for the file cache)."""
    exe = shutil.which("optiplan")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "optiplan.planner.cli.main", *args]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def write_results(name: str, data: Any) -> Path:
    """Write benchmarks/results/NAME.json and say where."""
    out = Path(__file__).resolve().parent / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {out}")
    return out


def error_stats(errors) -> dict:
    """Points, median and p90 (nearest rank) of absolute errors in percent."""
    import statistics

    errors = sorted(errors)
    return {"points": len(errors), "median_pct": statistics.median(errors),
            "p90_pct": errors[min(len(errors) - 1, int(0.9 * len(errors)))]}
