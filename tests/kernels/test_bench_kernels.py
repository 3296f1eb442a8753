"""The GPU benchmark's CPU side: its cases, argument checks and goal verdicts (the timing needs a GPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from script_loader import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu" / "bench_kernels.py"


def _module():
    return load_script("benchmarks/gpu/bench_kernels.py")


def test_dry_run_lists_every_section_without_a_gpu():
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '"section": "decode", "batch": 64, "context": 32768' in done.stdout
    assert '"section": "gemm", "m": 1, "n": 8192, "k": 8192' in done.stdout
    assert "39 cases" in done.stdout and "\"section\": \"paged\"" in done.stdout
    bad = subprocess.run([sys.executable, str(SCRIPT), "--sections", "decode,nope"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "unknown section(s) nope" in bad.stderr


def test_goals_are_judged_from_the_rows():
    bench = _module()
    rows = [{"section": "decode", "impl": "optiplan", "context": 32768, "hbm_share": 0.83, "graph_hbm_share": 0.9},
            {"section": "decode", "impl": "torch-sdpa", "context": 32768, "hbm_share": 0.95},
            {"section": "gemm", "impl": "optiplan-int4", "m": 1, "n": 8192, "k": 8192, "speedup_over_cublas": 2.5,
             "graph_speedup_over_cublas": 3.2},
            {"section": "gemm", "impl": "optiplan-int4", "m": 1, "n": 28672, "k": 8192, "speedup_over_cublas": 3.5}]
    verdicts = bench.goals(rows)
    assert verdicts["decode_hbm_share_long_context"] == {"goal": 0.8, "measured": 0.83, "kernel": 0.9, "met": True,
                                                         "kernel_met": True}
    gemm = verdicts["int4_m1_speedup_over_cublas_8192"]  # only the 8192 x 8192 row counts
    assert (gemm["met"], gemm["kernel_met"]) == (False, True)  # slow as called (its launches), fast on the GPU
    assert verdicts["prefill_bf16_peak_share"]["measured"] is None
    assert len(bench.plan(["gemm"], quick=True)) == 3


def test_a_run_is_kept_where_the_planner_reads_it(tmp_path):
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.kernels import shares_from_result

    bench = _module()
    rows = [{"section": "gemm", "impl": "optiplan-int4", "m": 1, "n": 8192, "k": 8192, "ms": 0.02, "gbps": 2640.0}]
    path = bench.keep_as_profile({"device": "NVIDIA H100 80GB HBM3", "rows": rows}, tmp_path)
    assert path == tmp_path / "h100-sxm.json"
    shares = shares_from_result(json.loads(path.read_text()), resolve_hardware("h100-sxm"), str(path))
    assert shares.gemm["int4"] == pytest.approx(2640.0 / 3350.0)  # of the H100's 3.35 TB/s, not the H200's
    assert bench.keep_as_profile({"device": "Some Unknown GPU", "rows": rows}, tmp_path) is None


def test_shares_are_of_the_peaks_of_the_gpu_it_runs_on():
    bench = _module()
    assert bench.device_peaks("NVIDIA H100 80GB HBM3") == {"gbps": 3350.0, "bf16_tflops": 989.0,
                                                           "hardware": "h100-sxm"}
    assert bench.device_peaks("NVIDIA A100-SXM4-80GB")["bf16_tflops"] == 312.0
    assert bench.device_peaks("Some Unknown GPU")["hardware"] == "h200-sxm (assumed)"


@pytest.mark.gpu
def test_kernels_match_their_references_on_the_gpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
