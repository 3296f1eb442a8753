"""Measure a real model with transformers on this machine: loading time, prefill latency at several
prompt lengths, decode-step latency at several batch sizes and context lengths, and peak memory.

Timings run in this process, in interleaved rounds over all points, medians and spread reported. Peak
memory is read in a fresh process per point, from the process's high-water mark (`VmHWM` on Linux;
the CUDA allocator's peak on a GPU), so earlier points cannot inflate it. torch and transformers are
imported only here, and only when a measurement runs.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .runtime import MeasureError, check_model_folder, load_model, sync
from .workers import baseline_rss, peak_memory

# (batch, tokens) shapes measured by default: prefills of several prompt lengths, decode steps at several
# batch sizes and context lengths
DEFAULT_PREFILLS = ((1, 32), (1, 128), (1, 512))
DEFAULT_DECODES = ((1, 64), (2, 512), (4, 64), (8, 512))


@dataclass
class Point:
    """One measured shape: a prefill (batch x prompt tokens) or a decode step (batch at a context)."""

    kind: str  # prefill | decode | peak
    batch: int
    tokens: int  # prompt tokens (prefill) or context (decode)
    median_s: float = 0.0
    spread_s: float = 0.0  # max - min of the rounds' medians
    repeats: int = 0  # samples the median is taken over
    peak_memory_bytes: int = 0


@dataclass
class Measurement:
    model: str
    device: str
    dtype: str
    engine: str = "transformers"
    load_s: float = 0.0
    points: list[Point] = field(default_factory=list)
    baseline_rss_bytes: int = 0  # the process with torch and transformers imported, before the model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Points are timed in interleaved rounds: each round times every point for a short burst, and a point's median is
# taken over all its rounds. On a shared machine the noise comes in bursts (another tenant, the hypervisor) of a
# fraction of a second, and the bursts of two points disagree by about 10% (measured on this project's 2-core CI
# machine); one long burst per point catches such a spell or misses it, so points timed a minute apart (a fit shape
# and a held-out one) disagreed by 10-40%. Spread over rounds, every point sees the same machine.
# A point gets at least `repeats` rounds and at least MIN_POINT_TIME_S of samples in all: a decode step of a small
# model takes a millisecond or two, and a handful of samples of that is mostly scheduler noise.
MIN_POINT_TIME_S = 0.3
MIN_BURST_S = 0.03


def timed_rounds(fns, rounds: int, device: str, min_time_s: float = MIN_POINT_TIME_S,
                  progress=None) -> list[tuple[float, float, int, float]]:
    """Median, spread (max - min of the rounds' medians), sample count and fastest sample of each of `fns`' wall
    time, timed in `rounds` interleaved rounds. A function with a `reset` attribute has it called, untimed, before
    each of its samples (a decode step whose cache is put back to its context)."""
    for fn in fns:  # warm-up
        if reset := getattr(fn, "reset", None):
            reset()
        fn()
    sync(device)
    burst = max(MIN_BURST_S, min_time_s / rounds)
    samples: list[list[float]] = [[] for _ in fns]
    round_medians: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            spent, burst_samples, reset = 0.0, [], getattr(fn, "reset", None)
            while not burst_samples or spent < burst:
                if reset:
                    reset()
                    sync(device)
                start = time.perf_counter()
                fn()
                sync(device)
                burst_samples.append(time.perf_counter() - start)
                spent += burst_samples[-1]
            samples[i] += burst_samples
            round_medians[i].append(statistics.median(burst_samples))
        if progress:
            progress()
    return [(statistics.median(s), max(r) - min(r), len(s), min(s)) for s, r in zip(samples, round_medians)]


def _compacted(cache):
    """`cache`, every tensor its layers hold replaced by a clone of it (the same values): a sliding layer's keys after a
    prefill are a view of the whole prompt's, which a copy would copy entire."""
    import torch

    def whole(value):
        if isinstance(value, torch.Tensor):
            return value.clone()
        if type(value) in (list, tuple):  # plain containers only (a state layer's dicts of tensors by index)
            return type(value)(whole(v) for v in value)
        if type(value) is dict:
            return {k: whole(v) for k, v in value.items()}
        return value  # anything else is copied as it is

    for layer in cache.layers:
        for name, value in vars(layer).items():
            setattr(layer, name, whole(value))
    return cache


class _RestoredStep:
    """A decode step on a copy of a cache at its context, the copy made afresh before each timed step (`reset`): for
    a cache that cannot drop the token a step adds (a sliding-window layer at its window, a linear-attention or
    state-space layer's recurrent state). A state a model keeps on its own modules, not in the cache (RecurrentGemma's
    recurrent blocks), runs on: its step costs the same at any context."""

    def __init__(self, model, step, cache):
        self.model, self.step, self.saved, self.cache = model, step, cache, None

    def reset(self) -> None:
        import copy

        self.cache = None  # the last copy goes before the next is made
        self.cache = copy.deepcopy(self.saved)

    def __call__(self) -> None:
        self.model(input_ids=self.step, cache=self.cache, use_cache=True)


def _step_functions(model, device: str, prefills, decodes, gen) -> tuple[list[tuple[str, int, int]], list]:
    """One function per shape: a prefill of (batch, prompt) tokens, or a decode step of `batch` sequences at a fixed
    context (each decode shape keeps its own cache and crops the token it adds, or, where its cache cannot, steps on
    a fresh copy of it each time: `_RestoredStep`)."""
    import copy

    import torch
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    vocab = model.config.vocab_size
    shapes, fns = [], []
    for batch, prompt in prefills:
        ids = torch.randint(1, vocab, (batch, prompt), generator=gen).to(device)
        shapes.append(("prefill", batch, prompt))
        fns.append(lambda ids=ids: model(input_ids=ids, use_cache=True, logits_to_keep=1))
    for batch, context in decodes:
        ids = torch.randint(1, vocab, (batch, context), generator=gen).to(device)
        cache = DynamicCache(config=model.config)
        model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        step = torch.randint(1, vocab, (batch, 1), generator=gen).to(device)

        def one_step(step=step, cache=cache):
            model(input_ids=step, cache=cache, use_cache=True)
            cache.crop(-1)  # drop the token the step added: the context stays fixed

        # a copy at the context where the cache may not drop the token a step adds: any layer but a full-attention one
        # (a window layer past its window, a state layer: transformers' own `is_croppable` passes LFM2's convolutions)
        saved = copy.deepcopy(_compacted(cache)) if any(type(layer) is not DynamicLayer for layer in cache.layers) \
            else None
        model(input_ids=step, cache=cache, use_cache=True)  # once untimed: whether the cache can drop the token it
        try:  # adds (a failing forward pass is no such cache: it raises as is)
            cache.crop(-1)
            timed = one_step
        except (RuntimeError, ValueError) as exc:
            if saved is None:
                raise MeasureError(f"decode at {context:,} tokens cannot be timed on this model: its cache cannot "
                                   f"drop the token a step adds ({str(exc).splitlines()[0][:160]})") from exc
            timed = _RestoredStep(model, step, saved)
        shapes.append(("decode", batch, context))
        fns.append(timed)
    return shapes, fns


def time_models(jobs, dtype: str, device: str, repeats: int, progress=None) -> list[tuple[float, list[Point]]]:
    """Load every model of `jobs` ((path, prefills, decodes) each) in this process, then time all their shapes in
    `repeats` interleaved rounds; (load seconds, points) per job. Models measured together share the rounds, so a
    slow spell of the machine (they last longer than one model's points take) falls on all of them alike: a
    calibration's models, or its fit and held-out shapes, see the same machine."""
    loaded = [load_model(str(path), dtype, device) for path, _, _ in jobs]
    timed = time_loaded([(model, prefills, decodes) for (model, _), (_, prefills, decodes) in zip(loaded, jobs)],
                        device, repeats, progress)
    return [(load_s, points) for (_, load_s), points in zip(loaded, timed)]


def time_loaded(jobs, device: str, repeats: int, progress=None) -> list[list[Point]]:
    """`time_models` for models already in memory ((model, prefills, decodes) each): the points of each."""
    import torch

    gen = torch.Generator().manual_seed(0)
    spans, shapes, fns = [], [], []
    with torch.inference_mode():
        for model, prefills, decodes in jobs:
            job_shapes, job_fns = _step_functions(model, device, prefills, decodes, gen)
            spans.append((len(shapes), len(shapes) + len(job_shapes)))
            shapes += job_shapes
            fns += job_fns
        timed = timed_rounds(fns, max(repeats, 1), device, progress=progress)
    points = [Point(kind, batch, tokens, median, spread, n) for (kind, batch, tokens), (median, spread, n, _)
              in zip(shapes, timed)]
    return [points[a:b] for a, b in spans]


def measure(path: str | Path, dtype: str = "fp32", device: str | None = None, prefills=DEFAULT_PREFILLS,
            decodes=DEFAULT_DECODES, repeats: int = 5, memory: bool = True, show_progress: bool = True) -> Measurement:
    """Measure a model folder on this machine (CUDA when torch sees a GPU, else the CPU)."""
    return measure_models([(path, prefills, decodes)], dtype, device, repeats, memory, show_progress)[0]


def measure_models(jobs, dtype: str = "fp32", device: str | None = None, repeats: int = 5, memory: bool = True,
                   show_progress: bool = True) -> list[Measurement]:
    """Measure several model folders, (path, prefills, decodes) each, with their timings interleaved (see
    `time_models`): all of them are loaded at once. Peak memory is read per model in a fresh process."""
    jobs = [(Path(path), prefills, decodes) for path, prefills, decodes in jobs]
    for path, prefills, decodes in jobs:
        check_model_folder(path)
        if not prefills and not decodes:
            raise MeasureError(f"{path}: nothing to measure (no prefill or decode shapes)")
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    total = max(repeats, 1) + (1 + len(jobs) if memory else 0)
    from rich.progress import Progress

    names = ", ".join(path.name for path, _, _ in jobs)
    with Progress(disable=not show_progress, transient=True) as bar:
        task = bar.add_task(f"measuring {names} on {device}", total=total)
        timed = time_models(jobs, dtype, device, repeats, progress=lambda: bar.advance(task))
        results = [Measurement(model=str(path), device=device, dtype=dtype, load_s=load_s, points=points)
                   for (path, _, _), (load_s, points) in zip(jobs, timed)]
        if memory:
            baseline = baseline_rss() if device == "cpu" else 0
            bar.advance(task)
            for result, (path, prefills, decodes) in zip(results, jobs):
                result.baseline_rss_bytes = baseline
                batch, prompt = max(prefills or decodes, key=lambda shape: shape[0] * shape[1])
                peak = peak_memory(str(path), dtype, device, batch, prompt)
                result.points.append(Point("peak", batch, prompt, peak_memory_bytes=peak))
                bar.advance(task)
    return results


