"""Request-level predictions: requests of I input and O output tokens served C at a time, prefill included.

A decode step's rate (`batch / step time`) is not a serving throughput: every request also needs its prompt
prefilled, and a scheduler decides how prefill and decode share the device. Two schedulers are modelled, in steady
state with C requests always in flight (a closed loop: a finished request's slot takes the next one at once):

- **continuous batching with chunked prefill** (vLLM, SGLang, TensorRT-LLM, TGI; the `serving` runtime): decode
  steps of the C running sequences carry chunks of the waiting prompts. In the time C requests take to finish once
  (a *cycle*) the device runs (O - 1) decode steps at batch C; the scheduler gives a waiting prompt the step's token
  budget as soon as it arrives (the engine's chunk less the C decode tokens, or the whole prompt where it is shorter
  or the engine does not chunk), so the C x I prompt tokens ride on that many steps of a chunk each and the other
  steps decode alone. A step carrying a chunk is one forward pass over all its tokens (`steps.mixed_step`): the
  linear layers' rows grow against one read of the weights, so the chunk's matmuls cost nothing more until they
  outgrow that read, while its attention and the decode tokens' cache reads are kernels of their own, whose times
  add. Where the budget cannot take a cycle's tokens in O - 1 steps, more steps run, each advancing fewer
  sequences.
  A request's first token waits for its chunks (the step budget less the C decode tokens per step); inter-token
  latency is what is left of the cycle after it, per token.
  An engine that runs prompts first, in steps of their own (SGLang: `mixed_prefill: false`), gives a waiting prompt
  the whole budget at once, and its (O - 1) decode steps of all C sequences wait for those steps: the cycle is both,
  and a prompt waits for the prompts queued ahead of it (M/D/1's mean wait against the decoding, at most half the
  other prompts'), so a prompt-heavy load waits most of its cycle for the first token, as a burst does.
- **a static batch** (transformers `generate`; the `transformers` runtime): the C prompts prefill together, then
  O - 1 decode steps; the batch ends together: `T = t_prefill(C, I) + (O - 1) x t_decode(C)`.

An engine whose scheduler runs a batch ahead of the device (SGLang's overlap scheduler, TensorRT-LLM's PyTorch
executor: `schedules_ahead`) has formed and launched the next batch before a request that comes in during a step is
received: its prompt joins the batch after that one, a mean step later than an eager scheduler's. The request waits
that step outside the batch while the device runs the others', so its first token and its round trip come a step
later and its inter-token latency is the same (where the step budget binds, the prompts' queue takes the step in).
Alone (one request in flight) nothing runs ahead of it; a burst's prompts, all in at once, are not charged it.

An engine whose prefill stops one prompt token short (TurboMind up to LMDeploy 0.1.0a1: `first_token: decode_step`)
computes the first token in a decode step after the prefill: its TTFT carries that step too (the prefill's one token
fewer is not subtracted).

An engine whose front end spends a fixed host time on each request, one after another (vLLM's API server:
`request_host_s`), completes at most 1 / that requests per second: T is at least C x that, the rest a wait before
the prefill (it binds on short requests served many at once). Over HTTP each request also waits a fixed time for its
first token beyond the device's work and that pacing (`first_token_latency_s`: what the engines' measured TTFTs leave
once both are counted), at any load: it adds to TTFT and to the time each client's slot is held, not to the device's.

Then output tokens/s = C x O / T, requests/s = C / T, request latency = TTFT + (O - 1) x ITL. Goodput is the rate
of requests that meet both SLOs (all requests here are alike, so it is all or none), and the SLO concurrency the
largest C at which they are met. The decode context is the mean over a request's life, I + O / 2 (a static cache,
gpt-fast's, is read whole at every step: I + O).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import replace
from functools import cache

from ..catalog.served import SHARED_POOL
from ..errors import RequestError
from ..schema import RequestProfile
from .burst import MOST_REQUESTS, burst_figures
from .finite_run import ORDERS, finite_run, mean_of_runs, prompt_orders, run_orders
from .kvcache import cache_tokens_held
from .memory import max_batch, pooled_max_batch
from .setup import Setup
from .speculation import Speculating, speculation_bytes, with_speculation
from .step_cost import StepCost
from .steps import decode_step, first_token_step_s, mixed_step, prefill_step


def cached_tokens(tokens: int, prefix_fraction: float) -> int:
    """Prompt tokens found in the prefix cache: the shared share of the prompt, at least one token computed."""
    return min(int(tokens * prefix_fraction), tokens - 1)


def prefill_passes(s: Setup, batch: int, prompt: int, cached: int = 0) -> tuple[StepCost, float]:
    """`batch` prompts' prefill as passes: the first one, and the time of the others after it. One pass, or where the
    engine chunks prompts at its step budget (`group_chunk_tokens`: vLLM's and SGLang's budget, a data-parallel
    attention group's share of it, llama.cpp's logical batch) one pass per budget's worth: whole prompts side by side
    where they are shorter, else each prompt's chunks in turn, each chunk attending to the ones before it and reading
    the weights again. The later passes' host time comes under the pass before where the scheduler runs a batch
    ahead (else in series: `steps.with_host_time`); the first's comes in series with nothing running before it
    (`StepCost.alone_s`, `prompts_prefill_s`) and under the pass before where one runs right ahead of it
    (`StepCost.time_s`: a busy disaggregated prefill instance). One pass for a lone 4,000-token prompt of
    Qwen3-Next on four L40S with llama.cpp (2,048-token batches) had made one request in flight slower than two, whose
    prompts the loaded steps take in chunks (llama.cpp's 512-token physical batches, each of which reads the weights
    too, are not modelled). Several prompts under data-parallel attention spread over the groups: one pass, as before.
    """
    chunk, start = int(s.group_chunk_tokens or 0), min(cached, prompt - 1)
    new = prompt - start
    if not chunk or batch * new <= chunk or (batch > 1 and s.attention_dp > 1):
        return prefill_step(s, batch, prompt, start), 0.0
    if new <= chunk:  # whole prompts, as many as a pass takes, the rest in a last pass
        full, rest = divmod(batch, chunk // new)
        step = prefill_step(s, chunk // new, prompt, start)
        return step, (full - 1) * step.time_s + (prefill_step(s, rest, prompt, start).time_s if rest else 0.0)
    ends = list(range(start + chunk, prompt, chunk)) + [prompt]
    one = [prefill_step(s, 1, end, begin) for begin, end in zip([start, *ends[:-1]], ends)]  # one prompt's chunks
    return one[0], sum(p.time_s for p in one[1:]) + (batch - 1) * sum(p.time_s for p in one)


def prompts_prefill_s(s: Setup, batch: int, prompt: int, cached: int = 0) -> float:
    """`batch` prompts' prefill with nothing running before it, in the engine's passes (`prefill_passes`)."""
    first, rest_s = prefill_passes(s, batch, prompt, cached)
    return first.alone_s + rest_s


def lone_prefill_s(s: Setup, prompt: int, cached: int = 0) -> float:
    """A lone prompt's prefill with nothing running before it, in the engine's chunks (`prompts_prefill_s`)."""
    return prompts_prefill_s(s, 1, prompt, cached)


def held_context(s: Setup, input_tokens: int, output_tokens: int) -> int:
    """The cache a decode step reads, on average over a request's life; a static buffer is read whole every step."""
    return input_tokens + output_tokens if s.layout == "static" else input_tokens + output_tokens // 2


def request_figures(s: Setup, input_tokens: int, output_tokens: int, concurrency: int, continuous: bool,
             cached_tokens: int = 0, own: tuple[int, int] | None = None) -> dict[str, float]:
    """`own`: (input tokens, cached tokens) of the request whose first token `ttft_s` is, among `concurrency` of the
    given lengths (a p95 prompt under the mean prompts' load); by default one of them."""
    c, i, o = concurrency, input_tokens, output_tokens
    own_i, own_cached = own or (i, cached_tokens)
    held = held_context(s, i, o)
    if continuous:
        new = max(i - cached_tokens, 1)
        # a cycle's tokens: c prompts and c x (O - 1) decode tokens, at most `chunk` per step (an engine that does not
        # chunk takes whole prompts beside the decode tokens: in-flight batching mixes them all the same)
        chunk = s.prefill_chunk_tokens
        mixed = s.mixed_prefill  # else the prompts run in steps of their own, first (SGLang): every decode step has all c
        # an engine that does not chunk still takes at most its step budget a step, whole prompts (`step_tokens`)
        budget = chunk or (max(s.step_tokens, new) if s.step_tokens else None)
        steps = max(o - 1, math.ceil(c * (new + o - 1) / budget) if budget and mixed else 1, 1)
        running = max(round(c * (o - 1) / steps), 1)  # decode tokens per step: all c, unless the budget binds
        decode = decode_step(s, running, held)

        def step_s(prompt_tokens: float) -> float:
            # a decode step carrying prompt tokens, priced as the one forward pass it is: the linear layers' rows grow
            # (their compute shows where it outgrows the weights' read, and the kernel is the one for that many
            # rows), while the decode attention's cache reads and the prompt's attention FLOPs are kernels of their
            # own, whose times add. Hiding the prompt's compute under the whole step's bytes hid a 1,000-token prompt
            # under the decode attention's cache reads, which no kernel overlaps with a GEMM.
            return mixed_step(s, running if mixed else 0, held, prompt_tokens, i, cached_tokens).time_s

        # the scheduler gives a waiting prompt the step's budget as soon as it arrives, so prompt tokens come in whole
        # chunks (a whole prompt where it is shorter than the budget or the engine does not chunk), not spread thinly
        # over every step: a step carrying one takes the chunk's matmuls beyond the weights' read and its attention
        # and activations, and the decode tokens in it wait. Spread evenly, a 70B's 5,000-token prompts hid under the
        # decode steps' weight reads, and NIM's 25 users came out 0.72x of their measured inter-token latency.
        # Requests arrive one by one (a finished one's slot refills), so a step carries several prompts only where the
        # cycle's prompts need more than one chunk per step.
        # what a waiting prompt gets per step: its data-parallel attention group's share of the budget, less the
        # group's decode tokens (all of it in a prompt step of its own, where the engine runs prompts first)
        head = max((chunk - (running if mixed else 0)) / s.attention_dp, 1) if chunk else new
        room = max(min(head, new), c * new / steps)
        if chunk and not mixed:
            room = min(room, head)  # a prompt step of its own takes at most the budget
        chunk_steps = c * new / room
        # a prefill-first engine's prompt steps come on top of its O - 1 decode steps, which all still run
        decode_steps = steps - chunk_steps if mixed else o - 1
        decoding_s = decode_steps * decode.time_s
        prompts_s = chunk_steps * step_s(room)  # the steps carrying a cycle's prompts
        cycle = prompts_s + decoding_s
        mean_step = cycle / max(steps if mixed else decode_steps + chunk_steps, 1)
        # Run first, prompts wait only for the prompts ahead of them: a queue served one prompt's steps at a time,
        # whose arrivals (a finished request's slot refilling) come at random against the decoding: its mean wait
        # (M/D/1: utilisation / (2 (1 - utilisation)) services) is c S^2 / 2D for prompts of S seconds among D
        # seconds of decode steps per cycle, and no more than the other c - 1 prompts ahead of it, half on average.
        # A prompt-heavy load (long prompts, few tokens out) waits most of a cycle for its first token and then
        # decodes in plain steps; prompts kept to one step each, as before, wait a fraction of a step.
        prompt_s = prompts_s / c
        queue_s = 0.0 if mixed else min(c * prompt_s ** 2 / (2 * decoding_s) if decoding_s else math.inf,
                                        (c - 1) * prompt_s / 2)
        if c == 1:
            ttft = lone_prefill_s(s, i, cached_tokens)  # alone, its own pass(es), nothing before them
            extra = lone_prefill_s(s, own_i, own_cached) - ttft if own else 0.0
        else:
            # it joins at a step boundary (half a mean step's wait), and each of its steps carries what a step carries
            # in steady state: with many prompts per cycle, others' prompt tokens beside its own (up to the budget).
            # Its own prompt alone in the step put a 1B's TTFT at 512 tokens and 1,000 users below its inter-token
            # latency, though the first token comes out of one of those same steps.
            # Without chunking a step takes whole prompts, as many as steady state brings (`room`), its own among them.
            # A longer prompt of its own (`own`) fills its steps' budget, its chunks beside the others' prompt tokens:
            # what its steps take beyond a mean prompt's comes on top of the mean request's first token.
            prompt_steps_s = math.ceil(new / head) * step_s(min(room, head) if chunk else room)
            ttft = prompt_steps_s + mean_step / 2 + queue_s
            extra = 0.0
            if own:
                own_new = max(own_i - own_cached, 1)
                if chunk:
                    own_steps = math.ceil(own_new / head)
                    carried = min(head, max(room, own_new / own_steps))
                else:  # whole prompts: its own in place of a mean one among the step's
                    own_steps, carried = 1, room + own_new - new
                extra = own_steps * step_s(carried) - prompt_steps_s
        # a scheduler that runs a batch ahead (`schedules_ahead`) takes an arriving prompt into the batch after the
        # one it has launched: the request waits a mean step outside the batch, which the device spends on the
        # others' steps, so its round trip grows by the step (as by the server's latency: `queued`), not its
        # inter-token latency; where the budget binds, the prompts' queue takes it in
        ahead = late = mean_step if s.schedules_ahead and c > 1 else 0.0
        # alone, the step reads the prompt's cache; in company, it is the running batch's step (their caches held)
        first = first_token_step_s(s, running, i if c == 1 else held)
        ttft += first
        if c == 1:  # alone: its prompt's passes, then plain decode steps
            itl = decode.time_s if o > 1 else 0.0
            cycle = ttft + (o - 1) * itl
        elif o > 1 and steps > o - 1:
            # the budget binds: the running sequences decode in every step and the prompts wait for room in the
            # queue, so the wait is the first token's and the time between tokens a step's
            itl = cycle / steps
            queued_ttft = max(ttft, cycle - (o - 1) * itl)
            ttft = max(ttft + ahead, queued_ttft)  # the queue's wait takes the step in
            ahead, late = ttft - queued_ttft, 0.0  # what of the step is charged, already in the TTFT
            cycle = ttft + (o - 1) * itl
        elif o > 1:
            cycle = max(cycle, ttft)
            itl = max((cycle - ttft) / (o - 1), decode.time_s)
            cycle = ttft + (o - 1) * itl
        else:  # one token out: the cycle is the C prompts' steps, and (Little's law) each request spends it
            itl = 0.0
            ttft = cycle + first
            cycle = ttft
        ttft, cycle = ttft + late, cycle + late
        decode_s = decode.time_s  # the plain decode step of `running` sequences, without prompt chunks
    else:
        ttft = prefill_step(s, c, i, cached_tokens).time_s + first_token_step_s(s, c, i)
        # a static batch prefills together, padded to its longest prompt: a longer one of its own (`own`) sets the pass
        extra = prefill_step(s, c, own_i, own_cached).time_s + first_token_step_s(s, c, own_i) - ttft if own else 0.0
        itl = decode_s = decode_step(s, c, held).time_s if o > 1 else 0.0
        cycle = ttft + (o - 1) * itl
        ahead, running = 0.0, c
    # `decode_rows`: the sequences a plain decode step advances (`decode_s`'s), fewer than c where the budget binds
    return {"ttft_s": ttft + extra, "itl_s": itl, "cycle_s": cycle, "decode_s": decode_s, "ahead_s": ahead,
            "decode_rows": running}


def queued(f: dict[str, float], concurrency: int, running: int, latency_s: float = 0.0) -> dict[str, float]:
    """The figures of `concurrency` requests in a closed loop when only `running` fit at once: the device serves
    `running` at a time (their cycle), so requests leave at running / cycle per second and, by Little's law, each
    spends concurrency / that rate in the system; the difference waits in the queue before its prefill starts. Each
    request also waits `latency_s` outside the device (the server's first-token latency): a client's round trip is at
    least its cycle and that, and the queue absorbs it where the device is the bound."""
    cycle = f["cycle_s"]
    trip = cycle + latency_s if concurrency <= running else max(cycle + latency_s, cycle * concurrency / running)
    wait = max(trip - cycle - latency_s, 0.0) if concurrency > running else 0.0
    # the first token keeps its place in the round trip (a one-token request's first token is its last)
    return f | {"queue_s": wait, "ttft_s": trip - (cycle - f["ttft_s"]), "cycle_s": trip}


def served_latency(f: dict, latency_s: float) -> dict:
    """A burst's figures with each request's fixed first-token latency over HTTP added: its first token and everything
    after it come that much later to the client, and the burst ends that much later; the device's work is the same."""
    if not latency_s:
        return f
    return f | {"ttft_s": f["ttft_s"] + latency_s, "cycle_s": f["cycle_s"] + latency_s,
                "ttfts": [t + latency_s for t in f["ttfts"]], "duration_s": f["duration_s"] + latency_s}


def front_end(f: dict[str, float], concurrency: int, host_s: float) -> dict[str, float]:
    """The figures when the engine's front end (its API server: parsing, tokenizing, streaming) spends `host_s` on
    each request in turn: requests leave at most 1 / host_s per second, so by Little's law each of `concurrency`
    spends at least concurrency x host_s in the system; the difference waits before its prefill starts."""
    cycle = concurrency * host_s
    if cycle <= f["cycle_s"]:
        return f
    wait = cycle - f["cycle_s"]
    return f | {"queue_s": f["queue_s"] + wait, "ttft_s": cycle - (f["cycle_s"] - f["ttft_s"]), "cycle_s": cycle}


def largest_concurrency(s: Setup, input_tokens: int, output_tokens: int, on_demand: bool = False,
                        sp: Speculating | None = None) -> int:
    """As many requests as fit beside the weights (and a speculative draft's, each request's draft cache beside its
    own), each holding `cache_tokens_held`, in the cache the engine sizes at start-up where it does
    (`memory.pooled_max_batch`)."""
    held = cache_tokens_held(input_tokens, output_tokens, on_demand)
    return pooled_max_batch(s, held, input_tokens, draft=speculation_bytes(s, sp, held))


def running_limit(s: Setup, room: int) -> int:
    """What runs at once of `room` requests the cache holds: no more than the engine's running cap (`running_cap`);
    the others wait for a slot."""
    cap = running_cap(s)
    return min(room, cap) if cap and room >= 1 else room


def largest_meeting(limit: int, meets: Callable[[int], bool]) -> int:
    """The largest concurrency up to `limit` at which `meets` holds, the figures worsening with concurrency; 0 where
    not even one request meets it."""
    if limit < 1 or not meets(1):
        return 0
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if meets(mid) else (lo, mid - 1)
    return lo


def running_cap(s: Setup) -> int | None:
    """The most requests the engine runs at once, whatever room the cache has (the others wait): vLLM's max_num_seqs
    per scheduler, TGI's in-flight limit, or, where the deployment sets no cap of its own, SGLang's request pool, which
    it sizes from the cache tokens one data-parallel worker holds against the model's context length (a
    --max-running-requests sizes the pool instead); never more than the engine can run at all (llama.cpp's 256
    sequences)."""
    caps = [s.max_running] if s.max_running else []
    if s.running_ceiling:
        caps.append(s.running_ceiling)
    if s.running_pool and not s.max_running_set:
        per_context, least, most = s.running_pool
        # one-token sequences: the cache's tokens, per worker, counted before it splits them among window pools
        tokens = max_batch(replace(s, window_pools=SHARED_POOL), 1, 1) / s.attention_dp
        pool = min(max(int(tokens / s.spec.max_position_embeddings * per_context), least), most)
        caps.append(pool * s.attention_dp)
    return min(caps) if caps else None


def _run(s: Setup, served_c: dict, steady: dict, input_tokens: int, output_tokens: int, c: int, running: int,
         continuous: bool, cached: int, n: int, spread: float, warm: int, prompt_spread: float = 0.0) -> dict:
    """A run of `n` requests, `c` at a time (`finite_run`): its first wave a burst, its first `warm` prompts (found in
    the prefix cache) let in and prefilled first and the others queued behind them; the rest at the steady figures of
    their kind (`served_c`: the fresh ones'), each fresh prompt's first token later or sooner by how much longer its
    own prefill takes than the mean prompt's (`prompt_spread`): each taken as a lone prefill, whole, not in the chunks
    it shares loaded steps in (an approximation)."""
    latency = s.first_token_latency_s
    warm_steady = warm_served = None
    if warm:
        whole = input_tokens - 1  # a cached prompt's prefill is its last token's
        warm_steady = request_figures(s, input_tokens, output_tokens, running, continuous, whole)
        warm_served = front_end(queued(warm_steady, c, running, latency), c, s.request_host_s)
    ttfts, queue, ahead = [], 0.0, 0.0
    for count, figures, held in ((min(warm, c), warm_steady, input_tokens - 1), (c - min(warm, c), steady, cached)):
        if count:  # the first wave's cached prompts, then its others behind them
            burst = burst_figures(s, figures, count, min(count, running), input_tokens, output_tokens, continuous,
                                  held)
            ttfts += [ahead + t + latency for t in burst["ttfts"]]
            queue += (ahead + burst["queue_s"]) * count
            ahead += max(burst["ttfts"])  # the next ones are let in once these have their first tokens
    context = held_context(s, input_tokens, output_tokens)

    @cache
    def decode_s(k: int) -> float:
        return decode_step(s, min(k, running), context).time_s

    @cache
    def prefill_s(tokens: int) -> float:
        return lone_prefill_s(s, tokens, cached)

    orders = ORDERS if spread or prompt_spread else 1
    own = [[0.0 if r < warm else prefill_s(p) - prefill_s(input_tokens) for r, p in enumerate(prompts)]
           for prompts in prompt_orders(n, input_tokens, prompt_spread, orders)] if prompt_spread else [None] * orders
    runs = [finite_run(ttfts, queue / c, served_c, warm_served, decode_s, n, c, lengths, warm, own_prefill)
            for lengths, own_prefill in zip(run_orders(n, output_tokens, spread, orders), own)]
    return mean_of_runs(runs) | {"running": min(c, running)}


def request_profile(s: Setup, input_tokens: int, output_tokens: int, concurrency: int | str, continuous: bool,
                    ttft_slo_ms: float | None = None, itl_slo_ms: float | None = None,
                    cached_tokens: int = 0, on_demand: bool = False, at_once: bool = False,
                    num_requests: int | None = None, length_spread: float = 0.0,
                    warm_requests: int = 0, prompt_spread: float = 0.0,
                    speculation: Speculating | None = None) -> RequestProfile:
    """Request-level figures of the setup serving requests of `input_tokens` in and `output_tokens` out,
    `concurrency` at a time (`"max"`: as many as fit; `on_demand`: the engine's caches grow as used), in steady state,
    or (`at_once`) as one burst of `concurrency` requests sent together, its means, or as a run of `num_requests`
    requests, `concurrency` at a time, their output lengths spread by `length_spread`, their prompts' by
    `prompt_spread`, and the first `warm_requests` prompts in the prefix cache already (`finite_run`), its means;
    decoding speculatively as `speculation` says (steady state only: `speculation.with_speculation`)."""
    room = largest_concurrency(s, input_tokens, output_tokens, on_demand and continuous, speculation)
    context = held_context(s, input_tokens, output_tokens)

    def figures(n: int) -> dict[str, float]:  # n requests served together, in steady state
        return with_speculation(request_figures(s, input_tokens, output_tokens, n, continuous, cached_tokens), s,
                                speculation, output_tokens, context, input_tokens, cached_tokens)

    cap = running_cap(s)
    limit = running_limit(s, room)  # what runs at once; the others wait for a slot
    c = limit if concurrency == "max" else int(concurrency)
    if concurrency == "max" and num_requests is not None:
        c = min(c, num_requests)  # as many as fit, of the run's
    c = max(c, 1)
    running = min(c, limit) if limit >= 1 else c  # nothing fits at all: the figures of c as if it did, fits false
    if (at_once and c > MOST_REQUESTS) or (num_requests or 0) > MOST_REQUESTS:
        raise RequestError(f"a burst or a run is followed request by request: {max(c, num_requests or 0):,} requests, "
                           f"at most {MOST_REQUESTS:,}")
    if num_requests is not None and not continuous:
        raise RequestError("a run refills each slot as its request leaves, which static batches do not: --at-once "
                           "follows their waves")
    if num_requests is not None and num_requests < c:
        raise RequestError(f"a run of {num_requests:,} requests never has {c:,} in flight: give --concurrency at most "
                           "--num-requests (all of them at once is --at-once)")
    steady = figures(running)
    device = queued(steady, c, running, s.first_token_latency_s)
    f = front_end(device, c, s.request_host_s)
    paced = f["cycle_s"] > device["cycle_s"]
    # a burst; so is a run of alike requests all in one wave
    burst = at_once or (num_requests == c and not length_spread and not prompt_spread and not warm_requests)
    if burst:
        f = served_latency(burst_figures(s, steady, c, running, input_tokens, output_tokens, continuous,
                                         cached_tokens), s.first_token_latency_s)
        paced = paced and not at_once
    elif num_requests is not None:
        f = _run(s, f, steady, input_tokens, output_tokens, c, running, continuous, cached_tokens, num_requests,
                 length_spread, warm_requests, prompt_spread)
    duration = f.get("duration_s", f["cycle_s"])  # the time over which c requests complete (a run: all of them)
    count = num_requests or c

    def meets(g: dict[str, float]) -> bool:
        return (ttft_slo_ms is None or g["ttft_s"] * 1e3 <= ttft_slo_ms) and \
            (itl_slo_ms is None or g["itl_s"] * 1e3 <= itl_slo_ms)

    # a queued request's wait is in its TTFT; in a burst each request has its own TTFT and inter-token latency
    # (a run's, in each of the orders of its lengths: the share of them that meet the SLOs)
    met = [meets({"ttft_s": t, "itl_s": i}) for t, i in zip(f["ttfts"], f["itls"])] if "ttfts" in f else [meets(f)]
    # where not one request's cache fits, the figures are those of c as if they did (`running`): none is served
    good, ok = (count * sum(met) / len(met), all(met)) if limit >= 1 else (0.0, False)

    def served(n: int) -> dict[str, float]:  # n requests always in flight, all running, behind the front end
        return front_end(queued(figures(n), n, n, s.first_token_latency_s), n, s.request_host_s)

    slo_c = largest_meeting(limit, lambda n: meets(served(n)))
    slo_rate = slo_c / served(slo_c)["cycle_s"] if slo_c else 0.0
    per_group = (f" per data-parallel attention group ({s.prefill_chunk_tokens:,} a step)"
                 if s.attention_dp > 1 and s.prefill_chunk_tokens else "")
    scheduling = (f"continuous batching, prefill in chunks of {s.group_chunk_tokens:,.0f} tokens{per_group}"
                  if continuous and s.prefill_chunk_tokens else "continuous batching" if continuous
                  else "static batches (all prompts prefilled together, the batch ends together)")
    if cap and limit == cap:
        origin = "--max-running" if s.max_running_set else "the engine's default"
        scheduling += f", at most {cap:,} running at once ({origin}; the cache holds {room:,})"
    if at_once:
        scheduling += f"; {c:,} requests sent at once, once: means over the burst"
        host = c * s.request_host_s
        if host >= 0.5 * duration:
            scheduling += (f"; the engine's front end spends {host:,.1f} s of its {duration:,.1f} s on the requests "
                           f"({s.request_host_s * s.api_servers * 1e3:g} ms of host time each"
                           + (f" over {s.api_servers} front-end processes" if s.api_servers > 1 else "")
                           + (f", {s.request_admit_share:.0%} of it taking them in, all before any token goes back)"
                              if s.request_admit_share < 1 else ", one after another)"))
    if num_requests is not None:
        scheduling += (f"; a run of {num_requests:,} requests, {c:,} at a time (the first {c:,} sent together, the "
                       f"last leaving one by one; output lengths {output_tokens:,} "
                       + (f"+/- {length_spread:.0%}" if length_spread else "each")
                       + (f", prompts {input_tokens:,} +/- {prompt_spread:.0%}" if prompt_spread else "")
                       + "): means over the run")
    if speculation is not None:
        scheduling += (f"; speculative decoding ({speculation.method}, {speculation.tokens} proposed a step, each "
                       f"accepted at {speculation.acceptance:g}: {speculation.expected_tokens:.2f} tokens a step)")
    if cached_tokens:
        scheduling += (f"; each prompt's first {cached_tokens:,} tokens found in the prefix cache, their prefill "
                       "skipped" + (f" (the run's first {warm_requests:,} found whole)" if warm_requests else ""))
    if steady["ahead_s"] and not burst:  # a burst's prompts come in together: none waits for a batch launched ahead
        scheduling += "; the scheduler runs a batch ahead, so a prompt that comes in under load waits a step more"
    elif s.prefill_host_s and not s.schedules_ahead and c > 1:  # SGLang without its overlap scheduler
        scheduling += ("; the scheduler waits for each batch before it forms the next (no overlap scheduler here), so "
                       "each prompt step's host time launching its kernels comes in series with them")
    if s.first_token_latency_s:
        scheduling += (f"; each first token comes {s.first_token_latency_s * 1e3:g} ms after the device's work (what "
                       "the engine's measured TTFTs leave: over HTTP, the server's way in and out)")
    if paced:
        over = f" over {s.api_servers} front-end processes" if s.api_servers > 1 else ""
        scheduling += (f"; bound by the engine's front end at {1 / s.request_host_s:,.0f} requests/s "
                       f"({s.request_host_s * s.api_servers * 1e3:g} ms of host time a request{over}), not by the "
                       "device")
    return RequestProfile(
        input_tokens=input_tokens, output_tokens=output_tokens, concurrency=c, max_concurrency=limit,
        fits=(running if at_once else c) <= room, running=f.get("running", running), queue_wait_ms=f["queue_s"] * 1e3,
        scheduling=scheduling,
        ttft_ms=f["ttft_s"] * 1e3, ttft_median_ms=statistics.median(f.get("ttfts") or [f["ttft_s"]]) * 1e3,
        itl_ms=f["itl_s"] * 1e3,
        request_latency_ms=f["cycle_s"] * 1e3, output_tokens_per_s=f.get("tokens", c * output_tokens) / duration,
        requests_per_s=count / duration, ttft_slo_ms=ttft_slo_ms, itl_slo_ms=itl_slo_ms, meets_slo=ok,
        goodput_requests_per_s=good / duration, at_once=at_once, num_requests=num_requests,
        duration_ms=duration * 1e3, slo_concurrency=slo_c,
        slo_goodput_requests_per_s=slo_rate)
