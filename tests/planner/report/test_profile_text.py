"""The profile's text report names a state-space model's layers instead of placeholder attention heads, and splits
its cache into attention keys/values and fixed recurrent state."""

from __future__ import annotations

from click.testing import CliRunner
from optiplan.planner.cli.main import main


def text(model: str) -> str:
    out = CliRunner().invoke(main, ["profile", model, "-H", "h100-sxm", "--context", "8192"])
    assert out.exit_code == 0, out.output
    return " ".join(out.output.split())


def test_a_pure_ssm_names_its_layers_and_its_state():
    out = text("mamba-codestral-7b")
    assert "64 mamba2" in out and "heads /" not in out
    assert "of it attention 0 B, recurrent and convolution state" in out
    assert "FLOP state scans" in out and "FLOP attention" not in out  # its mixers' FLOPs are scans, not attention


def test_a_hybrid_keeps_its_heads_and_adds_its_layer_mix():
    out = text("jamba-1.5-mini")
    assert "32 heads / 8 KV heads" in out and "layers: 28 mamba, 4 attention" in out
    assert "FLOP attention and state scans" in out


def test_a_transformer_is_unchanged():
    out = text("llama-3.1-8b")
    assert "32 heads / 8 KV heads x 128 (GQA)" in out and "layers:" not in out and "recurrent" not in out
    assert "FLOP attention" in out and "scans" not in out


def run(*args: str) -> str:
    out = CliRunner().invoke(main, ["profile", *args])
    assert out.exit_code == 0, out.output
    return " ".join(out.output.split())


def test_headroom_names_the_share_an_engine_holds_itself_to():
    # vLLM runs within 0.9 of the device: a total under the device's memory can still not fit
    out = run("mixtral-8x7b", "-H", "l40s", "--gpus", "2", "--engine", "vllm")
    assert "does not fit" in out and "vllm uses of it (90%)" in out
    assert "uses of it" not in run("llama-3.1-8b", "-H", "h100-sxm", "--engine", "transformers")


def test_a_pipelines_decode_bytes_are_split_over_its_stages():
    out = run("llama-3.1-70b", "-H", "h100-sxm", "--gpus", "2", "--pp", "2", "--engine", "vllm")
    assert "moved through 2 pipeline stages in turn" in out and "moved per device" not in out


def test_tensor_parallel_on_an_engine_that_splits_layers_is_flagged():
    out = run("llama-3.1-70b", "-H", "h100-sxm", "--gpus", "2", "--tp", "2", "--engine", "llama.cpp", "--dtype", "int4")
    assert "splits a model's layers over its devices by default; --tp 2 predicts" in out
    assert "splits a model's layers" not in run("llama-3.1-70b", "-H", "h100-sxm", "--gpus", "2", "--engine",
                                                "llama.cpp", "--dtype", "int4")


def test_the_requests_fit_line_says_what_waits_and_why():
    # 512 requests where vLLM's cache holds 348 and --max-running caps it at 64: not all fit, 64 run, the rest wait;
    # 32 within the cache fit; 70B in bf16 on one L4 holds not one
    load = ("--engine", "vllm", "--input-tokens", "1000", "--output-tokens", "500")
    assert "fits no: not all 512 caches fit at once; the engine runs up to 64 and the others wait" in \
        run("llama-3.1-8b", "-H", "h100-sxm", *load, "--concurrency", "512", "--max-running", "64")
    assert "fits yes: up to" in run("llama-3.1-8b", "-H", "h100-sxm", *load, "--concurrency", "32")
    assert "fits no: not one request's cache fits" in run("llama-3.1-70b", "-H", "l4", *load, "--concurrency", "4")


def test_nothing_that_does_not_fit_is_counted_as_goodput():
    # Jamba-1.5-mini in bf16 (104.6 GB) on one H100: not one request is served, so none meets an SLO
    from optiplan.planner.analytic.profile import profile
    from optiplan.planner.schema import ProfileRequest

    load = {"input_tokens": 2000, "output_tokens": 500, "concurrency": 4, "ttft_slo_ms": 1000}
    q = profile(ProfileRequest(model="jamba-1.5-mini", hardware="h100-sxm", **load)).requests
    assert not q.fits and not q.meets_slo and q.goodput_requests_per_s == 0 and q.slo_concurrency == 0
    assert "goodput none: not one request's cache fits" in run("jamba-1.5-mini", "-H", "h100-sxm", "--input-tokens",
                                                               "2000", "--output-tokens", "500", "--concurrency",
                                                               "4", "--slo-ttft-ms", "1000")
    assert profile(ProfileRequest(model="llama-3.1-8b", hardware="h100-sxm", **load)).requests.goodput_requests_per_s > 0


def test_a_calibration_says_where_its_fit_hit_its_grid_and_which_models_it_left_out(capsys):
    from optiplan.planner.report.console import print_calibration

    fitted = {"factors": {"flop_efficiency": 0.5, "bandwidth_efficiency": 0.6, "step_overhead_s": 0.0,
                          "layer_overhead_s": 0.003, "host_overlap": True, "matmul_half_tokens": 64},
              "points": [], "median_abs_error_pct": 31.0, "at_grid_edge": True}
    data = {"peak_tflops": {"bf16": 900.0}, "machine": {"gpu": "NVIDIA H200", "cpu": "EPYC"},
            "bandwidth_bytes_per_s": 4e12, "runtime_overhead_bytes": 0, "runtimes": {"transformers": {"bf16": fitted}},
            "skipped": ["llama-3.1-8b: 16.1 GB of weights, 8.0 GB free"]}
    print_calibration(data, "/tmp/x.json")
    out = " ".join(capsys.readouterr().out.split())
    assert "lies at the largest its grid holds" in out and "not fitted on llama-3.1-8b: 16.1 GB of weights" in out
