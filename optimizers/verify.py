"""`optiplan verify`: the same workload on the baseline and the optimized model, on the same device, repeated
and interleaved (before, after, after, before, ...) so that drift on a noisy machine hits both alike; then
quality against the baseline. The answer is a `VerifyReport`: measured before and after, medians and spread,
predicted beside measured per step, and each step whose gain did not show marked as such.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..planner.ci.gate import smallest_p
from ..planner.errors import RequestError
from ..planner.measure.runtime import quiet_libraries
from ..planner.report.verify import AGREEING_ROUNDS, SIGNIFICANCE, crossover_ratio
from ..planner.schema.optimize import Measured, Quality, VerifyReport
from . import metrics
from .corpus import DEFAULT_PROMPTS, read_eval_text

KEYS = ("ttft_ms", "tpot_ms", "tokens_per_s")
BATCHED = "batched_tokens_per_s"
# the figures a step's prediction and verify's table share (`apply.step_ratios`; cache bytes are not in the table)
PREDICTED_FIGURES = ("tpot_ms", "ttft_ms", "weights_bytes", BATCHED)


def _measured(samples: dict[str, list[float]], **extra: Any) -> Measured:
    med = {k: statistics.median(samples[k]) for k in KEYS}
    spread = {k: max(samples[k]) - min(samples[k]) for k in samples if samples[k]}
    return Measured(**med, samples={k: [round(v, 4) for v in vs] for k, vs in samples.items()}, spread=spread,
                    **extra)


def _generation_agreement(base, other, prompts, n: int) -> float:
    same = total = 0
    for p in prompts:
        a, b = metrics.greedy_tokens(base, p, n), metrics.greedy_tokens(other, p, n)
        same += sum(x == y for x, y in zip(a, b))
        total += n
    return same / total if total else 1.0


def _speculative(loaded, tpot_ratio: float) -> dict[str, float] | None:
    """Acceptance measured by counting target passes, and the planner's speedup for that acceptance."""
    spec = loaded.runtime.speculative
    if not spec or spec.get("kind") != "draft" or loaded.draft is None:
        return None
    from ..planner.catalog.hardware import resolve_hardware
    from ..planner.catalog.models import resolve_model
    from ..planner.plan.predict import speculative_speedup
    from .speculative import measure_acceptance

    k = int(spec["num_assistant_tokens"])
    counted = measure_acceptance(loaded.model, loaded.tokenizer, {"assistant_model": loaded.draft}, loaded.device, k)
    target, draft = resolve_model(str(loaded.path)), resolve_model(str(loaded.path / spec["path"]))
    predicted = speculative_speedup(target, draft, resolve_hardware("local"), counted["acceptance_rate"], k,
                                    context=64, weight_dtype=loaded.runtime.dtype)
    return {"acceptance_rate": counted["acceptance_rate"], "tokens_per_target_pass": counted["tokens_per_target_pass"],
            "drafted_per_pass": float(k), "predicted_speedup": predicted,
            "measured_speedup": 1 / tpot_ratio if tpot_ratio else 0.0}  # of the paired rounds, as the table's


# quality is called measured on fewer scored positions than this only with a note (a 50-word text had scored ~70)
SCORED_POSITIONS = 512
EVAL_BEYOND = metrics.EVAL_WINDOW_TOKENS  # the positions past a cache's span each window scores


def verify(baseline: str | Path, optimized: str | Path, *, device: str | None = None, dtype: str | None = None,
           eval_text: str | Path | None = None, prompts: list[str] | None = None, max_new_tokens: int = 32,
           repeats: int = 5, memory: bool = True, allow_pickle: bool = False,
           progress: Callable[[str], None] = lambda line: None) -> VerifyReport:
    """Measure `baseline` and `optimized` on the same workload, interleaved, and compare quality. The optimized folder
    loads as its manifest says, the baseline in `dtype` (None: the optimized model's working dtype, the one apply
    measured its steps in, so that a dtype is not credited to the techniques; a note says where they differ)."""
    quiet_libraries()
    import torch

    from .artifact import load
    from .runtime import default_device, dtype_hint

    if repeats < 1 or max_new_tokens < 1:
        raise RequestError(f"verify needs at least one repeat and one new token (got repeats {repeats}, "
                           f"max_new_tokens {max_new_tokens})")
    text = read_eval_text(eval_text)  # an unreadable file fails before anything loads
    prompts = list(prompts or DEFAULT_PROMPTS)
    device = device or default_device()
    opt = load(optimized, device)
    dtype = dtype or opt.runtime.dtype
    base = load(baseline, device, dtype=dtype, allow_pickle=allow_pickle)
    progress(f"baseline in {base.runtime.dtype}, optimized in {opt.runtime.dtype}"
             + dtype_hint(base.runtime.dtype, device))
    sides = (("before", base), ("after", opt))
    samples = {side: {k: [] for k in (*KEYS, BATCHED)} for side, _ in sides}
    progress(f"timing {repeats} interleaved rounds of {len(prompts)} prompts x {max_new_tokens} tokens")
    with torch.no_grad():
        # warm-up both before any timing, every prompt (each length is a shape a compiled model compiles), twice
        # where one side compiles (a later prompt that grows its static cache compiles again)
        for _ in range(2 if base.runtime.compile or opt.runtime.compile else 1):
            for loaded in (base, opt):
                metrics.generation_samples(loaded, prompts, max_new_tokens=max_new_tokens, repeats=1, warmup=0)
        for i in range(repeats):
            progress(f"  round {i + 1} of {repeats}")
            # before-after, then after-before (ABBA): a drift within a round, or a second run's advantage, lands on
            # each side alike rather than on "after" every round, where the paired test would read it as an effect
            for side, loaded in sides[::(-1) ** i]:
                one = metrics.generation_samples(loaded, prompts, max_new_tokens=max_new_tokens, repeats=1, warmup=0)
                for k in KEYS:
                    samples[side][k].extend(one[k])
        # all prompts together, interleaved like the rounds above: its samples are judged by the same paired test
        progress(f"batched throughput: {repeats} interleaved rounds")
        for _, loaded in sides:
            metrics.batched_tokens_per_s(loaded, prompts, max_new_tokens=max_new_tokens, repeats=0)  # warm-up
        for i in range(repeats):
            for side, loaded in sides[::(-1) ** i]:  # ABBA, as above
                samples[side][BATCHED] += metrics.batched_tokens_per_s(loaded, prompts, max_new_tokens=max_new_tokens,
                                                                       repeats=1, warmup=False)
        batched = {side: statistics.median(samples[side][BATCHED]) for side in samples}
        # one window and one stretch of text for both, the window long enough to reach what a cache changes
        window, tokens = metrics.quality_window(base, opt), metrics.quality_tokens(base, opt)
        progress("quality: perplexity, KL divergence, greedy agreement"
                 + (f" (the optimized model reads up to {tokens:,} tokens a token at a time through its cache, "
                    "twice: minutes on a large model)" if metrics.runtime_cache(opt) else ""))
        start = metrics.scored_from(base, opt)
        scored, past_span = metrics.scored_positions(base, text, max_tokens=tokens, window=window, start=start)
        ppl = {"before": metrics.perplexity(base, text, window=window, max_tokens=tokens, scored_from=start),
               "after": metrics.perplexity(opt, text, window=window, max_tokens=tokens, scored_from=start)}
        dist = metrics.compare_distributions(base, opt, text)
        agreement = _generation_agreement(base, opt, prompts, max_new_tokens)
    peaks = {"before": None, "after": None}
    if memory:
        progress("peak memory, each in a fresh process")
        peaks = {"before": metrics.peak_memory_bytes(baseline, prompts, max_new_tokens=max_new_tokens, device=device,
                                                     allow_pickle=allow_pickle, dtype=dtype),
                 "after": metrics.peak_memory_bytes(optimized, prompts, max_new_tokens=max_new_tokens, device=device)}
    # the cache one sequence holds at a context where a cache technique shows (`effects.cache_tokens`: past the span
    # the optimized runtime keeps whole), the same for both
    from .effects import cache_tokens, id_prompts, sizes

    cache_context = cache_tokens(opt.model.config, base, opt)
    cache_prompts = id_prompts(opt.model.config.vocab_size, cache_context=cache_context)
    cache = {side: int(sizes(m, cache_prompts)["cache_bytes"]) for side, m in sides}
    measured = {side: _measured(samples[side], batched_tokens_per_s=batched[side], peak_memory_bytes=peaks[side],
                                weights_bytes=metrics.weights_bytes(m), cache_bytes=cache[side] or None,
                                perplexity=ppl[side])
                for side, m in (("before", base), ("after", opt))}
    before, after = measured["before"], measured["after"]
    # a timed ratio is of each round's pair, the two orders weighed alike (`crossover_ratio`): the ratio of the two
    # sides' medians had leant to the order "after" ran second in more often (three of five rounds)
    ratios = {k: crossover_ratio([a / b for b, a in zip(samples["before"][k], samples["after"][k])])
              for k in (*KEYS, BATCHED)}
    ratios["weights_bytes"] = after.weights_bytes / before.weights_bytes
    if before.peak_memory_bytes and after.peak_memory_bytes:
        ratios["peak_memory_bytes"] = after.peak_memory_bytes / before.peak_memory_bytes
    if before.cache_bytes and after.cache_bytes:
        ratios["cache_bytes"] = after.cache_bytes / before.cache_bytes
    manifest = opt.manifest
    steps = list(manifest.steps) if manifest else []
    predicted = predicted_ratios = None
    undone = [s.technique for s in steps if s.status in ("rolled-back", "skipped") and s.predicted]
    from ..planner.schema import Advice

    if manifest and manifest.plan and not undone:  # the plan's prediction is of all its steps
        advice = Advice.model_validate(manifest.plan)
        predicted = advice.plan.predicted
        b = advice.baseline
        predicted_ratios = {"tpot_ms": predicted.tpot_ms / b.tpot_ms, "ttft_ms": predicted.ttft_ms / b.ttft_ms,
                            "weights_bytes": predicted.weights_per_device_bytes / max(b.weights_per_device_bytes, 1)}
    elif steps and not undone:
        # applied technique by technique (`apply -t`): each kept step's prediction is after / before it, so they
        # compose as a product, in the figures both sides have
        kept = [s.predicted for s in steps if s.status == "applied" and s.predicted]
        predicted_ratios = {key: math.prod(p[key] for p in kept if key in p) for key in PREDICTED_FIGURES
                            if any(key in p for p in kept)}
    notes = [f"step {s.technique}: its gain did not show in measurement" for s in steps
             if s.status == "applied" and s.gain_shown is False]
    if scored < SCORED_POSITIONS:
        notes.append(f"perplexity and KL divergence are over {scored:,} scored positions of the evaluation text "
                     f"(fewer than {SCORED_POSITIONS:,}): a small quality change is within their noise; a longer "
                     "--eval-text scores more")
    if start and not past_span:
        notes.append(f"the evaluation text ends before the optimized cache's span ({start:,} tokens kept as a full "
                     "cache would): what the cache changes is not measured here; a longer --eval-text reaches it")
    span = metrics.cache_span(base, opt)  # what the optimized runtime's cache keeps as a full cache would
    if span and not start:
        notes.append(f"the optimized cache keeps {span:,} tokens as a full cache would, and quality is scored in "
                     f"windows of {window:,} tokens (the model's context), which do not reach {EVAL_BEYOND:,} tokens "
                     "past that span: what the cache changes is not (or barely) measured here")
    if span and cache_context <= span:
        notes.append(f"the KV cache is read at {cache_context:,} tokens (the model's positions end there), within the "
                     f"{span:,} the optimized cache keeps whole: what it saves does not show in its bytes here")
    if base.runtime.dtype != opt.runtime.dtype:
        notes.append(f"the baseline ran in {base.runtime.dtype} and the optimized model in {opt.runtime.dtype} (as "
                     "--dtype asked): every difference here includes the dtype's, not the techniques' alone")
    if predicted_ratios:
        made = (f"the plan's workload ({Advice.model_validate(manifest.plan).workload.name}) on its hardware"
                if manifest and manifest.plan else "the workload preset on this machine")
        notes.append(f"the predicted column is the planner's for {made}, its prompt and output lengths and its "
                     f"concurrency, beside {len(prompts)} short prompts of {max_new_tokens} tokens measured here: it "
                     "says which way and about how far, not the figure this workload measures")
    if (floor := smallest_p(repeats, True)) >= SIGNIFICANCE:
        notes.append(f"with {repeats} repeats no timing change can be told from noise (the rank test's smallest p is "
                     f"{floor:.2g}, and {repeats} rounds all moving the same way happen by chance "
                     f"{2.0 ** (1 - repeats):.0%} of the time): the timings are shown, none is called better or worse; "
                     f"--repeats {AGREEING_ROUNDS} or more tests them")
    notes += [f"step {s.technique} was rolled back: "
              + (s.detail.rsplit("rolled back: ", 1)[1] if "rolled back: " in s.detail else "no measured gain")
              for s in steps if s.status == "rolled-back"]
    if manifest and manifest.plan and undone:
        notes.append(f"no prediction is shown: the plan's is of all its steps, and {', '.join(undone)} "
                     f"{'was' if len(undone) == 1 else 'were'} not kept")
    return VerifyReport(
        baseline=str(baseline), optimized=str(optimized), device=device,
        workload={"prompts": len(prompts), "max_new_tokens": max_new_tokens, "repeats": repeats,
                  "cache_context": cache_context,
                  "eval_text": str(eval_text) if eval_text else "built-in held-out pydoc topics"},
        measured=measured,
        quality=Quality(kl_divergence=dist["kl_divergence"], next_token_agreement=dist["next_token_agreement"],
                        generation_agreement=agreement,
                        perplexity_change_pct=100 * (ppl["after"] / ppl["before"] - 1)),
        steps=steps, predicted=predicted, predicted_ratios=predicted_ratios or {}, measured_ratios=ratios,
        speculative=_speculative(opt, ratios["tpot_ms"]), notes=notes)
