"""Technique effects measured here (`optiplan calibrate`): ratios against the untouched model, stored in the
calibration file, read back by the planner. Tiny random models and one round keep it to seconds."""

from __future__ import annotations

import pytest
from optiplan.optimizers.effects import calibrate_effects, measure_effects, runnable_here
from optiplan.planner.errors import MeasureError
from optiplan.planner.machine.calibration import CALIBRATION_VERSION, load_calibration, save_calibration

TINY = ((128, 1),)  # (its keys per token, 2 heads of 32, fill the cache backends' groups of 64)


def test_random_weights_never_measure_what_needs_trained_ones():
    run, skipped = runnable_here("cpu", trained=False)
    assert "spec-draft" in skipped and "spec-draft" not in run
    assert "weight-int8" in run and "spec-ngram" in run  # prompt lookup: its step cost, tokens per step recorded
    assert "weight-nf4" in skipped  # CUDA only: the reason says so
    assert "cuda" in skipped["weight-nf4"]


def test_effects_are_ratios_against_the_untouched_model():
    out = measure_effects(techniques=["weight-int8", "kv-int8", "spec-ngram"], rounds=1, show_progress=False,
                          shapes=TINY)
    assert out["models"] == "random weights" and out["device"] == "cpu"
    int8 = out["techniques"]["weight-int8"]["shapes"][0]
    assert int8["hidden"] == 128 and 0.2 < int8["weights_bytes"] < 0.7  # int8 linears, fp32 embeddings kept
    assert int8["cache_bytes"] == pytest.approx(1.0)
    kv = out["techniques"]["kv-int8"]["shapes"][0]
    assert kv["cache_bytes"] < 0.8 and kv["weights_bytes"] == pytest.approx(1.0)
    ngram = out["techniques"]["spec-ngram"]["shapes"][0]
    assert ngram["tokens_per_step"] >= 1.0 and ngram["tpot_ms"] > 0
    # one round: each timed figure's range is that round's ratio, and the round count says it is one
    assert int8["rounds"] == 1
    assert all(int8["range"][f] == [int8[f], int8[f]] for f in ("tpot_ms", "ttft_ms", "batched_tokens_per_s"))


def test_calibrate_stores_effects_beside_the_fit(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTIPLAN_CACHE", str(tmp_path))
    with pytest.raises(MeasureError, match="run `optiplan calibrate`"):
        calibrate_effects(show_progress=False)
    whole = {"calibration_version": CALIBRATION_VERSION, "machine": {"device": "cpu"}, "peak_tflops": {"fp32": 1.0},
             "bandwidth_bytes_per_s": 1e10, "runtime_overhead_bytes": 0, "measured_at": "2026-12-06T00:00:00+00:00"}
    save_calibration(whole | {"runtimes": {"transformers": {}}})
    import optiplan.optimizers.effects as effects

    def fake(models, techniques, rounds, show_progress, dtype):  # the measurement itself is tested above
        names = techniques or ["weight-int8", "kv-int8"]
        return {"techniques": {t: {"shapes": [{"hidden": 64, "tpot_ms": 1.0 + i}]} for i, t in enumerate(names)},
                "skipped": {}, "device": "cpu", "dtype": dtype, "models": "random weights"}

    monkeypatch.setattr(effects, "measure_effects", fake)
    # a host whose estimate has no 16-bit rate either (the calibration's measured rates are merged over the estimate
    # from /proc/cpuinfo: on a CPU with AMX or AVX512-BF16 that estimate alone had made the format bf16)
    host = effects.local_cpu()
    no_bf16 = host.model_copy(update={"peak_tflops": {"fp32": 1.0},
                                      "features": host.features.model_copy(update={"bf16": False})})
    monkeypatch.setattr(effects, "local_cpu", lambda: no_bf16)
    calibrate_effects(rounds=1, show_progress=False)
    stored = load_calibration()
    assert stored["runtimes"] == {"transformers": {}}  # the fit is kept
    assert set(stored["effects"]["techniques"]) == {"weight-int8", "kv-int8"}
    # measuring one technique again keeps the others' earlier measurement
    calibrate_effects(rounds=1, show_progress=False, techniques=["kv-int8"])
    again = load_calibration()["effects"]["techniques"]
    assert set(again) == {"weight-int8", "kv-int8"} and again["kv-int8"]["shapes"][0]["tpot_ms"] == 1.0
    # ... and so does a new fit with -t (`calibrate -t kv-int8`): the CLI hands over the effects the fit replaced
    previous = load_calibration()["effects"]
    save_calibration(whole | {"runtimes": {"transformers": {}}})
    calibrate_effects(rounds=1, show_progress=False, techniques=["kv-int8"], earlier=previous)
    assert set(load_calibration()["effects"]["techniques"]) == {"weight-int8", "kv-int8"}
    # measured in the format plans for this CPU start from: fp32 where the fit measured no faster 16-bit rate ...
    assert load_calibration()["effects"]["dtype"] == "fp32"
    # ... bf16 where it did; the fp32 measurements are not kept beside the bf16 ones
    fast_bf16 = host.model_copy(update={"peak_tflops": {"fp32": 1.0, "bf16": 2.0},
                                        "features": host.features.model_copy(update={"bf16": True})})
    monkeypatch.setattr(effects, "local_cpu", lambda: fast_bf16)
    calibrate_effects(rounds=1, show_progress=False, techniques=["kv-int8"])
    assert load_calibration()["effects"]["dtype"] == "bf16"
    assert set(load_calibration()["effects"]["techniques"]) == {"kv-int8"}
    # a GPU machine's calibration: the CPU's effects would never be read for its `local` GPU, so none is measured
    save_calibration(whole | {"machine": {"device": "cuda"}, "runtimes": {}})
    with pytest.raises(MeasureError, match="measured on the CPU only"):
        calibrate_effects(rounds=1, show_progress=False)
