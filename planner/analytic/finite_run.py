"""A finite run: N requests, at most C in flight, each taking the next free slot (a benchmark client's `--num-prompts N
--max-concurrency C`), its lengths drawn about their mean, as means over its requests (`profile --concurrency C
--num-requests N`).

Steady state (`requests.request_figures`) is a run that never starts or ends. A run of N requests does both, and its
means carry them:

- **its first C requests go in together**, a burst (`burst.burst_figures`): their prompts queue behind each other, and
  their TTFTs are the burst's. The later ones each take a slot as one frees, and join a full house at its steady TTFT.
  SGLang's cookbook runs 5C requests (80 at 16, 500 at 100), so a fifth of its mean TTFT is the first wave's.
- **its last requests leave one by one**: once no request waits, a finished request's slot stays empty, so the run
  ends with fewer and fewer in flight, and its rate (all its tokens over its length) falls below C in flight's. The
  tail's steps decode fewer sequences, with no prompts beside them: a plain decode step at that many.
  How long the tail lasts depends on how the lengths spread: alike, they leave almost together; drawn from one token
  to twice the mean (`length_spread` 1: `sglang.bench_serving --dataset-name random` at its default
  `--random-range-ratio`), the longest run on alone. SGLang's cookbook measured a time-averaged concurrency of 13.61
  of 16 over 80 such requests (Qwen3-235B-A22B on 8 B200, 1K/1K), where a slot-by-slot draw of those lengths gives 0.85
  at a constant step time (sgl-project/sgl-cookbook @7b5bd9c0, docs/autoregressive/Qwen/Qwen3.md; the
  `Concurrency:` line of bench_serving's output is the requests' total time over the run's).

- **its prompts may be in the prefix cache already**: a client that draws its prompts from a seed sends the same ones
  each run (`sglang.bench_serving`: the i-th prompt of a run at one input length is the i-th of every run at it,
  whatever the count, and every run first sends its first prompt to warm up), so on a server that keeps its prefix
  cache (SGLang's radix cache, on by default) a run's first `warm` prompts are found there when an earlier run sent
  them, their prefill skipped but for the last token. (The cookbook's runs at 1K/8K, after its 1K/1K runs sent the same
  prompts, had mean TTFTs of 176 and 224 ms at 16 and 64 in flight with DeepSeek-R1 on 8 B200 where the 1K/1K runs had
  274 and 563 ms at 16 and 100; that gap is the first waves' one-time stall: their medians, 154 and 158 ms against 132
  and 148, do not show the cache under load, whose saving on 500-token prompts is some milliseconds, and at one request
  140.8 against 126.2 ms is about that saving. The reused prompts stay an inference.)

The requests are followed one by one, in order: each slot takes the next request when its last one leaves. Every
request in flight decodes at the same pace (one token a step), the steady inter-token latency at C while requests
wait, a plain decode step at the number left once none does. The lengths are the run's N evenly spaced quantiles of
the spread, and the figures the means over eight fixed shuffles of them, which stand for the client's random draws
(the same prediction every time): how much the tail empties depends on which lengths come last. Over 80 requests at
16 and lengths from 1 to 1,000 tokens at a constant step time, one shuffle gives a time-averaged concurrency of 12.6 to
14.8 and the mean over 200 draws is 13.5; the mean over the eight, 13.5 as well. A client's random range ratio spreads
the prompts too (`prompt_spread`), drawn apart from the outputs: a request's first token then comes as much later or
sooner as its own prompt takes longer or shorter to prefill than the mean one, the wait before it the same. That
moves the median request (a run's warm prompts, found whole, sit below every fresh one), not the run's tokens.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

# the fixed orders of the lengths' quantiles whose means a run's figures are (shuffles stand for the client's draws)
ORDERS = 8


def run_lengths(n: int, mean: int, spread: float, order: int = 0) -> list[int]:
    """N output lengths about `mean`: evenly spaced quantiles of the uniform spread mean x [1 - spread, 1 + spread],
    in the fixed shuffled order `order`; at least one token each, the range kept about the mean where its low end
    would be below one token (so the lengths keep their mean)."""
    low = max(mean * (1 - spread), 1.0)
    lengths = [max(round(low + 2 * (mean - low) * (j + 0.5) / n), 1) for j in range(n)]
    random.Random(order).shuffle(lengths)
    return lengths


def run_orders(n: int, mean: int, spread: float, orders: int | None = None) -> list[list[int]]:
    """The orders of the run's lengths its figures are the means of: ORDERS shuffles, one where all are alike
    (`orders`: that many, whatever the spread)."""
    return [run_lengths(n, mean, spread, k) for k in range(orders or (ORDERS if spread else 1))]


def prompt_orders(n: int, mean: int, spread: float, orders: int) -> list[list[int]]:
    """The run's prompt lengths in each of its `orders`, shuffled apart from its output lengths (a client draws
    them independently)."""
    return [run_lengths(n, mean, spread, ORDERS + k) for k in range(orders)]


def mean_of_runs(runs: list[dict]) -> dict:
    """The figures of one run as the means of the same run in its orders (`run_orders`): each request's TTFT and
    inter-token latency from all of them."""
    out = {key: sum(r[key] for r in runs) / len(runs) for key in ("ttft_s", "itl_s", "cycle_s", "queue_s", "duration_s")}
    return out | {"ttfts": [t for r in runs for t in r["ttfts"]], "itls": [i for r in runs for i in r["itls"]],
                  "running": runs[0]["running"], "tokens": runs[0]["tokens"]}


def finite_run(first_wave: list[float], wave_queue_s: float, steady: dict, warm_steady: dict | None,
               decode_s: Callable[[int], float], n: int, c: int, lengths: list[int], warm: int = 0,
               own_prefill_s: list[float] | None = None) -> dict:
    """The run's means: TTFT (`ttft_s`), the mean over requests of their inter-token latency (`itl_s`), the mean
    request latency (`cycle_s`) and wait for a slot (`queue_s`), its length (`duration_s`), each request's TTFT and
    inter-token latency (`ttfts`, `itls`), the most in flight (`running`) and its output tokens (`tokens`).
    `first_wave`: the TTFTs of its first C requests, sent at once (the server's latency included), `wave_queue_s` their
    mean wait to be let in; `steady` (`warm_steady`): the figures at C in flight of requests whose prompts are not (are)
    in the prefix cache, the first `warm` requests' being; `decode_s(k)`: a plain decode step with k sequences;
    `own_prefill_s`: how much longer each request's own prompt takes to prefill than the mean one (its first token
    that much later; none: the prompts alike)."""
    own = own_prefill_s or [0.0] * n
    first_at = [0.0] * n  # each request's first token, from the run's start
    start = [0.0] * n
    finish = [0.0] * n
    waiting = list(range(min(c, n), n))[::-1]  # the requests not yet sent, next last
    prefilling: list[tuple[float, int]] = []  # (first token time, request)
    decoding: list[tuple[float, int]] = []  # (the token clock at which its last token comes, request)
    for r in range(min(c, n)):
        first_at[r] = first_wave[r] + own[r]
        heapq.heappush(prefilling, (first_at[r], r))
    now, clock = 0.0, 0.0  # the token clock: tokens each decoding request has made since the start

    def figures(r: int) -> dict:
        return warm_steady if r < warm and warm_steady else steady

    while prefilling or decoding:
        in_flight = len(prefilling) + len(decoding)
        # while requests wait the house is full and its steps carry their prompts (the next one's kind sets their
        # pace); after, plain decode steps
        itl = (figures(waiting[-1])["itl_s"] or decode_s(c)) if waiting else decode_s(in_flight)
        next_first = prefilling[0][0] if prefilling else float("inf")
        next_last = now + (decoding[0][0] - clock) * itl if decoding else float("inf")
        if next_first <= next_last:
            t, r = heapq.heappop(prefilling)
            clock += (t - now) / itl if decoding else 0.0
            now = t
            if lengths[r] > 1:
                heapq.heappush(decoding, (clock + lengths[r] - 1, r))
                continue
        else:
            target, r = heapq.heappop(decoding)
            clock, now = target, next_last
        finish[r] = now
        if waiting:
            nxt = waiting.pop()
            start[nxt], first_at[nxt] = now, now + figures(nxt)["ttft_s"] + own[nxt]
            heapq.heappush(prefilling, (first_at[nxt], nxt))
    ttfts = [f - s for f, s in zip(first_at, start)]
    itls = [(e - f) / (k - 1) if k > 1 else 0.0 for f, e, k in zip(first_at, finish, lengths)]
    spoken = [i for i, k in zip(itls, lengths) if k > 1]
    wave = min(c, n)
    later = sum(figures(r)["queue_s"] for r in range(wave, n))
    return {
        "ttft_s": sum(ttfts) / n, "itl_s": sum(spoken) / len(spoken) if spoken else 0.0,
        "cycle_s": sum(e - s for e, s in zip(finish, start)) / n, "queue_s": (wave * wave_queue_s + later) / n,
        "duration_s": max(finish), "ttfts": ttfts, "itls": itls, "running": wave, "tokens": sum(lengths),
    }
