"""A finite run: N requests, C at a time (`profile --concurrency C --num-requests N`, as `sglang.bench_serving
--num-prompts N --max-concurrency C` sends them): its first wave goes in together, its last requests leave one by one,
and prompts an earlier run sent may be in the prefix cache."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from optiplan.planner.analytic.finite_run import finite_run, mean_of_runs, run_lengths, run_orders
from optiplan.planner.analytic.profile import profile
from optiplan.planner.cli.main import main
from optiplan.planner.errors import RequestError
from optiplan.planner.schema import ProfileRequest


def requests(engine: str = "sglang", **kw):
    base = {"model": "qwen3-235b-a22b", "hardware": "b200", "num_devices": 8, "tensor_parallel": 8, "engine": engine,
            "input_tokens": 500, "output_tokens": 509}
    return profile(ProfileRequest(**{**base, **kw})).requests


def constant_pace(n: int, c: int, spread: float) -> float:
    """The time-averaged concurrency (the requests' total time over the run's, bench_serving's `Concurrency:`) of a run
    whose steps take the same time at any batch, its prompts free."""
    steady = {"ttft_s": 0.0, "itl_s": 1.0, "queue_s": 0.0}
    runs = [finite_run([0.0] * c, 0.0, steady, None, lambda k: 1.0, n, c, lengths)
            for lengths in run_orders(n, 500, spread)]
    return sum(r["cycle_s"] * n / r["duration_s"] for r in runs) / len(runs)


def test_the_lengths_keep_their_mean_and_spread():
    lengths = run_lengths(80, 509, 1.0)
    assert sum(lengths) / 80 == pytest.approx(509, rel=0.01)
    assert min(lengths) <= 10 and max(lengths) >= 1000  # from a few tokens to about twice the mean
    assert run_lengths(80, 509, 0.0) == [509] * 80
    assert run_lengths(80, 509, 1.0) == lengths  # a fixed order: the same prediction every time
    assert len(run_orders(80, 509, 1.0)) == 8 and len(run_orders(80, 509, 0.0)) == 1
    runs = [{"ttft_s": t, "itl_s": 1.0, "cycle_s": 2.0, "queue_s": 0.0, "duration_s": 4.0, "ttfts": [t], "itls": [1.0],
             "running": 1, "tokens": 3} for t in (1.0, 3.0)]
    assert mean_of_runs(runs)["ttft_s"] == 2.0 and mean_of_runs(runs)["ttfts"] == [1.0, 3.0]


def test_the_tail_of_a_run_of_spread_lengths_empties_its_slots():
    # SGLang's cookbook measured 13.61 of 16 over 80 requests of lengths from 1 to 1,000 tokens (Qwen3-235B-A22B, 8
    # B200): the last requests leave one by one
    assert constant_pace(80, 16, 1.0) == pytest.approx(13.61, abs=0.6)
    # alike, they leave together; many waves make the tail a small part of the run
    assert constant_pace(80, 16, 0.0) == pytest.approx(16, rel=1e-6)
    assert constant_pace(8000, 16, 1.0) > 15.9


def test_a_run_is_slower_than_steady_state_and_its_first_wave_waits():
    steady = requests(concurrency=16)
    run = requests(concurrency=16, num_requests=80, length_spread=1.0)
    assert run.num_requests == 80 and run.concurrency == 16
    assert run.output_tokens_per_s < 0.95 * steady.output_tokens_per_s  # the tail's empty slots
    assert run.ttft_ms > steady.ttft_ms  # the first 16 prompts queue behind each other
    assert run.requests_per_s == pytest.approx(80 / (run.duration_ms / 1e3))
    # its rate counts the run's tokens: the mean length's, N of them
    assert run.output_tokens_per_s == pytest.approx(80 * 509 / (run.duration_ms / 1e3), rel=0.01)
    assert "a run of 80 requests, 16 at a time" in run.scheduling
    # a long run of alike requests comes close to steady state
    long = requests(concurrency=16, num_requests=1600)
    assert long.output_tokens_per_s == pytest.approx(steady.output_tokens_per_s, rel=0.03)
    assert long.ttft_ms == pytest.approx(steady.ttft_ms, rel=0.1)


def test_prompts_in_the_prefix_cache_skip_their_prefill():
    cold = requests(concurrency=16, num_requests=80, length_spread=1.0, input_tokens=4000)
    warm = requests(concurrency=16, num_requests=80, length_spread=1.0, input_tokens=4000, warm_requests=80)
    part = requests(concurrency=16, num_requests=80, length_spread=1.0, input_tokens=4000, warm_requests=16)
    assert warm.ttft_ms < part.ttft_ms < cold.ttft_ms
    assert warm.output_tokens_per_s > cold.output_tokens_per_s


def test_a_lone_request_at_a_time_is_steady_state():
    steady = requests(concurrency=1)
    run = requests(concurrency=1, num_requests=10)
    # the first request also waits its turn at the front end, as a burst's does (`test_burst`): a tenth of 6 ms here
    assert run.ttft_ms == pytest.approx(steady.ttft_ms, rel=0.01)
    assert run.itl_ms == pytest.approx(steady.itl_ms, rel=1e-6)
    assert run.output_tokens_per_s == pytest.approx(steady.output_tokens_per_s, rel=1e-3)


@pytest.mark.parametrize(("kw", "message"), [
    ({"concurrency": 16, "num_requests": 8}, "never has 16 in flight"),
    ({"concurrency": 16, "num_requests": 80, "at_once": True}, "give one"),
    ({"concurrency": 16, "length_spread": 1.0}, "give --num-requests too"),
    ({"concurrency": 16, "warm_requests": 4}, "give --num-requests too"),
    ({"concurrency": 16, "num_requests": 80, "warm_requests": 81}, "more than the run's 80"),
    ({"concurrency": 16, "num_requests": 0}, "at least 1"),
])
def test_a_run_that_cannot_be_is_refused(kw, message):
    with pytest.raises(RequestError, match=message):
        requests(**kw)


def test_the_cli_runs_it():
    out = CliRunner().invoke(main, ["profile", "qwen3-235b-a22b", "-H", "b200", "--gpus", "8", "--tp", "8",
                                    "--engine", "sglang", "--input-tokens", "500", "--output-tokens", "509",
                                    "--concurrency", "16", "--num-requests", "80", "--length-spread", "1",
                                    "--warm-requests", "10", "--json"])
    assert out.exit_code == 0, out.output
    assert '"num_requests": 80' in out.output
