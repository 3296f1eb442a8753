"""Measurement and calibration on this CPU, with the small trained models in tests/assets/models."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

from optiplan.optimizers.effects import runnable_here  # noqa: E402
from optiplan.planner import fsutil  # noqa: E402
from optiplan.planner.catalog.hardware import local_hardware  # noqa: E402
from optiplan.planner.cli.main import main  # noqa: E402
from optiplan.planner.machine import calibration  # noqa: E402
from optiplan.planner.measure import fit, microbench  # noqa: E402
from optiplan.planner.measure.timing import measure, measure_models  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / "assets" / "models"
TARGET, DRAFT = MODELS / "target", MODELS / "draft"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """A private calibration folder, and `local` re-read with it."""
    monkeypatch.setenv("OPTIPLAN_CACHE", str(tmp_path / "cache"))
    local_hardware.cache_clear()
    yield tmp_path / "cache"
    local_hardware.cache_clear()


def test_test_models_are_the_committed_ones_and_learned_something():
    manifest = json.loads((MODELS / "MANIFEST.json").read_text())
    for rel, digest in manifest["sha256"].items():
        assert hashlib.sha256((MODELS / rel).read_bytes()).hexdigest() == digest, rel
    target = manifest["models"]["target"]
    assert target["layers"] == 8 and manifest["models"]["draft"]["layers"] == 1
    assert target["held_out_perplexity_trained"] < target["held_out_perplexity_untrained"] / 10
    assert manifest["draft_to_target_time_per_token"] < 0.2


def test_trained_target_generates_english_like_text():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(TARGET)
    model = AutoModelForCausalLM.from_pretrained(TARGET, dtype=torch.float32)
    ids = tok("The for statement", return_tensors="pt").input_ids
    text = tok.decode(model.generate(ids, max_new_tokens=20, do_sample=False)[0])
    assert text.startswith("The for statement") and len(text.split()) > 6


def test_measure_times_and_peak_memory():
    m = measure(TARGET, dtype="fp32", prefills=((1, 16), (2, 32)), decodes=((1, 32), (2, 64)), repeats=2,
                show_progress=False)
    kinds = [p.kind for p in m.points]
    assert kinds == ["prefill", "prefill", "decode", "decode", "peak"]
    assert all(p.median_s > 0 for p in m.points if p.kind != "peak")
    peak = m.points[-1].peak_memory_bytes
    assert m.baseline_rss_bytes > 50e6 and peak > m.baseline_rss_bytes  # the model and its work on top


def test_models_measured_together_keep_their_own_points():
    target, draft = measure_models([(TARGET, ((1, 16),), ((2, 32),)), (DRAFT, ((1, 48), (1, 8)), ())], repeats=2,
                                   memory=False, show_progress=False)
    assert (target.model, draft.model) == (str(TARGET), str(DRAFT))
    assert [(p.kind, p.batch, p.tokens) for p in target.points] == [("prefill", 1, 16), ("decode", 2, 32)]
    assert [(p.kind, p.batch, p.tokens) for p in draft.points] == [("prefill", 1, 48), ("prefill", 1, 8)]
    assert all(p.repeats >= 2 and p.median_s > 0 for p in target.points + draft.points)
    # the 8-layer target's step costs more than the 1-layer draft's at a shorter prompt
    assert target.points[0].median_s > draft.points[1].median_s


def test_profile_measure_json_has_measured_beside_predicted():
    result = CliRunner().invoke(main, ["profile", str(TARGET), "--hardware", "local", "--engine", "transformers",
                                       "--dtype", "fp32", "--context", "64", "--batch", "2", "--measure",
                                       "--repeats", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    measured = data["measured"]
    for key in ("ttft_ms", "tpot_ms", "tokens_per_s", "peak_memory_bytes", "engine"):
        assert key in measured
    assert measured["engine"] == "transformers" and measured["tpot_ms"] > 0
    assert {p["kind"] for p in measured["points"]} == {"prefill", "decode", "peak"}
    assert all(p["error_pct"] is not None for p in measured["points"] if p["kind"] != "peak")
    assert {p["batch"] for p in measured["points"]} == {2}  # the peak too is measured at the request's batch


@pytest.mark.parametrize("args, message", [
    (["llama-3.1-405b", "--hardware", "local", "--context", "64"], "not loaded"),
    ([str(TARGET), "--hardware", "h100-sxm", "--context", "64"], "use --hardware local"),
    ([str(TARGET), "--hardware", "local", "--dtype", "int4", "--context", "64"], "unquantized weights"),
])
def test_measure_refusals(args, message):
    result = CliRunner().invoke(main, ["profile", *args, "--measure"])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_folder_without_weights_and_mismatched_weights(tmp_path):
    empty = tmp_path / "no-weights"
    empty.mkdir()
    shutil.copy(TARGET / "config.json", empty / "config.json")
    result = CliRunner().invoke(main, ["profile", str(empty), "-H", "local", "--context", "64", "--measure"])
    assert result.exit_code == 2 and "no weights" in result.output
    bad = tmp_path / "bad"
    shutil.copytree(TARGET, bad)
    config = json.loads((bad / "config.json").read_text())
    config["hidden_size"] = 240  # a valid config whose weights are 192 wide
    (bad / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["profile", str(bad), "-H", "local", "--context", "64", "--measure"])
    assert result.exit_code == 2 and "cannot load it" in result.output


def test_fit_recovers_known_factors():
    truth = {"flop_efficiency": 0.4, "bandwidth_efficiency": 0.6, "step_overhead_s": 0.002, "layer_overhead_s": 0.0003,
             "matmul_half_tokens": 16}
    samples = []
    for layers in (2, 8, 16):
        # (flops, bytes, rows, KV share of the bytes, activation share): some steps bound by the KV cache while
        # their linear layers are compute-bound, so the split roofline is what the fit has to recover
        for flops, nbytes, rows, kv, act in ((1e9, 1e7, 512, 0.1, 0.3), (1e7, 1e9, 1, 0.2, 0.0),
                                             (5e9, 5e8, 64, 0.5, 0.05), (1e8, 3e8, 8, 0.8, 0.01),
                                             (2e9, 1e8, 4, 0.6, 0.0), (3e9, 2e9, 16, 0.9, 0.01)):
            s = {"flops": flops, "matmul_flops": flops * 0.9, "attention_flops": flops * 0.1, "rows": rows,
                 "bytes": nbytes, "kv_bytes": nbytes * kv, "activation_bytes": nbytes * act, "peak_flops": 1e11,
                 "bandwidth": 1e10, "layers": layers, "kind": "prefill" if rows > 32 else "decode"}
            s["seconds"] = fit.predict_seconds(s, truth)
            samples.append(s)
    fitted = fit.fit_factors(samples, truth["matmul_half_tokens"])
    # the efficiencies come back; the two overheads trade off against each other within the grid's resolution,
    # so what must hold is that the fitted model reproduces the times
    for key in ("flop_efficiency", "bandwidth_efficiency"):
        assert fitted[key] == pytest.approx(truth[key], rel=0.15), key
    errors = sorted(abs(fit.predict_seconds(s, fitted) - s["seconds"]) / s["seconds"] for s in samples)
    assert errors[len(errors) // 2] < 0.02


def test_rows_curve_recovers_a_known_half_size():
    rows = [4, 8, 16, 32, 64, 128, 256, 512] * 3
    shares = [0.9 * m / (m + 24) * (1.05 if i % 3 else 0.95) for i, m in enumerate(rows)]  # +-5% noise
    half, scale = microbench.fit_rows_curve(rows, shares)
    assert half == pytest.approx(24, rel=0.15) and scale == pytest.approx(0.9, rel=0.1)


def calibrate_here(*techniques: str):
    """`optiplan calibrate` on the two test models: the machine's fit, then the named techniques' effects (every one
    that runs here where none is named)."""
    options = [arg for t in techniques for arg in ("-t", t)]
    result = CliRunner().invoke(main, ["calibrate", "--device", "cpu", "--model", str(TARGET), "--model", str(DRAFT),
                                       "--repeats", "2",
                                       *options])
    assert result.exit_code == 0, result.output
    return result, json.loads(calibration.calibration_path().read_text())


def test_calibrate_writes_and_profile_uses_it(cache):
    # one technique's effect, through the same command: measuring every one (torch.compile's among them) takes a
    # minute and a half on the 2-core CI machine, and is the slow test below
    result, data = calibrate_here("kv-int8")
    assert "median absolute error" in result.output
    assert set(data["effects"]["techniques"]) == {"kv-int8"}
    assert calibration.calibration_path().parent == cache / "calibration"
    fitted = data["runtimes"]["transformers"]["fp32"]
    assert 0 < fitted["factors"]["flop_efficiency"] <= 1 and len(fitted["points"]) == 14  # 2 models x 7 steps
    assert data["peak_tflops"]["fp32"] > 0 and data["bandwidth_bytes_per_s"] > 1e8
    # the matmul size curve is measured, and the fit uses it
    assert len(data["matmul_points"]) == len(microbench.MATMUL_ROWS) * len(microbench.MATMUL_SHAPES)
    assert fitted["factors"]["matmul_half_tokens"] == data["matmul_half_tokens"]
    assert 1 < data["matmul_half_tokens"] < 1000  # the grid runs from 0.5 to 1024: an edge means no curve was seen
    local_hardware.cache_clear()
    profile = json.loads(CliRunner().invoke(main, ["profile", str(TARGET), "-H", "local", "--engine", "transformers",
                                                   "--dtype", "fp32", "--context", "64", "--json"]).stdout)
    assert profile["efficiency"]["source"].startswith("calibrated on this machine")


@pytest.mark.slow
def test_calibrate_measures_every_technique_that_runs_here(cache):
    _, data = calibrate_here()
    run, skipped = runnable_here("cpu", trained=True)
    measured, reasons = data["effects"]["techniques"], data["effects"]["skipped"]
    assert set(measured) | set(reasons) == set(run) | set(skipped)  # each measured, or skipped with its reason
    assert {"weight-int8", "kv-int8", "torch-compile"} <= set(measured)
    assert not [r for r in reasons.values() if r.startswith("failed here")], reasons


def test_interrupted_calibration_keeps_the_previous_file(cache, monkeypatch):
    calibration.save_calibration({"calibration_version": calibration.CALIBRATION_VERSION, "marker": 1})
    before = calibration.calibration_path().read_text()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fsutil.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        calibration.save_calibration({"calibration_version": calibration.CALIBRATION_VERSION, "marker": 2})
    assert calibration.calibration_path().read_text() == before
    assert not list(calibration.calibration_path().parent.glob(".*"))  # no temporary file left behind


def test_measure_a_config_with_random_weights(tmp_path):
    # several end-of-sequence ids, as Llama 3's Instruct configs give: the peak worker had passed the list to generate
    config = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 512,
              "eos_token_id": [1, 2]}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["profile", str(path), "-H", "local", "--engine", "transformers", "--dtype",
                                       "fp32", "--context", "32", "--measure", "--repeats", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["measured"]["peak_memory_bytes"] > 0


@pytest.mark.parametrize("layout", [
    {"model_type": "mistral", "sliding_window": 16},  # past its window at a context of 32
    {"model_type": "lfm2", "layer_types": ["conv", "full_attention"], "block_auto_adjust_ff_dim": False},
])
def test_a_decode_whose_cache_cannot_drop_its_token_is_timed_on_a_copy(tmp_path, layout):
    """Decode timing drops each step's token to keep the context fixed; a sliding-window layer past its window cannot,
    nor can a state layer (LFM2's convolutions): such a step is timed on a fresh copy of the cache at the context,
    where `profile --measure` had refused the model."""
    config = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 512, **layout}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["profile", str(path), "-H", "local", "--engine", "transformers", "--dtype",
                                       "fp32", "--context", "32", "--measure", "--repeats", "1", "--json"])
    assert result.exit_code == 0, result.output
    points = json.loads(result.stdout)["measured"]["points"]
    assert any(p["kind"] == "decode" and p["tokens"] == 32 and p["measured"] > 0 for p in points), points


@pytest.mark.gpu
def test_measure_on_cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    m = measure(TARGET, dtype="bf16", device="cuda", prefills=((1, 128),), decodes=((4, 256),), repeats=3,
                show_progress=False)
    assert m.device == "cuda" and all(p.median_s > 0 for p in m.points if p.kind != "peak")
    assert m.points[-1].peak_memory_bytes > 0


def test_a_cpu_peak_is_the_runs_not_the_loadings(capsys):
    """On a CPU the peak is the process's high-water mark, reset before the run where Linux allows it: a transient of
    loading (an fp32 checkpoint converted to bf16) is not charged to the run it measures."""
    import os

    import numpy as np
    from optiplan.planner.measure.runtime import vm_hwm_bytes
    from optiplan.planner.measure.workers import print_peak_after

    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("this system keeps its peak resident memory from the process's start (no /proc/self/clear_refs)")
    transient = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    del transient
    loading_peak = vm_hwm_bytes()
    print_peak_after("cpu", lambda: None)
    peak = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["peak_memory_bytes"]
    assert peak < loading_peak - 32 * 2**20
