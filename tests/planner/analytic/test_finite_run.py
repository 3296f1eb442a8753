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
    # a mean too small for the spread keeps its range about itself: no length below one token, the mean kept
    for mean in (1, 2, 5):
        assert sum(run_lengths(80, mean, 1.0)) / 80 == pytest.approx(mean, rel=0.05)
    runs = [{"ttft_s": t, "itl_s": t / 2, "cycle_s": 2 * t, "queue_s": t / 4, "duration_s": 4 * t, "ttfts": [t],
             "itls": [t / 2], "running": 1, "tokens": 3} for t in (1.0, 3.0)]
    mean = mean_of_runs(runs)
    assert (mean["ttft_s"], mean["itl_s"], mean["cycle_s"], mean["queue_s"], mean["duration_s"]) == (2.0, 1.0, 4.0,
                                                                                                      0.5, 8.0)
    assert mean["ttfts"] == [1.0, 3.0] and mean["itls"] == [0.5, 1.5] and mean["tokens"] == 3


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
    import json
    run = json.loads(out.output)["requests"]
    assert run["num_requests"] == 80 and run["concurrency"] == 16
    assert run["requests_per_s"] == pytest.approx(80 / (run["duration_ms"] / 1e3))
    table = CliRunner().invoke(main, ["profile", "qwen3-235b-a22b", "-H", "b200", "--gpus", "8", "--tp", "8",
                                      "--engine", "sglang", "--input-tokens", "500", "--output-tokens", "509",
                                      "--concurrency", "16", "--num-requests", "80"])
    assert table.exit_code == 0 and "a run of 80" in table.output and "the run ends after" in table.output


def test_the_tail_decodes_in_plain_steps_at_the_sequences_left():
    # while requests wait, the steady inter-token latency (its steps carry the arrivals' prompts); after, a plain decode
    # step at however many are left: a faster one shortens the run
    steady = {"ttft_s": 0.0, "itl_s": 2.0, "queue_s": 0.0}
    lengths = run_lengths(80, 500, 1.0)

    def length(decode_s):
        return finite_run([0.0] * 16, 0.0, steady, None, decode_s, 80, 16, lengths)["duration_s"]
    assert length(lambda k: 1.0) < length(lambda k: 2.0)
    assert length(lambda k: k / 16) < length(lambda k: 1.0)  # fewer sequences, shorter steps


def test_a_run_above_what_the_engine_runs_reports_what_it_runs():
    kw = {"model": "llama-3.1-8b", "hardware": "l4", "engine": "vllm", "input_tokens": 4000, "output_tokens": 500}
    steady = profile(ProfileRequest(**kw, concurrency=64)).requests
    run = profile(ProfileRequest(**kw, concurrency=64, num_requests=640)).requests
    assert steady.running < 64 and run.running == steady.running
    assert not run.fits and run.queue_wait_ms > 0


def test_alike_requests_all_in_one_wave_are_a_burst():
    burst, run = requests(concurrency=16, at_once=True), requests(concurrency=16, num_requests=16)
    for key in ("ttft_ms", "itl_ms", "output_tokens_per_s", "duration_ms"):
        assert getattr(run, key) == pytest.approx(getattr(burst, key), rel=1e-9)


def test_more_prompts_in_the_prefix_cache_never_wait_longer():
    figures = [requests(concurrency=16, num_requests=80, length_spread=1.0, input_tokens=4000, warm_requests=k)
               for k in (0, 8, 15, 16, 40, 80)]
    for a, b in zip(figures, figures[1:]):
        assert b.ttft_ms <= a.ttft_ms and b.queue_wait_ms <= a.queue_wait_ms + 1e-9


def test_a_runs_goodput_counts_the_requests_within_the_slo():
    kw = {"concurrency": 16, "num_requests": 80, "length_spread": 1.0, "input_tokens": 4000}
    run = requests(**kw)
    loose, tight = requests(**kw, ttft_slo_ms=60_000), requests(**kw, ttft_slo_ms=run.ttft_ms)
    assert loose.meets_slo and loose.goodput_requests_per_s == pytest.approx(loose.requests_per_s)
    # the first wave's prompts queue behind each other: some wait longer than the mean, some less
    assert not tight.meets_slo and 0 < tight.goodput_requests_per_s < tight.requests_per_s


def test_static_batches_and_engines_without_a_prefix_cache_refuse_what_they_do_not_do():
    with pytest.raises(RequestError, match="static batches do not"):
        requests(concurrency=4, num_requests=8, scheduling="static")
    with pytest.raises(RequestError, match="keeps no prefix cache"):
        profile(ProfileRequest(model="llama-2-7b", hardware="a100-80gb-sxm", engine="lmdeploy", input_tokens=128,
                               output_tokens=128, concurrency=4, num_requests=8, warm_requests=4))


def test_the_median_request_waits_less_than_the_first_wave_makes_the_mean():
    # a cold run's first wave of long prompts goes in together and waits for each other's prefill: the mean TTFT
    # carries it, the median request (in steady state) does not; steady state has every request alike
    run = requests(concurrency=64, num_requests=320, input_tokens=4000, output_tokens=500, length_spread=1.0)
    assert run.ttft_median_ms < 0.8 * run.ttft_ms
    steady = requests(concurrency=64, input_tokens=4000, output_tokens=500)
    assert steady.ttft_median_ms == pytest.approx(steady.ttft_ms)


def test_a_request_with_a_longer_prompt_has_its_first_token_later_by_its_own_prefill():
    steady = {"ttft_s": 1.0, "itl_s": 0.1, "queue_s": 0.0}
    lengths = [10] * 8
    alike = finite_run([1.0, 2.0], 0.0, steady, None, lambda k: 0.1, 8, 2, lengths)
    own = [0.5, -0.5, 0.0, 0.0, 0.25, 0.0, -0.25, 0.0]
    spread = finite_run([1.0, 2.0], 0.0, steady, None, lambda k: 0.1, 8, 2, lengths, own_prefill_s=own)
    assert spread["ttfts"] == pytest.approx([t + o for t, o in zip(alike["ttfts"], own)])


def test_spread_prompts_move_the_median_request_not_the_run():
    """bench_serving's random range ratio spreads the prompts as it does the outputs: at one request at a time each
    request's TTFT is its own prompt's prefill, so the TTFTs spread about the mean prompt's (some requests miss an SLO
    that every alike one meets) while the run's tokens and its mean TTFT (prefill about linear in the prompt) stay
    close; the warm-up's prompt, found whole, then pulls the median request below the mean one."""
    kw = {"concurrency": 1, "num_requests": 10, "length_spread": 1.0, "input_tokens": 4000, "output_tokens": 500}
    alike, spread = requests(**kw), requests(**kw, prompt_spread=1.0)
    assert spread.ttft_ms == pytest.approx(alike.ttft_ms, rel=0.1)
    assert spread.output_tokens_per_s == pytest.approx(alike.output_tokens_per_s, rel=0.05)
    slo = {"ttft_slo_ms": alike.ttft_ms * 1.05}
    assert requests(**kw, **slo).meets_slo and not requests(**kw, **slo, prompt_spread=1.0).meets_slo
    warm_alike, warm_spread = requests(**kw, warm_requests=1), requests(**kw, warm_requests=1, prompt_spread=1.0)
    assert warm_spread.ttft_median_ms < warm_alike.ttft_median_ms - 3  # ms: of a 4,000-token prefill's ~60
    assert "prompts 4,000 +/- 100%" in spread.scheduling
    with pytest.raises(RequestError, match="--prompt-spread describes a run of requests"):
        requests(concurrency=4, input_tokens=4000, prompt_spread=0.5)
    # alike requests all in one wave are a burst; spread prompts are not (a burst would not see their spread)
    wave, spread_wave = requests(concurrency=4, num_requests=4), requests(concurrency=4, num_requests=4, prompt_spread=1)
    assert spread_wave.ttft_median_ms != pytest.approx(wave.ttft_median_ms, rel=1e-3)
    # the longest spread prompt and reply must fit the model's context, not only the means
    with pytest.raises(RequestError, match="longest prompt and reply"):
        requests(model="llama-3.1-8b", hardware="h100-sxm", num_devices=1, tensor_parallel=1, engine="vllm",
                 concurrency=1, num_requests=10, input_tokens=100_000, output_tokens=500, prompt_spread=1.0)
