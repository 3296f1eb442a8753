"""Shared by the benchmarks: wall time of whole `optiplan` processes, as a user starts them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time


def time_cli(args: list[str], runs: int) -> list[float]:
    """Seconds per run of `optiplan ARGS` (one warm-up run first, for the file cache)."""
    exe = shutil.which("optiplan")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "optiplan.planner.cli", *args]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times
