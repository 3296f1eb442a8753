"""The shares profiles/efficiency.yaml records as fitted to published points are what the fit finds on them
(`benchmarks/bench_published.py --fit-kernel`), and a fit leaves the table as it found it."""

from __future__ import annotations

import pytest
from optiplan import profiles
from script_loader import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/bench_published.py")


def test_the_gguf_kernel_share_is_the_fit_to_llama_cpp_points(bench, capsys):
    entry = profiles.efficiency_table()["weight_kernels"]["ggml-mmvq"]
    documented = entry["bandwidth_efficiency"]
    report = bench.fit_kernel_share(bench.published_points(), "ggml-mmvq")
    assert entry["bandwidth_efficiency"] == documented  # the search restores the table
    assert report["fitted"]["share"] == pytest.approx(documented, abs=0.02)
    # fitted on llama.cpp's Q4_K_M points only, with a third held out of the fit
    assert report["fitted"]["fitted"]["points"] >= 6 and report["fitted"]["held-out"]["points"] >= 3
    assert report["fitted"]["held-out"]["median_pct"] <= 20.0
    assert "ggml-mmvq" in capsys.readouterr().out


def test_only_the_points_read_by_the_kernel_are_fitted(bench):
    points = bench.published_points()
    read = [p for p in points if bench.point_dtype(p) == "int4" and p["engine"] == "llama.cpp"]
    assert read and all(p["dtype"] == "gguf-q4_k_m" for p in read)
    # gpt-fast's int4 reads its weights with tinygemm, not llama.cpp's kernel: its points move with tinygemm's share
    gpt_fast = next(p for p in points if p["engine"] == "gpt-fast" and p["dtype"] == "int4")
    (other, _), (own, _) = bench.predict(gpt_fast), bench.predict(read[0])
    with bench.kernel_share("ggml-mmvq", 0.9):
        assert bench.predict(gpt_fast)[0] == pytest.approx(other)
        assert bench.predict(read[0])[0] > 1.2 * own  # tokens/s: a larger share reads the weights sooner
