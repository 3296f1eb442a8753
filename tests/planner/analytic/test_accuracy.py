"""Prediction bands: every figure shown for catalog GPUs carries the model's error against published measurements
(profiles/accuracy.yaml, written by benchmarks/bench_published.py); an uncalibrated CPU carries none."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from optiplan.planner.analytic.accuracy import (
    accuracy_bands,
    architecture_kind,
    band_text,
    bands_note,
    published_accuracy,
)
from optiplan.planner.analytic.profile import profile
from optiplan.planner.catalog.hardware import local_cpu, resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.cli.main import main
from optiplan.planner.errors import ImpossibleError
from optiplan.planner.plan.advise import advise
from optiplan.planner.report.figures import predicted_summary
from optiplan.planner.schema import AccuracyBand, AdviseRequest, ProfileRequest


def test_the_bands_come_from_the_validation_set():
    data = published_accuracy()
    assert "bench_published" in data["source"]
    bands = accuracy_bands(resolve_hardware("h100-sxm"))
    for figure in ("tpot_ms", "ttft_ms", "throughput_tokens_per_s", "memory_bytes"):
        band = bands[figure]
        assert 0 < band.median_pct <= band.p90_pct and band.points >= 5, figure
    b = bands["tpot_ms"]
    assert band_text(bands, "tpot_ms") == f" (±{b.median_pct:.0f}%, p90 ±{b.p90_pct:.0f}%)"


def test_a_band_shows_its_p90_where_known_and_the_median_alone_otherwise():
    known = AccuracyBand(median_pct=3.2, p90_pct=21.4, points=16, source="published")
    calibrated = AccuracyBand(median_pct=7.6, p90_pct=None, points=12, source="optiplan calibrate")
    assert band_text({"ttft_ms": known}, "ttft_ms") == " (±3%, p90 ±21%)"
    assert band_text({"ttft_ms": calibrated}, "ttft_ms") == " (±8%)"
    assert band_text({"ttft_ms": known}, "tpot_ms") == ""
    tight = AccuracyBand(median_pct=0.46, p90_pct=5.7, points=34, source="published")
    assert band_text({"kv_cache_tokens": tight}, "kv_cache_tokens") == " (±0.5%, p90 ±6%)"  # not ±0%
    assert bands_note({}) == ""
    assert bands_note({"ttft_ms": known}) == "± bands: the median error against published; p90: the error nine in ten " \
                                            "stayed within"


def test_an_engine_with_enough_points_of_a_figure_has_its_own_band():
    data = published_accuracy()
    h100 = resolve_hardware("h100-sxm")
    every = accuracy_bands(h100)
    for engine, figures in data["engines"].items():
        bands = accuracy_bands(h100, engine=engine)
        # the other figures keep every engine's band; the cache at start-up only ever has the engine's own
        assert bands.keys() - {"kv_cache_tokens"} == every.keys(), engine
        for figure, band in bands.items():
            if figure in figures:
                assert band.points >= 8 and band.median_pct == figures[figure]["median_pct"]
                assert f"{engine} only" in band.source
            else:
                assert figure != "kv_cache_tokens" and band == every[figure]
    # gpt-fast's batch-1 decode is validated on its own points, a band of its own (its p90 11.8% against the whole
    # set's 17.4%); an engine without enough points of its own (TGI, the generic serving engine) takes the whole
    own = accuracy_bands(h100, engine="gpt-fast")["tpot_ms"]
    assert own.points < every["tpot_ms"].points and own.p90_pct < every["tpot_ms"].p90_pct
    # set's, and says so: its band had read as TGI's own beside a generic engine's figures
    assert "tgi" not in data["engines"]
    assert accuracy_bands(h100, engine="serving") == every
    tgi = accuracy_bands(h100, engine="tgi")
    assert tgi.keys() == every.keys()
    for figure, band in tgi.items():
        assert band.median_pct == every[figure].median_pct
        assert band.source == every[figure].source[:-1] + \
            "; other engines' errors: too few published tgi runs for a band of its own)"
    p = profile(ProfileRequest(model="llama-3.1-8b", hardware="a100-80gb-sxm", engine="gpt-fast", context=2048))
    assert p.accuracy["tpot_ms"] == accuracy_bands(resolve_hardware("a100-80gb-sxm"), "compiled", "gpt-fast",
                                                   "dense")["tpot_ms"]


def test_a_moe_model_carries_the_band_of_moe_points():
    """The bands follow the kind of model before the engine: a MoE model's request throughput is predicted with a
    larger median error than a dense model's in the set, and its reports say so, on an engine with too few MoE points
    of its own as on one with enough; a hybrid model (state layers), of which the set has too few points for a band,
    shows none."""
    data = published_accuracy()
    h100 = resolve_hardware("h100-sxm")
    every = accuracy_bands(h100)
    moe, dense = (accuracy_bands(h100, kind=k)["throughput_tokens_per_s"] for k in ("moe", "dense"))
    assert moe.median_pct > every["throughput_tokens_per_s"].median_pct > dense.median_pct
    assert "moe models" in moe.source and moe.points == data["kinds"]["moe"]["throughput_tokens_per_s"]["points"]
    # the engine's own points of the kind where there are enough, else the kind's over the engine's mixed ones
    vllm_moe = accuracy_bands(h100, engine="vllm", kind="moe")["ttft_ms"]
    assert vllm_moe.points == data["engine_kinds"]["vllm"]["moe"]["ttft_ms"]["points"] and "vllm only" in vllm_moe.source
    # TensorRT-LLM's MoE TTFTs are too few for a band of their own: the MoE points' band
    assert "ttft_ms" not in data["engine_kinds"].get("trtllm", {}).get("moe", {})
    assert accuracy_bands(h100, engine="trtllm", kind="moe")["ttft_ms"] == accuracy_bands(h100, kind="moe")["ttft_ms"]
    # the hybrid models' points are too few for bands of their own (and far off): a hybrid shows none, not the set's
    assert architecture_kind(resolve_model("jamba-1.5-mini")) == "hybrid" and "hybrid" not in data["kinds"]
    assert accuracy_bands(h100, kind="hybrid") == {} and accuracy_bands(h100, kind=None) == every
    # what profile and advise show: the model's kind
    p = profile(ProfileRequest(model="qwen3-235b-a22b", hardware="h100-sxm", num_devices=8, engine="sglang"))
    assert p.accuracy["throughput_tokens_per_s"] == accuracy_bands(h100, "serving", "sglang", "moe")[
        "throughput_tokens_per_s"]
    advice = advise(AdviseRequest(model="mixtral-8x7b", hardware="h100-sxm", num_devices=2, engine="sglang"))
    assert advice.accuracy["ttft_ms"] == accuracy_bands(h100, "serving", "sglang", "moe")["ttft_ms"]


def test_an_unvalidated_device_has_no_band():
    assert accuracy_bands(local_cpu()) == {}  # never calibrated in the tests (conftest isolates the cache)
    assert band_text({}, "tpot_ms") == ""


def test_profiles_and_reports_show_the_bands():
    p = profile(ProfileRequest(model="llama-3.1-8b", hardware="l4", context=2048))
    assert p.accuracy["tpot_ms"].median_pct > 0
    out = CliRunner().invoke(main, ["profile", "llama-3.1-8b", "-H", "l4", "--context", "2048"])
    assert out.exit_code == 0 and "(±" in out.output and "median error against" in " ".join(out.output.split())
    advice = CliRunner().invoke(main, ["advise", "llama-3.1-8b", "-H", "l4", "--format", "md"])
    assert advice.exit_code == 0 and "(±" in advice.output


def test_a_setup_that_does_not_fit_shows_its_speeds_without_bands():
    """A 405B on one 24 GB card is priced as if it fit: hypothetical figures, which no validation band covers; its
    memory keeps its band (that figure is what says it does not fit), and the warning says what to change."""
    out = CliRunner().invoke(main, ["profile", "llama-3.1-405b", "-H", "rtx-4090"], terminal_width=200)
    text = " ".join(out.output.split())
    assert out.exit_code == 0 and "as if it fit: it does not; no ± bands" in text
    latency = text[text.index("Latency and throughput"):text.index("± bands: the median")]
    assert "(±" not in latency and "0.95 tokens/s per decode step" in latency
    assert "815.47 GB (±" in text and "803.29 GFLOP matmul" in text
    assert "the weights alone take 811.7 GB: more devices (--gpus), fewer bits a weight (--dtype)" in text
    fits = CliRunner().invoke(main, ["profile", "llama-3.1-8b", "-H", "l4", "--context", "2048"])
    assert "as if it fit" not in fits.output and "TPOT" in fits.output
    # the advice document says so too (its JSON had kept the speed bands the reports dropped)
    with pytest.raises(ImpossibleError) as nothing:
        advise(AdviseRequest(model="llama-3.1-405b", hardware="rtx-4090", workload="chat"))
    document = nothing.value.document
    assert not document.plan.predicted.fits and set(document.accuracy) <= {"memory_bytes", "kv_cache_tokens"}
    assert "memory_bytes" in document.accuracy and "TPOT" in predicted_summary(document)
    assert "(±" not in predicted_summary(document).split("GB per device")[0]


def test_the_cache_at_start_up_carries_only_its_own_engines_band():
    h100 = resolve_hardware("h100-sxm")
    assert "kv_cache_tokens" in accuracy_bands(h100, engine="vllm", kind="dense")
    assert "vllm only" in accuracy_bands(h100, engine="vllm", kind="dense")["kv_cache_tokens"].source
    # SGLang's two logs and TensorRT-LLM's none: vLLM's 0.5% is no band for them, nor for a generic engine
    for engine in ("sglang", "trtllm", "serving"):
        assert "kv_cache_tokens" not in accuracy_bands(h100, engine=engine, kind="dense"), engine


def test_an_apple_gpu_carries_the_band_of_its_engines_runs_there():
    # llama.cpp's published runs on an M2 Ultra and an M3 Max band its decode there; other engines have none
    mac = resolve_hardware("m3-max")
    bands = accuracy_bands(mac, "serving", "llama.cpp", "dense")
    assert bands["tpot_ms"].points >= 12 and "llama.cpp on Apple GPUs" in bands["tpot_ms"].source
    assert "ttft_ms" not in bands  # seven prompt points: too few for a band of their own
    eager = profile(ProfileRequest(model="llama-3.2-1b", hardware="m3-max", engine="transformers"))
    assert not eager.accuracy and any("runs on an Apple GPU are llama.cpp's" in w for w in eager.warnings)


def test_a_calibrated_machine_bands_only_the_device_and_format_it_fitted(monkeypatch):
    from optiplan.planner.analytic import accuracy

    fit = {"median_abs_error_pct": 3.0, "points": [1, 2, 3]}
    data = {"machine": {"device": "cpu"}, "runtimes": {"transformers": {"fp32": fit}}}
    monkeypatch.setattr(accuracy, "load_calibration", lambda: data)
    cpu = resolve_hardware("epyc-9004").model_copy(update={"id": "local"})
    assert accuracy.accuracy_bands(cpu, "transformers", "transformers", "dense", "fp32")["tpot_ms"].median_pct == 3.0
    # bf16 weights were not fitted: no band borrowed from fp32's steps, and the warning says which were
    assert accuracy.accuracy_bands(cpu, "transformers", "transformers", "dense", "bf16") == {}
    assert "fitted fp32, not bf16 weights" in accuracy.missing_bands_reason(cpu, "dense", dtype="bf16")
    # a GPU `local` after a CPU calibration: nothing of it was fitted
    gpu = resolve_hardware("h200-sxm").model_copy(update={"id": "local"})
    assert accuracy.accuracy_bands(gpu, "transformers", "transformers", "dense", "fp32") == {}
    assert "measured its cpu, not the GPU" in accuracy.missing_bands_reason(gpu, "dense", dtype="fp32")


def test_a_calibration_naming_no_device_is_reported_not_raised(monkeypatch):
    """A calibration file without the device it measured (hand-edited, or cut short) gives a reason, not a KeyError."""
    from optiplan.planner.analytic import accuracy

    monkeypatch.setattr(accuracy, "load_calibration", lambda: {"runtimes": {}})
    hw = local_cpu().model_copy(update={"id": "local"})
    assert accuracy.accuracy_bands(hw, "transformers", dtype="fp32") == {}
    assert "measured its unnamed device, not the CPU" in accuracy.missing_bands_reason(hw, "dense", dtype="fp32")
