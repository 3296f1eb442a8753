"""Prompts whose first tokens are in the engine's prefix cache (`profile --cached-tokens N`): a system prompt every
request shares, or the prefix of an earlier run's prompt; and the derivation of the SGLang cookbook runs' cache from
bench_serving's seed (benchmarks/bench_serving_prompts.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from optiplan.planner.analytic.profile import profile
from optiplan.planner.cli.main import main
from optiplan.planner.errors import RequestError
from optiplan.planner.schema import ProfileRequest
from script_loader import load_script


def requests(**kw):
    base = {"model": "llama-3.1-70b", "hardware": "a100-80gb-sxm", "num_devices": 8, "engine": "sglang",
            "input_tokens": 4000, "output_tokens": 500}
    return profile(ProfileRequest(**{**base, **kw})).requests


def test_a_cached_prefix_skips_its_prefill_and_only_that():
    cold, half = requests(concurrency=1), requests(concurrency=1, cached_tokens=2000)
    nearly = requests(concurrency=1, cached_tokens=3999)
    assert nearly.ttft_ms < half.ttft_ms < cold.ttft_ms
    # at one request the prefill of 2,000 tokens of 4,000 is about half of the device's part of the TTFT: the server's
    # fixed first-token latency and attention over the cached half stay
    device = cold.ttft_ms - nearly.ttft_ms
    assert cold.ttft_ms - half.ttft_ms == pytest.approx(device / 2, rel=0.2)
    # a lone request's decode steps are the same; under load the prompts' chunks leave the steps sooner
    assert half.itl_ms == pytest.approx(cold.itl_ms, rel=0.01)
    loaded_cold, loaded = requests(concurrency=16), requests(concurrency=16, cached_tokens=2000)
    assert loaded.itl_ms < loaded_cold.itl_ms and loaded.output_tokens_per_s > loaded_cold.output_tokens_per_s
    assert "first 2,000 tokens found in the prefix cache" in loaded.scheduling


def test_a_run_finds_its_warm_prompts_whole_and_the_others_prefix():
    run = {"concurrency": 16, "num_requests": 80, "length_spread": 1.0, "warm_requests": 10}
    cold, prefixed = requests(**run), requests(**run, cached_tokens=500)
    assert prefixed.ttft_median_ms < cold.ttft_median_ms and prefixed.ttft_ms < cold.ttft_ms
    assert "(the run's first 10 found whole)" in prefixed.scheduling


@pytest.mark.parametrize(("kw", "message"), [
    ({"input_tokens": None, "output_tokens": None, "cached_tokens": 100}, "give --input-tokens"),
    ({"cached_tokens": 4000}, "leaves nothing of the 4,000-token prompt"),
    ({"engine": "lmdeploy", "cached_tokens": 100}, "lmdeploy keeps no prefix cache"),
    ({"cached_tokens": -1}, "greater than or equal to 0"),
])
def test_a_prefix_that_cannot_be_cached_is_refused(kw, message):
    with pytest.raises((RequestError, ValueError), match=message):
        requests(**kw)


def test_the_cli_takes_it():
    args = ["profile", "llama-3.1-70b", "-H", "a100-80gb-sxm", "--gpus", "8", "--engine", "sglang",
            "--input-tokens", "4000", "--output-tokens", "500", "--concurrency", "4", "--json"]
    cold = json.loads(CliRunner().invoke(main, args).output)["requests"]
    out = CliRunner().invoke(main, [*args, "--cached-tokens", "3000"])
    assert out.exit_code == 0, out.output
    warm = json.loads(out.output)["requests"]
    assert warm["ttft_ms"] < cold["ttft_ms"]
    refused = CliRunner().invoke(main, [*args[:-1], "--cached-tokens", "5000"])
    assert refused.exit_code != 0 and "leaves nothing" in refused.output


def test_the_seed_reproduces_the_cookbook_runs():
    """bench_serving's lengths come from numpy's legacy generator seeded with 1: the cookbook's 10-prompt runs at 1K and
    8K printed 6,101 and 41,941 input tokens and 4,220 generated; the 8K prompts begin with the 1K prompts of the same
    index, so the i-th 8K prompt finds min(1K length, 8K length) of its tokens cached after the 1K runs."""
    prompts = load_script("benchmarks/bench_serving_prompts.py")
    inputs, outputs = prompts.random_lengths(1000, 1000, 10)
    assert (inputs.sum(), outputs.sum()) == (6101, 4220)
    assert prompts.random_lengths(8000, 1000, 10)[0].sum() == 41941
    runs = [(1000, 1000, 10, 1), (1000, 1000, 80, 16), (8000, 1000, 10, 1), (8000, 1000, 80, 16)]
    cache = prompts.run_cache(runs)
    assert [cache[r]["warm"] for r in runs] == [1, 10, 1, 10]  # the warm-up's prompt, then the earlier run's
    assert cache[runs[0]]["cached_tokens"] == 0
    long, short = prompts.random_lengths(8000, 1, 10)[0], prompts.random_lengths(1000, 1, 10)[0]
    assert cache[runs[2]]["cached_tokens"] == int(sum(min(a, b) for a, b in zip(long[1:], short[1:])) / 9)


def test_prompts_no_earlier_run_sent_find_nothing_cached():
    """An 8K run of more prompts than the 1K runs sent: its prompts past theirs share no prefix, and count as such in
    the mean."""
    prompts = load_script("benchmarks/bench_serving_prompts.py")
    runs = [(1000, 1000, 10, 1), (8000, 1000, 80, 16)]
    long, short = prompts.random_lengths(8000, 1, 80)[0], prompts.random_lengths(1000, 1, 10)[0]
    shared = sum(min(a, b) for a, b in zip(long[1:10], short[1:10]))
    assert prompts.run_cache(runs)[runs[1]]["cached_tokens"] == int(shared / 79)


def test_the_cookbook_points_carry_the_derived_cache():
    prompts = load_script("benchmarks/bench_serving_prompts.py")
    pages = sorted(prompts.PUBLISHED.glob("sglang-cookbook-*.yaml"))
    assert len(pages) >= 4
    for page in pages:
        _, problems = prompts.check_page(page)
        assert problems == [], problems
