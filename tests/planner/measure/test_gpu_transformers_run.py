"""The H200 runs of eager transformers (benchmarks/gpu/measured/, written by bench_transformers_cuda.py on the GPU)
against today's prediction, and the launch-cost fit they were fitted with. CPU only: the runs are data."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from optiplan.planner.analytic.profile import profile
from optiplan.planner.measure.fit import fit_launch_costs, step_seconds
from optiplan.planner.schema import ProfileRequest
from script_loader import load_script

MEASURED = Path(__file__).resolve().parents[3] / "benchmarks" / "gpu" / "measured"


def _bench():
    return load_script("benchmarks/gpu/bench_transformers_cuda.py")


def test_todays_prediction_stays_close_to_the_interleaved_h200_run():
    bench = _bench()
    result = json.loads((MEASURED / "h200-transformers.json").read_text())
    assert bench.catalog_id(result) == "h200-sxm"
    today = bench.predicted_rows(result["rows"], "h200-sxm", result["dtype"])
    for kind, limit in (("decode", 9.0), ("prefill", 11.0)):
        assert statistics.median(abs(r["error_pct"]) for r in today if r["kind"] == kind) <= limit
    assert max(abs(r["memory_error_pct"]) for r in today if "memory_error_pct" in r) < 4.0


def test_the_launch_cost_fit_recovers_known_costs_and_tells_overlap_from_sum():
    samples, kernels = [], []
    for layers, kernel_s, kind in ((16, 0.001, "decode"), (28, 0.002, "decode"), (32, 0.004, "decode"),
                                   (16, 0.15, "prefill"), (32, 0.03, "prefill"), (28, 0.005, "prefill")):
        launches = 0.0005 + 0.0007 * layers
        samples.append({"kind": kind, "layers": layers, "seconds": max(kernel_s, launches)})
        kernels.append(kernel_s)
    fitted = fit_launch_costs(samples, kernels, overlap=True, fit_step=True)
    assert fitted["host_overlap"] and fitted["layer_overhead_s"] == pytest.approx(0.0007, abs=1e-5)
    assert fitted["step_overhead_s"] == pytest.approx(0.0005, abs=1e-4)
    assert all(step_seconds(s, k, fitted) == pytest.approx(s["seconds"], rel=0.02)
               for s, k in zip(samples, kernels))
    added = fit_launch_costs(samples, kernels, overlap=False, fit_step=True)
    worst = max(abs(step_seconds(s, k, added) - s["seconds"]) / s["seconds"] for s, k in zip(samples, kernels))
    assert worst > 0.1  # the sum cannot explain steps whose kernels hide under the launches


def test_eager_transformers_on_a_gpu_carries_the_band_of_the_gpu_runs_and_serving_the_published_one():
    def bands(engine):
        return profile(ProfileRequest(model="llama-3.1-8b", hardware="h200-sxm", engine=engine)).accuracy

    eager, serving = bands("transformers"), bands("vllm")
    assert "bench_transformers_cuda.py" in eager["tpot_ms"].source and eager["tpot_ms"].points == 24
    assert "bench_published.py" in serving["tpot_ms"].source
    assert "throughput_tokens_per_s" not in eager  # nothing validates eager throughput on a GPU


def test_gpu_calibration_fits_a_launch_cost_and_local_predictions_overlap_it(tmp_path, monkeypatch):
    """`optiplan calibrate` on a CUDA machine, its code run on the CPU with the small test model (the fit then
    describes no real GPU): the device keeps its default efficiencies, the launch cost per layer is fitted, and
    `--hardware local` predictions read it with the launches overlapping the kernels."""
    pytest.importorskip("torch")
    from optiplan.planner.analytic.efficiency import calibrated_efficiency
    from optiplan.planner.catalog.hardware import local_hardware
    from optiplan.planner.machine.calibration import load_calibration
    from optiplan.planner.measure.calibrate_gpu import calibrate_gpu

    monkeypatch.setenv("OPTIPLAN_CACHE", str(tmp_path))  # this test's calibration only
    target = Path(__file__).resolve().parents[2] / "assets" / "models" / "target"
    data, path = calibrate_gpu([str(target)], repeats=1, dtype="fp32", device="cpu", show_progress=False)
    fitted = data["runtimes"]["transformers"]["fp32"]
    assert path.exists() and load_calibration()["fingerprint"] == data["fingerprint"]
    assert fitted["factors"]["host_overlap"] and fitted["factors"]["layer_overhead_s"] > 0
    assert {p["kind"] for p in fitted["points"]} == {"prefill", "decode"}
    assert fitted["median_abs_error_pct"] == pytest.approx(
        statistics.median(abs(p["error_pct"]) for p in fitted["points"]))
    eff = calibrated_efficiency(local_hardware(), "transformers", "fp32")
    assert eff.host_overlap and eff.layer_overhead_s == fitted["factors"]["layer_overhead_s"]
    assert "calibrated on this machine" in eff.source


def test_calibrating_a_gpu_that_is_not_there_is_a_clear_usage_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    from click.testing import CliRunner
    from optiplan.planner.cli.main import main

    result = CliRunner().invoke(main, ["calibrate", "--device", "cuda"])
    assert result.exit_code == 2 and "torch sees no CUDA device" in result.output


def test_a_gpu_calibration_saves_the_factors_its_kernel_times_were_priced_at(monkeypatch):
    # the launch cost is fitted against kernel times at the transformers engine's share of the GPU's compute rate; a
    # calibrated profile reads the saved factors as they are, so they carry that share (an H200's bf16: 0.84 of it)
    from optiplan.planner.analytic.efficiency import default_efficiency
    from optiplan.planner.analytic.engine_rates import at_engine_share
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.measure import calibrate_gpu

    hw = resolve_hardware("h200-sxm")
    monkeypatch.setattr(calibrate_gpu, "kernel_seconds", lambda samples, hw, dtype: [0.01])
    monkeypatch.setattr(calibrate_gpu, "fit_launch_costs", lambda samples, kernels, overlap: {
        "step_overhead_s": 0.0, "layer_overhead_s": 0.0007, "at_grid_edge": False})
    monkeypatch.setattr(calibrate_gpu, "step_seconds", lambda sample, kernel, launch: 0.02)
    sample = {"model": "m", "kind": "decode", "batch": 1, "tokens": 128, "seconds": 0.02}
    fitted = calibrate_gpu.fit_launch_cost([sample], hw, "bf16")
    documented = default_efficiency(hw, "bf16", "bf16", "transformers").flop_efficiency
    priced = at_engine_share(default_efficiency(hw, "bf16", "bf16", "transformers"), "transformers", hw)
    assert fitted["factors"]["flop_efficiency"] == pytest.approx(priced.flop_efficiency)
    assert fitted["factors"]["flop_efficiency"] < documented  # the share is below 1 on a GPU
