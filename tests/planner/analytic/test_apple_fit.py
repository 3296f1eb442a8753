"""The Apple GPUs' factors in profiles/efficiency.yaml (`device_kinds.apple`, the serving runtime's `apple` costs) are
what `benchmarks/bench_published.py --fit-apple` finds on llama.cpp's published runs on Apple Silicon, and they hold
out: no neighbour on the fit's grids fits the two thirds better, the held-out third comes closer than at the factors
before the fit, and a fit leaves the table as it found it."""

from __future__ import annotations

import itertools
import statistics

import pytest
from optiplan import profiles
from optiplan.planner.analytic.profile import profile
from optiplan.planner.schema import ProfileRequest
from script_loader import load_script

# the factors before the fit (one M2 Ultra run's shares, the GPUs' 1 ms + 20 us, an assumed half of the ALU peak)
BEFORE = (0.65, 0.45, 0.001, 0.00002, 0.50)


@pytest.fixture(scope="module")
def fits():
    return load_script("benchmarks/published_apple_fits.py")


@pytest.fixture(scope="module")
def published():
    return load_script("benchmarks/published_points.py")


def _near(grid, value):
    i = min(range(len(grid)), key=lambda j: abs(grid[j] - value))
    return tuple(grid[j] for j in (i - 1, i, i + 1) if 0 <= j < len(grid))


def _median(fits, published, points, factors, part):
    with fits.apple_factors(*factors):
        return statistics.median(published.part_errors(points, part))


def test_the_apple_decode_factors_are_a_minimum_of_their_fitted_points(fits, published):
    points = fits.apple_points(published.published_points(), "decode_tokens_per_s")
    assert len(points) >= 12
    documented = fits.documented_apple()
    axes = [_near(grid, value) for grid, value in zip(
        (fits.BANDWIDTH_16BIT_GRID, fits.BANDWIDTH_INT4_GRID, fits.STEP_GRID, fits.LAYER_GRID), documented[:4])]
    best = _median(fits, published, points, documented[:4], "fitted")
    for x in itertools.product(*axes):
        assert _median(fits, published, points, x, "fitted") >= best, x
    # the held-out third comes closer than at the factors before the fit, by more than a few points
    assert _median(fits, published, points, documented[:4], "held-out") + 10 < \
        _median(fits, published, points, BEFORE[:4], "held-out")


def test_the_apple_flop_share_is_a_minimum_of_the_prompt_points(fits, published):
    points = fits.apple_points(published.published_points(), "prefill_tokens_per_s")
    assert len(points) >= 6
    documented = fits.documented_apple()
    best = _median(fits, published, points, documented, "fitted")
    for flop in _near(fits.FLOP_GRID, documented[4]):
        assert _median(fits, published, points, (*documented[:4], flop), "fitted") >= best, flop
    assert best + 10 < _median(fits, published, points, (*documented[:4], BEFORE[4]), "fitted")


def test_a_fit_leaves_the_table_as_it_found_it(fits):
    table = profiles.efficiency_table()
    before = (repr(table["device_kinds"]["apple"]), repr(table["runtimes"]["serving"]))
    with fits.apple_factors(0.6, 0.5, 0.0, 0.0, 0.4):
        assert table["runtimes"]["serving"]["apple"]["layer_overhead_s"] == 0.0
    assert (repr(table["device_kinds"]["apple"]), repr(table["runtimes"]["serving"])) == before


def test_a_prompt_processing_rate_is_the_prompts_tokens_over_its_prefill(published):
    # llama-bench's pp 512: one 512-token prompt from an empty context, predicted as the step's prefill time
    point = next(p for p in published.published_points() if p["metric"] == "prefill_tokens_per_s")
    value, why = published.predict(point, "requests")
    assert why == ""
    r = profile(ProfileRequest(model=published.catalog_model(point["model"]), hardware=point["hardware"],
                               engine="llama.cpp", dtype=published.point_dtype(point),
                               gguf_type=published.point_gguf_type(point), kv_dtype="fp16", batch=1,
                               context=point["input_tokens"] + 128, prompt_tokens=point["input_tokens"]))
    assert value == pytest.approx(point["input_tokens"] * 1e3 / r.latency.ttft_ms, rel=1e-9)
