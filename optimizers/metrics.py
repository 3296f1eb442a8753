"""Measure a loaded model on a fixed workload: time to first token, time per output token, batched
throughput, peak memory, and quality (perplexity, KL divergence and greedy agreement against a
baseline). `verify` and `bench` both measure through these functions, so their figures mean the same.

Timings come from a streamer that stamps each token as `generate` emits it; peak memory comes from a
fresh process (`VmHWM` on Linux, the CUDA allocator's peak on a GPU) so that nothing measured before
can inflate it.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..planner.measure.runtime import sync
from .corpus import DEFAULT_PROMPTS, MetricsError, default_eval_text
from .workspace import tensor_bytes

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import LoadedModel

class _Stamps:
    """A `generate` streamer that records when each batch of new tokens arrives (the first call is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.tokens: list[int] = []

    def put(self, value) -> None:
        self.times.append(time.perf_counter())
        self.tokens.append(int(value.shape[-1]) if value.dim() > 1 else 1)

    def end(self) -> None:
        pass


def time_generation(loaded: LoadedModel, prompt: str, max_new_tokens: int) -> dict[str, float]:
    """One batch-1 generation of exactly `max_new_tokens` tokens: TTFT, TPOT, tokens per second and tokens per
    decode step (above 1 where speculation had proposals accepted)."""
    ids = loaded.encode([prompt])
    stamps = _Stamps()
    sync(loaded.device)
    start = time.perf_counter()
    loaded.generate(ids, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, streamer=stamps)
    sync(loaded.device)
    end = time.perf_counter()
    first = stamps.times[1] if len(stamps.times) > 1 else end  # times[0] is the prompt being echoed
    ttft_s = first - start
    steps = stamps.tokens[2:]  # after the prompt and the first token
    # the tokens that came after the first arrival: speculation can deliver accepted proposals with the first token,
    # and where everything came at once there is no decode time to divide, only the whole generation's
    later = sum(steps)
    tpot_s = (end - first) / later if later else (end - start) / max(max_new_tokens, 1)
    return {"ttft_ms": ttft_s * 1e3, "tpot_ms": tpot_s * 1e3, "tokens_per_s": max_new_tokens / (end - start),
            "tokens_per_step": sum(steps) / len(steps) if steps else 1.0}


def generation_samples(loaded: LoadedModel, prompts: list[str] | tuple[str, ...] = DEFAULT_PROMPTS, *,
                       max_new_tokens: int = 32, repeats: int = 5, warmup: int = 1,
                       progress: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Batch-1 generation repeated `repeats` times over `prompts` (each repeat is the median over the prompts):
    samples of `ttft_ms`, `tpot_ms` and `tokens_per_s`."""
    if not prompts:
        raise MetricsError("the workload has no prompts")
    import torch

    with torch.no_grad():
        for _ in range(warmup):
            time_generation(loaded, prompts[0], max_new_tokens)
        out: dict[str, list[float]] = {"ttft_ms": [], "tpot_ms": [], "tokens_per_s": []}
        for _ in range(repeats):
            runs = [time_generation(loaded, p, max_new_tokens) for p in prompts]
            for key, values in out.items():
                values.append(statistics.median(r[key] for r in runs))
            if progress:
                progress()
    return out


def batched_tokens_per_s(loaded: LoadedModel, prompts: list[str] | tuple[str, ...] = DEFAULT_PROMPTS, *,
                         max_new_tokens: int = 32, repeats: int = 3, warmup: bool = True) -> list[float]:
    """Output tokens per second when all `prompts` are served together (continuous batching when the model
    was optimized for it, one padded batch otherwise; one at a time where the runtime serves batch 1 only).
    `warmup`: one untimed run first (a caller interleaving single runs of two models warms each up once)."""
    import torch

    samples = []
    with torch.no_grad():
        if warmup:
            loaded.generate_many(list(prompts), max_new_tokens=max_new_tokens)
        for _ in range(repeats):
            sync(loaded.device)
            start = time.perf_counter()
            produced = loaded.generate_many(list(prompts), max_new_tokens=max_new_tokens)
            sync(loaded.device)
            samples.append(produced / (time.perf_counter() - start))
    return samples


def _token_windows(loaded: LoadedModel, text: str, max_tokens: int, window: int):
    import torch

    ids = loaded.tokenizer(text, return_tensors="pt").input_ids[0][:max_tokens]
    if ids.numel() < 2:
        raise MetricsError("the evaluation text has fewer than two tokens")
    n = (ids.numel() // window) * window or ids.numel()
    return torch.stack(list(ids[:n].split(window))) if n >= window else ids[:n].unsqueeze(0)


EVAL_WINDOW_TOKENS = 128


def window_tokens(loaded: LoadedModel) -> int:
    """The evaluation window: 128 tokens (or the model's context if shorter). Short windows keep the measure
    cheap and inside any model's training context; what matters is that before and after use the same one."""
    return int(min(getattr(loaded.model.config, "max_position_embeddings", EVAL_WINDOW_TOKENS) or EVAL_WINDOW_TOKENS,
                   EVAL_WINDOW_TOKENS))


def cache_span(*models: LoadedModel) -> int:
    """The longest span a runtime's cache keeps as a full cache would (attention sinks' first and last tokens, a
    quantized cache's full-precision recent tokens): what it changes lies past it; 0 without such a cache."""
    spans = [0]
    for m in models:
        cache = m.runtime.cache or {}
        spans.append(cache.get("num_sinks", 0) + cache.get("window", 0) if cache.get("kind") == "sinks"
                     else cache.get("residual_length", 0) if cache.get("kind") == "quantized" else 0)
    return max(spans)


def quality_window(*models: LoadedModel) -> int:
    """One evaluation window for models compared with each other: 128 tokens, more where a runtime's cache changes
    only what lies past a span of its own (`cache_span`), so that the window reaches what it changes; no model's
    context exceeded."""
    contexts = [getattr(m.model.config, "max_position_embeddings", None) for m in models]
    span = cache_span(*models)  # (and one more: a window of n tokens scores n - 1 next tokens)
    return int(min([EVAL_WINDOW_TOKENS + (span + 1 if span else 0), *(c for c in contexts if c)]))


def scored_from(*models: LoadedModel) -> int:
    """The first position of each window whose next token is scored: past the cache's span where the window holds
    EVAL_WINDOW_TOKENS beyond it (before it both read the same keys, and scoring those positions diluted a sink
    cache's change about fivefold, a review's finding), else 0 (a context that ends before the span: nothing is
    evicted where it is scored, which verify's notes say)."""
    span = cache_span(*models)
    return span if span and span + EVAL_WINDOW_TOKENS < quality_window(*models) else 0


# where a model reads its text a token at a time through its runtime's cache, the windows both sides are scored on
# (each EVAL_WINDOW_TOKENS past the cache's span: 512 positions scored; 1,024 tokens at the smallest window)
CACHE_EVAL_WINDOWS = 4


def quality_tokens(*models: LoadedModel, full: int = 4096) -> int:
    """Tokens of the evaluation text models compared with each other are scored on: `full`, or CACHE_EVAL_WINDOWS
    windows where one of them reads it a token at a time through its cache (`runtime_cache`), the same for all."""
    if any(runtime_cache(m) is not None for m in models):
        return CACHE_EVAL_WINDOWS * max(quality_window(*models), 2 * EVAL_WINDOW_TOKENS)
    return full


def runtime_cache(loaded: LoadedModel):
    """A fresh cache of the kind the runtime serves with where it changes what attention reads (attention sinks, a
    quantized cache), else None (a full cache reads what a whole-window pass computes)."""
    cache = loaded.runtime.cache or {}
    if cache.get("kind") == "sinks":
        from .kv_cache import make_sink_cache

        return make_sink_cache(loaded.model, cache["num_sinks"], cache["window"])
    if cache.get("kind") == "quantized":
        from transformers.cache_utils import QuantizedCache

        settings = {k: v for k, v in cache.items() if k not in ("kind", "backend")}
        return QuantizedCache(backend=cache["backend"], config=loaded.model.config, **settings)
    return None


def next_token_logprobs(loaded: LoadedModel, text: str, *, max_tokens: int = 4096, window: int | None = None):
    """Log-probabilities of every next token over `text`, in non-overlapping windows: (windows, window, vocab). Where
    the runtime's cache changes what attention reads (`runtime_cache`), each window runs a token at a time through
    that cache, as generation reads it; else in one pass."""
    import torch

    windows = _token_windows(loaded, text, max_tokens, window or window_tokens(loaded)).to(loaded.device)
    out = []
    with torch.no_grad():
        for row in windows:
            cache = runtime_cache(loaded)
            if cache is None:
                logits = loaded.model(input_ids=row.unsqueeze(0), use_cache=False).logits.float()[0]
            else:
                steps = []
                for i in range(row.numel()):
                    step = loaded.model(input_ids=row[i:i + 1].unsqueeze(0), past_key_values=cache, use_cache=True)
                    cache = step.past_key_values
                    steps.append(step.logits[0, -1].float())
                logits = torch.stack(steps)
            out.append(torch.log_softmax(logits, dim=-1).cpu())
    return windows.cpu(), torch.stack(out)


def perplexity(loaded: LoadedModel, text: str | None = None, *, max_tokens: int = 4096,
               window: int | None = None, scored_from: int = 0) -> float:
    """Perplexity of `text` (default: the built-in held-out corpus) in non-overlapping windows, each scored from its
    position `scored_from` on."""
    import torch

    ids, logprobs = next_token_logprobs(loaded, text or default_eval_text(), max_tokens=max_tokens, window=window)
    target = ids[:, 1:]
    nll = -logprobs[:, :-1].gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return float(torch.exp(nll[:, _first_scored(scored_from, nll.shape[1]):].mean()))


def _first_scored(start: int, scored: int) -> int:
    """The first scored position of windows that score `scored` next tokens: `start`, or 0 where the text ends
    before it (every position then, which verify's notes say)."""
    return start if start < scored else 0


def scored_positions(loaded: LoadedModel, text: str, *, max_tokens: int, window: int, start: int) -> tuple[int, bool]:
    """The positions `perplexity` scores (each window's from `start` on, every one where the text ends before), and
    whether they lie past `start` (False where the text is shorter than that)."""
    rows = _token_windows(loaded, text, max_tokens, window)
    width = rows.shape[1] - 1
    first = _first_scored(start, width)
    return rows.shape[0] * (width - first), first == start


def compare_distributions(base: LoadedModel, other: LoadedModel, text: str | None = None, *,
                          max_tokens: int = 2048) -> dict[str, float]:
    """KL(base || other) of next-token distributions, averaged over positions, and how often the two models'
    most likely next token agrees (teacher-forced greedy agreement)."""

    text = text or default_eval_text()
    window, max_tokens = quality_window(base, other), quality_tokens(base, other, full=max_tokens)
    start = scored_from(base, other)  # past a cache's span, where the two differ
    _, p = next_token_logprobs(base, text, max_tokens=max_tokens, window=window)
    _, q = next_token_logprobs(other, text, max_tokens=max_tokens, window=window)
    first = _first_scored(start, p.shape[1])
    p, q = p[:, first:], q[:, first:]
    kl = (p.exp() * (p - q)).sum(-1).mean()
    agree = (p.argmax(-1) == q.argmax(-1)).float().mean()
    return {"kl_divergence": float(kl), "next_token_agreement": float(agree)}


def greedy_tokens(loaded: LoadedModel, prompt: str, n: int) -> list[int]:
    """The `n` tokens greedy decoding produces after `prompt`."""
    import torch

    ids = loaded.encode([prompt])
    with torch.no_grad():
        out = loaded.generate(ids, max_new_tokens=n, min_new_tokens=n)
    return [int(t) for t in out[0, ids.shape[1]:]]


def peak_memory_bytes(path: str | Path, prompts: list[str] | tuple[str, ...] = DEFAULT_PROMPTS, *,
                      max_new_tokens: int = 32, device: str = "cpu", allow_pickle: bool = False,
                      tokenizer: str | None = None, dtype: str | None = None) -> int:
    """Peak memory of a fresh process that loads the model at `path` (with every runtime setting; in `dtype` where
    given, as verify's baseline is) and runs the workload once: `VmHWM` on CPU, the allocator's peak on CUDA."""
    from ..planner.measure.workers import run_worker

    args = json.dumps({"path": str(path), "prompts": list(prompts), "max_new_tokens": max_new_tokens,
                       "device": device, "allow_pickle": allow_pickle, "tokenizer": tokenizer, "dtype": dtype})
    return int(run_worker("optiplan.optimizers.metrics", [args])["peak_memory_bytes"])


def weights_bytes(loaded: LoadedModel) -> int:
    """Bytes the model's parameters and buffers occupy as stored (quantized tensors count their packed data), a draft
    model's with them: the folder serves both, and both sit in memory."""
    seen, total = set(), 0
    models = [loaded.model] + ([loaded.draft] if loaded.draft is not None else [])
    for t in (t for m in models for t in (*m.parameters(), *m.buffers())):
        if id(t) not in seen:
            seen.add(id(t))
            total += tensor_bytes(t)
    return total


def _peak_worker(argv: list[str]) -> None:
    args = json.loads(argv[0])
    import torch

    from ..planner.measure.workers import print_peak_after
    from .artifact import load

    loaded = load(args["path"], device=args["device"], allow_pickle=args.get("allow_pickle", False),
                  tokenizer=args.get("tokenizer"), dtype=args.get("dtype"))

    def run():
        with torch.no_grad():
            loaded.generate_many(args["prompts"], max_new_tokens=args["max_new_tokens"])

    print_peak_after(args["device"], run)


if __name__ == "__main__":
    _peak_worker(sys.argv[1:])
