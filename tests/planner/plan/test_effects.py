"""Measured technique effects: read at a model's width, noise read as no effect, and plans for `local` chosen by
them (a technique measured slower here is not planned for speed; one measured faster is)."""

from __future__ import annotations

from pathlib import Path

import pytest
from optiplan.planner.plan import effects as effects_module
from optiplan.planner.plan.advise import advise
from optiplan.planner.plan.effects import beyond_noise, measured_effects
from optiplan.planner.schema import AdviseRequest

TARGET = Path(__file__).resolve().parents[2] / "assets" / "models" / "target"


def shape(hidden: int, **ratios: float) -> dict:
    full = {"tpot_ms": 1.0, "ttft_ms": 1.0, "batched_tokens_per_s": 1.0, "weights_bytes": 1.0, "cache_bytes": 1.0,
            **ratios}
    return {"hidden": hidden, "layers": 2, **full, "range": {k: [v * 0.99, v * 1.01] for k, v in full.items()}}


def calibration(**techniques: list[dict]) -> dict:
    # bf16: the format `fixed_local_cpu`'s plans start from (its 16-bit rate is its fp32 one)
    return {"effects": {"device": "cpu", "dtype": "bf16", "models": "random weights",
                        "measured_at": "2026-11-29T00:00:00+00:00",
                        "techniques": {t.replace("_", "-"): {"shapes": s} for t, s in techniques.items()},
                        "skipped": {}}}


def test_ratios_are_read_at_the_model_width():
    from optiplan.planner.catalog.hardware import local_cpu
    from optiplan.planner.catalog.models import resolve_model

    spec = resolve_model(str(TARGET))  # 192 wide
    data = calibration(weight_int8=[shape(256, tpot_ms=1.4), shape(1024, tpot_ms=0.7)])
    hw = local_cpu()
    at_192 = measured_effects(spec, hw, "transformers", data)["weight-int8"].ratios["tpot_ms"]
    assert at_192 == pytest.approx(1.4)  # below the narrowest width measured: held there
    wide = spec.model_copy(update={"hidden_size": 512})  # halfway between 256 and 1024 on a log scale
    assert measured_effects(wide, hw, "transformers", data)["weight-int8"].ratios["tpot_ms"] == \
        pytest.approx((1.4 * 0.7) ** 0.5, rel=1e-6)
    assert measured_effects(spec, hw, "vllm", data) == {}  # measured with transformers only
    from optiplan.planner.catalog.hardware import resolve_hardware

    assert measured_effects(spec, resolve_hardware("l4"), "transformers", data) == {}  # not this machine
    gpu = {"effects": {**data["effects"], "device": "cuda"}}
    assert measured_effects(spec, hw, "transformers", gpu) == {}  # measured on another device of this machine
    # measured on fp32 models while the plans start from bf16 ones: an int8 step's ratio against fp32 weights is not
    # its ratio against bf16 ones (a file from before the format was recorded measured fp32)
    only_fp32 = hw.model_copy(update={"peak_tflops": {**hw.peak_tflops, "bf16": hw.peak_tflops["fp32"] / 4}})
    for fp32 in ({**data["effects"], "dtype": "fp32"}, {k: v for k, v in data["effects"].items() if k != "dtype"}):
        assert measured_effects(spec, hw, "transformers", {"effects": fp32}) == {}
        assert measured_effects(spec, only_fp32, "transformers", {"effects": fp32})  # where plans start from fp32


def test_a_ratio_noise_cannot_tell_from_one_is_no_effect():
    noisy = {**shape(256, tpot_ms=1.25), "range": {"tpot_ms": [0.9, 1.4], "batched_tokens_per_s": [0.15, 0.2]},
             "batched_tokens_per_s": 0.18}
    read = beyond_noise(noisy)
    assert read["tpot_ms"] == 1.0 and read["batched_tokens_per_s"] == 0.18
    # one round's timings have no spread to judge them by: read as 1, where its sizes stand
    one = {**noisy, "rounds": 1, "weights_bytes": 0.5,
           "range": {"batched_tokens_per_s": [0.18, 0.18], "weights_bytes": [0.5, 0.5]}}
    assert beyond_noise(one)["batched_tokens_per_s"] == 1.0 and beyond_noise(one)["weights_bytes"] == 0.5
    assert beyond_noise({**one, "rounds": 2})["batched_tokens_per_s"] == 0.18


@pytest.fixture(autouse=True)
def fixed_local_cpu(monkeypatch):
    """`local` as one fixed CPU (two cores with AVX-512's 16 lanes at 2.4 GHz, 16 GB/s, bf16 at its fp32 rate), not
    this host's: a host without AVX-512 halves the estimated peak and puts chat's TTFT past its 500 ms SLO, leaving
    no plan to test."""
    from optiplan.planner.catalog import hardware
    from optiplan.planner.machine.probe import estimated_cpu

    host = estimated_cpu()
    fixed = host.model_copy(update={"peak_tflops": {"fp32": 0.307, "bf16": 0.307, "int8": 0.307},
                                    "memory_bandwidth_bytes_per_s": 16e9,
                                    "features": host.features.model_copy(update={"bf16": True})})
    monkeypatch.setattr(hardware, "estimated_cpu", lambda: fixed)
    hardware.local_hardware.cache_clear()
    yield
    hardware.local_hardware.cache_clear()


def plan_for(monkeypatch, goal: str, data: dict | None, workload: str = "chat"):
    monkeypatch.setattr(effects_module, "load_calibration", lambda: data)
    return advise(AdviseRequest(model=str(TARGET), hardware="local", engine="transformers", goal=goal,
                                workload=workload, concurrency=1))


def test_local_latency_plans_follow_measured_effects(monkeypatch):
    # prompt lookup measured on random weights: 1.6x per token at 1.0 token per step; chat's outputs do not quote the
    # prompt, so it is not planned there at all
    slower = calibration(weight_int8=[shape(256, tpot_ms=1.3, weights_bytes=0.3)],
                         kv_int4=[shape(256, tpot_ms=1.37, cache_bytes=0.16)],
                         torch_compile=[shape(256, tpot_ms=0.73, ttft_ms=0.95)],
                         spec_ngram=[shape(256, tpot_ms=1.6, tokens_per_step=1.0)])
    advice = plan_for(monkeypatch, "latency", slower)
    ids = [s.technique for s in advice.plan.steps]
    assert "torch-compile" in ids and "weight-int8" not in ids and "kv-int4" not in ids
    step = next(s for s in advice.plan.steps if s.technique == "torch-compile")
    assert step.effect_source.startswith("measured here") and "tpot_ms 0.73x" in step.effect_source
    assert advice.plan.predicted.tpot_ms == pytest.approx(advice.baseline.tpot_ms * 0.73, rel=0.02)
    rejected = {r.technique: r.reason for r in advice.rejected}
    assert "weight-int8" in rejected

    assert "outputs quote it" in rejected["spec-ngram"]

    # a step cost the rule's acceptance pays back (0.6 where the outputs quote the prompt, 4 tokens: 2.31 tokens a
    # step): prompt lookup is planned for completions, its source says how
    cheap = calibration(spec_ngram=[shape(256, tpot_ms=1.05, tokens_per_step=1.0)])
    advice = plan_for(monkeypatch, "latency", cheap, workload="code-completion")
    step = next(s for s in advice.plan.steps if s.technique == "spec-ngram")
    assert step.effect_source.startswith("step cost measured here") and "acceptance from the rule" in \
        step.effect_source
    assert advice.plan.predicted.tpot_ms < advice.baseline.tpot_ms

    faster = calibration(weight_int8=[shape(256, tpot_ms=0.6, weights_bytes=0.3)],
                         torch_compile=[shape(256, tpot_ms=1.2)])
    ids = [s.technique for s in plan_for(monkeypatch, "latency", faster).plan.steps]
    assert "weight-int8" in ids and "torch-compile" not in ids


def test_unmeasured_steps_say_they_come_from_the_rule(monkeypatch):
    advice = plan_for(monkeypatch, "memory", None)
    assert advice.plan.steps and all(s.effect_source.startswith("rule:") for s in advice.plan.steps)


def test_memory_plans_keep_speed_within_the_limits(monkeypatch):
    # int8 weights measured at twice the time per token: a memory plan with them breaks TPOT_CEILING, so a plan
    # within the limits is preferred (here: int4 weights, measured cheaper)
    data = calibration(weight_int8=[shape(256, tpot_ms=2.0, batched_tokens_per_s=0.5, weights_bytes=0.3)],
                       weight_int4=[shape(256, tpot_ms=1.2, weights_bytes=0.2)])
    advice = plan_for(monkeypatch, "memory", data)
    ids = [s.technique for s in advice.plan.steps]
    assert "weight-int8" not in ids
    assert advice.plan.predicted.tpot_ms <= 1.5 * advice.baseline.tpot_ms


def test_reports_say_which_effects_were_measured(monkeypatch):
    from optiplan.planner.report.advice import render

    data = calibration(torch_compile=[shape(256, tpot_ms=0.73)], spec_ngram=[shape(256, tpot_ms=1.6)])
    advice = plan_for(monkeypatch, "latency", data)
    assert "torch-compile" in [s.technique for s in advice.plan.steps]
    for fmt in ("text", "md", "html"):
        out = render(advice, fmt)
        flat = " ".join(out.split())  # the text report wraps at 80 columns
        assert "Speed effects measured on this machine" in flat and "tpot_ms 0.73x" in flat, fmt
    assert "Speed effects measured" not in render(plan_for(monkeypatch, "latency", None), "md")
