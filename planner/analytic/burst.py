"""A burst: N requests sent together, once (an offline benchmark: `vllm bench serve --num-prompts N` without a request
rate, `trtllm-bench throughput`), as means over its requests (`profile --concurrency N --at-once`).

Continuous batching is followed step by step. Each step decodes one token of every sequence whose prompt is in and
fills the rest of the engine's token budget with waiting prompts, in order, a new one only while fewer than the most
it runs at once are in flight (its slots, or the cache's room); an engine that does not chunk takes whole prompts, as
many as its step's budget holds (TensorRT-LLM's max_num_tokens). A step is one forward pass over all its tokens
(`steps.mixed_step`). A request's first token comes out of the step that ends its prompt (of the decode step after
it, where the engine's prefill stops a token short: TurboMind), the rest one per step after. So while prompts wait,
every step carries prompt tokens beside the decoding and a token takes such a step; once the last prompt is in, the
last sequences decode in plain decode steps. GPUStack's vLLM 0.11 runs of Qwen3-14B on an H100 (500 prompts of 2,000
tokens, 100 out) measured a mean TTFT of 50.7 s over a 98.9 s burst: the prompts are taken in over the whole run, not
all at its start. A front end that handles requests one after another (vLLM's API server: `request_host_s`) hands the
engine the k-th no sooner than k + 1 of its turns at taking a request in (`request_admit_share` of its host time), and
starts streaming tokens back only once it has taken the whole burst in, a turn of the rest of its time per request:
GPUStack's bursts of 1,000 requests of 128 tokens in and 4 out to vLLM 0.11 measured mean TTFTs of 0.63-0.91 of the
burst's length, where handing requests over in turn gives half.

An engine that runs prompts first (SGLang: `mixed_prefill: false`) takes waiting prompts, up to its whole budget, in
steps of their own whenever one can be let in, and decodes only in the steps between: the running sequences wait for
those steps. Qwen3-14B-FP8's bursts on an H100 (SGLang 0.5.5, 2,000-32,000-token prompts) measured mean TPOTs 0.69-0.72
of what mixed steps give: with every slot filled at once, the prompts go in back to back, then the sequences decode
without them until a cohort leaves.

The sequences that entered in one step decode together and leave together (a cohort), so a run of steps that take no
prompt tokens is the same step repeated until a cohort leaves or the front end hands over the next request: it is
priced once. The work grows with the requests and the steps that take prompts, not with every token.

Static batches (transformers `generate`) run a burst in waves of as many as run at once: a wave starts when the one
before it ends and its last request has come in, and ends together. The burst lasts until its last request's last
token: output tokens/s is all its tokens over that time.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import cache

from .setup import Setup
from .steps import mixed_step

MOST_REQUESTS = 100_000  # a burst is followed request by request


@dataclass
class Burst:
    """Each request's times, from the burst's start: let in (its prefill starts), first token, last token; and the
    most requests in flight at once."""

    admitted: list[float]
    first: list[float]
    last: list[float]
    most_in_flight: int

    def figures(self, output_tokens: int) -> dict:
        n = len(self.first)
        ttft, finish = sum(self.first) / n, sum(self.last) / n
        itls = [(b - a) / (output_tokens - 1) if output_tokens > 1 else 0.0 for a, b in zip(self.first, self.last)]
        return {"ttft_s": ttft, "itl_s": (finish - ttft) / (output_tokens - 1) if output_tokens > 1 else 0.0,
                "cycle_s": finish, "queue_s": sum(self.admitted) / n, "duration_s": max(self.last),
                "ttfts": self.first, "itls": itls, "running": self.most_in_flight}


def _streamed(s: Setup, burst: Burst) -> Burst:
    """The times its client sees each request's tokens, where the front end also spends host time returning them
    (the share of `request_host_s` not spent taking requests in): it takes every request of the burst in before it
    streams any token back (its handlers of the waiting requests outnumber the one that returns outputs), then starts
    the requests' streams in turn, each after its own turn; a stream keeps the pace the device made its tokens at."""
    out_s = s.request_host_s * (1 - s.request_admit_share)
    if not out_s:
        return burst
    free = len(burst.first) * s.request_host_s * s.request_admit_share  # the last request taken in
    first, last = [], []
    for f, end in zip(burst.first, burst.last):
        free = max(free, f) + out_s
        first.append(free)
        last.append(end + free - f)
    return Burst(burst.admitted, first, last, burst.most_in_flight)


def _continuous(s: Setup, n: int, running: int, input_tokens: int, output_tokens: int, cached: int) -> Burst:
    o, new = output_tokens, max(input_tokens - cached, 1)
    admit_s = s.request_host_s * s.request_admit_share  # the front end's time to take a request in
    held = input_tokens + o // 2  # the mean cache of a decoding sequence over its life
    # a chunking engine's step budget; one that does not chunk takes whole prompts up to its step's tokens
    budget = s.prefill_chunk_tokens or (max(s.step_tokens, new) if s.step_tokens else running * new)
    # a prompt's chunk sits on its data-parallel attention group: at most that group's share of the budget a step, and
    # as many prompts part-way through their prefill as there are groups (one where the budget is one group's)
    lanes = s.attention_dp if s.group_chunk_tokens and s.attention_dp > 1 else 1
    per_prompt = s.group_chunk_tokens if lanes > 1 else budget
    # TurboMind's prefill stops a token short: the first token comes from the decode step after it
    tokens_left = o if s.first_token_decoded else o - 1

    @cache
    def step_s(decoding: int, prompt_tokens: int, alone: bool = False) -> float:
        # a step after the device was idle has nothing before it to hide an eager step's host time under
        cost = mixed_step(s, decoding, held, prompt_tokens, input_tokens, cached)
        return cost.alone_s if alone else cost.time_s

    burst = Burst([0.0] * n, [0.0] * n, [0.0] * n, 0)
    cohorts: deque[tuple[int, int, int]] = deque()  # (the step its last token ends, first request, end request)
    awaiting_first: list[tuple[int, int]] = []  # requests whose first token comes out of the next step
    # the prompt tokens left of the prompts part-way through their prefill, oldest first: the last ones let in (alike,
    # they end in the order they came in)
    partial: deque[int] = deque()
    now, step, decoding, admitted, prefilled, finished = 0.0, 0, 0, 0, 0, 0
    idle = True  # nothing ran before this step
    while admitted < n or partial or decoding:
        arrived = min(n, int(now / admit_s + 1e-9)) if admit_s else n  # the front end's pace
        # a mixed step fills what the decoding leaves of the budget; an engine that prefills first gives waiting prompts
        # the whole budget in a step of their own, the decoding waiting for it
        room = max(budget - decoding, 0) if s.mixed_prefill else budget
        taken = 0
        for k in range(len(partial)):
            bite = min(partial[k], room - taken, per_prompt)
            partial[k], taken = partial[k] - bite, taken + bite
        while partial and not partial[0]:
            partial.popleft()
        while room > taken and len(partial) < lanes and admitted < arrived and admitted - finished < running:
            burst.admitted[admitted] = now
            bite = min(new, room - taken, per_prompt)
            admitted, taken = admitted + 1, taken + bite
            if bite < new:
                partial.append(new - bite)
        done = range(prefilled, admitted - len(partial))  # their prompts end in this step
        prefilled = done.stop
        burst.most_in_flight = max(burst.most_in_flight, admitted - finished)
        if not taken and not decoding:  # nothing to run until the front end hands over the next request
            now, idle = (arrived + 1) * admit_s, True
            continue
        repeats = 1
        if not taken:  # a plain decode step, the same until a cohort leaves or the next request comes in
            repeats = cohorts[0][0] - step
            if admit_s and arrived < n and admitted - finished < running and room:
                wait = (arrived + 1) * admit_s - now
                repeats = min(repeats, max(1, math.ceil(wait / step_s(decoding, 0) - 1e-12)))
        decodes = s.mixed_prefill or not taken  # `step` counts the steps that decode
        dt = step_s(decoding if decodes else 0, taken, idle)
        idle = False
        if decodes:
            for a, b in awaiting_first:
                burst.first[a:b] = [now + dt] * (b - a)
            awaiting_first = []
            while cohorts and cohorts[0][0] <= step + repeats:
                ends_at, a, b = cohorts.popleft()
                burst.last[a:b] = [now + (ends_at - step) * dt] * (b - a)
                finished, decoding = finished + b - a, decoding - (b - a)
            step += repeats
        now += repeats * dt
        if len(done):
            a, b = done.start, done.stop
            if s.first_token_decoded:
                awaiting_first.append((a, b))
            else:
                burst.first[a:b] = burst.last[a:b] = [now] * (b - a)
            if tokens_left:
                cohorts.append((step + tokens_left, a, b))
                decoding += b - a
            else:
                finished += b - a
    return burst


def _static(s: Setup, steady: dict[str, float], n: int, running: int, output_tokens: int) -> Burst:
    burst = Burst([0.0] * n, [0.0] * n, [0.0] * n, min(n, running))
    free = 0.0  # when the device is free for the next wave
    for a in range(0, n, running):
        b = min(a + running, n)
        start = max(free, b * s.request_host_s * s.request_admit_share)  # its last request taken in
        free = start + steady["ttft_s"] + (output_tokens - 1) * steady["itl_s"]
        burst.admitted[a:b], burst.first[a:b], burst.last[a:b] = \
            [start] * (b - a), [start + steady["ttft_s"]] * (b - a), [free] * (b - a)
    return burst


def burst_figures(s: Setup, steady: dict[str, float], n: int, running: int, input_tokens: int, output_tokens: int,
                  continuous: bool, cached: int = 0) -> dict:
    """The burst's mean TTFT (`ttft_s`), inter-token latency (`itl_s`), request latency (`cycle_s`) and wait to be let
    in (`queue_s`), its length (`duration_s`), each request's TTFT and inter-token latency (`ttfts`, `itls`) and the
    most requests in flight (`running`), `running` at most; `steady` is the steady state's figures at that concurrency
    (`requests.request_figures`), a static batch's life."""
    burst = _continuous(s, n, running, input_tokens, output_tokens, cached) if continuous else \
        _static(s, steady, n, running, output_tokens)
    return steady | _streamed(s, burst).figures(output_tokens)
