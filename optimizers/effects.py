"""Technique effects measured on this machine: each technique `apply` can run here is applied to calibration
models and timed against the same model untouched, interleaved in one process, as ratios (after / before) of time
per token, time to first token, batched tokens per second, weight bytes and cache bytes.

`optiplan calibrate` stores them in this machine's calibration file beside the engine fit; for `--hardware local`
the planner then plans with these ratios before any rule (`optiplan.planner.plan.effects`), and the report says per
step whether its effect was measured here. The same `figures` judge each step of `optiplan apply`.

Effects depend on the model's shape (a weight-only int8 kernel can lose on narrow matrices and win on wide ones),
so they are measured on models of two widths and read for a model by its width. Random weights time like trained
ones, except where the effect depends on what the model predicts: on random models, prompt lookup is accepted
almost never, so what is measured there is the cost of a speculative step (with the tokens it yielded per step);
the planner then takes the acceptance from its rule. On models the user names (`optiplan calibrate --model PATH`)
the whole effect, acceptance included, is measured.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..planner.catalog.hardware import local_cpu, unquantized_dtype
from ..planner.machine.calibration import calibrated_device, load_calibration, save_calibration
from ..planner.measure.runtime import quiet_libraries
from ..planner.report.verify import crossover_ratio
from .registry import check_supported, registry
from .runtime import LoadedModel, Prompt
from .workspace import AlreadyInPlace, NotSupportedHere, Workspace

# (hidden, layers) of the random models effects are measured on: the narrow one times like the small models this
# CPU can serve (the test models are 192 wide), the wide one like the matrices where int8 kernels may pay
EFFECT_SHAPES = ((256, 4), (1024, 2))
FIGURES = ("tpot_ms", "ttft_ms", "batched_tokens_per_s", "weights_bytes", "cache_bytes", "tokens_per_step")
DECODE_PROMPT, DECODE_TOKENS = 32, 16  # batch-1 decode: a short prompt, then this many tokens
PREFILL_TOKENS = 256  # time to first token of a longer prompt
BATCH, BATCH_TOKENS = 4, 16  # the batched figure: this many prompts served together
CACHE_CONTEXT = 384  # cache bytes are read this far past what a runtime's cache keeps whole (`cache_tokens`)
# What a random-weight model cannot show at all
NEEDS_TRAINED_WEIGHTS = {"spec-draft": "it needs a draft model of the same tokenizer, and acceptance depends on "
                                       "trained weights"}


def cache_tokens(config, *models: LoadedModel) -> int:
    """The context a cache's bytes are read at: CACHE_CONTEXT tokens past the span the models' runtime caches keep as
    a full cache would (`metrics.cache_span`: attention sinks' first and last tokens, a quantized cache's recent
    ones), so that what such a cache drops or packs shows (a sinks window of 512 had been read at 384 tokens, where it
    holds all of them); within the model's positions, the two generated tokens included."""
    from .metrics import cache_span

    want = CACHE_CONTEXT + cache_span(*models)
    limit = getattr(config, "max_position_embeddings", None)
    return max(1, min(want, limit - 2)) if limit else want


def id_prompts(vocab: int, seed: int = 0, cache_context: int = CACHE_CONTEXT) -> dict[str, list[Prompt]]:
    """Fixed token-id prompts for each figure (random ids: timing does not depend on which tokens they are); the
    cache's of `cache_context` tokens (`cache_tokens`)."""
    import torch

    g = torch.Generator().manual_seed(seed)

    def ids(n: int) -> list[int]:
        return torch.randint(1, vocab, (n,), generator=g).tolist()

    return {"decode": [ids(DECODE_PROMPT)], "prefill": [ids(PREFILL_TOKENS)],
            "batch": [ids(DECODE_PROMPT - 4 * i) for i in range(BATCH)], "cache": [ids(cache_context)]}


def timed(loaded: LoadedModel, prompts: dict[str, list[Prompt]], part: str, decode_tokens: int = DECODE_TOKENS,
          decode_samples: int = 1) -> dict[str, float]:
    """One sample of one timed part: `decode` (batch-1 time per token, the median of `decode_samples`, and the tokens
    each step yielded), `prefill` (time to first token of a longer prompt) or `batch` (tokens per second of the
    batch prompts served together)."""
    import torch

    from . import metrics

    if part == "decode":
        runs = [metrics.time_generation(loaded, prompts["decode"][0], decode_tokens) for _ in range(decode_samples)]
        return {"tpot_ms": statistics.median(r["tpot_ms"] for r in runs),
                "tokens_per_step": statistics.median(r["tokens_per_step"] for r in runs)}
    if part == "prefill":
        return {"ttft_ms": metrics.time_generation(loaded, prompts["prefill"][0], 1)["ttft_ms"]}
    start = time.perf_counter()
    with torch.no_grad():
        produced = loaded.generate_many(prompts["batch"], max_new_tokens=BATCH_TOKENS)
    return {"batched_tokens_per_s": produced / (time.perf_counter() - start)}


def sizes(loaded: LoadedModel, prompts: dict[str, list[Prompt]], cache: bool = True) -> dict[str, float]:
    """Weight bytes, and (`cache`) cache bytes after the cache's prompt (no speculation or compile: only the cache's
    size matters, and a static cache is sized up front): a prefill of its length, thousands of tokens past a long
    sinks window, which checks of what cannot change the cache leave out."""
    import torch

    from . import metrics
    from .kv_cache import cache_bytes

    if not cache:
        return {"weights_bytes": float(metrics.weights_bytes(loaded))}
    ids = loaded.encode(prompts["cache"])
    kwargs = {k: v for k, v in loaded.generate_kwargs().items()
              if k not in ("assistant_model", "prompt_lookup_num_tokens", "max_matching_ngram_size", "compile_config")}
    if kwargs.get("cache_implementation") == "static":
        kwargs.pop("cache_implementation")
    with torch.no_grad():
        out = loaded.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=2, min_new_tokens=2,
                                    return_dict_in_generate=True, **kwargs)
    cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None)
    return {"weights_bytes": float(metrics.weights_bytes(loaded)),
            "cache_bytes": float(cache_bytes(cache)) if cache is not None else 0.0}


PARTS = ("decode", "prefill", "batch")


def figures(loaded: LoadedModel, prompts: dict[str, list[Prompt]], decode_tokens: int = DECODE_TOKENS,
            decode_samples: int = 1, cache: bool = True) -> dict[str, float]:
    """One sample of every figure: time per token, time to first token, batched tokens per second, weight and
    (`cache`) cache bytes. A fraction of a second on a small model."""
    out = sizes(loaded, prompts, cache)
    for part in PARTS:
        out.update(timed(loaded, prompts, part, decode_tokens, decode_samples))
    return out


def interleaved_ratios(before: LoadedModel, after: LoadedModel, prompts: dict[str, list[Prompt]],
                       rounds: int = 4, cache: bool = True) -> dict[str, Any]:
    """Ratios (after / before) of every figure over `rounds` rounds, with the range of the per-round ratios (a range
    that holds 1 is an effect noise cannot tell from none). Each timed part is measured on the two models back to
    back, in alternating order (ABBA), so a burst of load on a shared machine lands on one pair, and the two orders
    weigh alike in the ratio (`crossover_ratio`), so drift within a round cancels; a warm-up round first, two for a
    compiled model (it compiles each shape there, and again where a later prompt grew its static cache). `cache`:
    cache bytes too (`sizes`)."""
    for _ in range(2 if after.runtime.compile else 1):
        for model in (before, after):
            for part in PARTS:
                timed(model, prompts, part)
    per_round: dict[str, list[float]] = {k: [] for k in FIGURES}
    for r in range(max(rounds, 1)):
        for part in PARTS:
            first, second = (before, after) if r % 2 == 0 else (after, before)
            x, y = timed(first, prompts, part), timed(second, prompts, part)
            b, a = (x, y) if first is before else (y, x)
            for k in b:  # a round without the figure keeps its place, so that the rounds' orders stay paired
                per_round[k].append(a[k] / b[k] if b[k] else None)
    sb, sa = sizes(before, prompts, cache), sizes(after, prompts, cache)
    for k in sb:
        if sb[k]:
            per_round[k].append(sa[k] / sb[k])
    measured = {k: [x for x in v if x is not None] for k, v in per_round.items()}
    out: dict[str, Any] = {k: round(crossover_ratio(v), 4) for k, v in per_round.items() if measured[k]}
    out["range"] = {k: [round(min(v), 4), round(max(v), 4)] for k, v in measured.items() if v}
    out["rounds"] = max(rounds, 1)
    return out


def runnable_here(device: str, trained: bool) -> tuple[list[str], dict[str, str]]:
    """The techniques whose effect can be measured here, and why each other one cannot."""
    run, skipped = [], {}
    for tid in registry():
        if not trained and tid in NEEDS_TRAINED_WEIGHTS:
            skipped[tid] = f"not measured on random-weight models: {NEEDS_TRAINED_WEIGHTS[tid]}"
            continue
        try:
            check_supported(tid, device)
            run.append(tid)
        except NotSupportedHere as exc:
            skipped[tid] = str(exc)
    return run, skipped


def measure_technique(base: LoadedModel, technique: str, prompts: dict[str, list[Prompt]], rounds: int,
                      source: Path) -> dict[str, Any]:
    """Apply `technique` to a copy of `base` and measure the two interleaved."""
    ws = Workspace(model=copy.deepcopy(base.model), tokenizer=base.tokenizer, device=base.device, source=source)
    ws.runtime.dtype = base.runtime.dtype
    detail = registry()[technique].apply(ws, {})
    after = LoadedModel.of(ws)
    # the cache read past what a sinks or quantized cache keeps whole, on both sides alike
    cache = id_prompts(ws.model.config.vocab_size, cache_context=cache_tokens(ws.model.config, after))["cache"]
    return {"detail": detail, **interleaved_ratios(base, after, {**prompts, "cache": cache}, rounds)}


def load_for_effects(path: Path, device: str, dtype: str) -> tuple[LoadedModel, dict[str, list[Prompt]]]:
    """A model and the prompts to measure it with: token ids for a model without a tokenizer (random weights); for a
    model with one, the decode prompt is a passage of the built-in corpus (prompt lookup finds what it can there)."""
    from ..planner.measure.runtime import load_model
    from ..planner.schema.optimize import Runtime
    from .artifact import TOKENIZER_FILES, load
    from .corpus import default_eval_text

    if any((Path(path) / f).exists() for f in TOKENIZER_FILES):
        loaded = load(path, device, dtype=dtype)
        prompts = id_prompts(loaded.model.config.vocab_size)
        passage = loaded.tokenizer(default_eval_text()).input_ids[:DECODE_PROMPT * 4]
        return loaded, {**prompts, "decode": [passage]}
    model, _ = load_model(str(path), dtype, device)
    return LoadedModel(model, None, device, Runtime(dtype=dtype)), id_prompts(model.config.vocab_size)


def model_shape(model) -> dict[str, int]:
    cfg = model.config
    return {"hidden": int(cfg.hidden_size), "layers": int(cfg.num_hidden_layers),
            "params": int(sum(p.numel() for p in model.parameters()))}


def measure_effects(models: list[Path] | None = None, techniques: list[str] | None = None, rounds: int = 4,
                    device: str = "cpu", dtype: str = "fp32", show_progress: bool = True,
                    shapes: tuple[tuple[int, int], ...] = EFFECT_SHAPES) -> dict[str, Any]:
    """Every technique that can run here (or those named), measured on each model (default: random models of
    `shapes`, (hidden, layers))."""
    quiet_libraries()
    from rich.progress import Progress

    from ..planner.measure.models import random_model

    trained = bool(models)
    run, skipped = runnable_here(device, trained)
    if techniques:
        unknown = sorted(set(techniques) - set(run) - set(skipped))
        if unknown:
            raise NotSupportedHere(f"no optimizer for {', '.join(unknown)}; measurable: {', '.join(run)}")
        run = [t for t in run if t in techniques]
        skipped = {t: r for t, r in skipped.items() if t in techniques}
    results: dict[str, Any] = {"techniques": {t: {"shapes": []} for t in run},
                               "skipped": skipped, "device": device, "dtype": dtype,
                               "models": "named by the user" if trained else "random weights",
                               "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="optiplan-effects-") as tmp, \
            Progress(disable=not show_progress, transient=True) as bar:
        paths = list(models or [random_model(Path(tmp) / f"llama-h{h}-l{n}", h, n, dtype=dtype)
                                for h, n in shapes])
        task = bar.add_task("measuring technique effects", total=len(paths) * len(run))
        for path in paths:
            base, prompts = load_for_effects(Path(path), device, dtype)
            shape = model_shape(base.model)
            for tid in run:
                bar.update(task, description=f"{tid} on {Path(path).name}")
                try:
                    measured = measure_technique(base, tid, prompts, rounds, Path(path))
                    results["techniques"][tid]["shapes"].append({**shape, **measured})
                except (NotSupportedHere, AlreadyInPlace) as exc:  # (a kernel the model already runs: no effect)
                    results["skipped"][tid] = str(exc)
                except Exception as exc:  # a technique that fails here is recorded as such, never planned with
                    results["skipped"][tid] = f"failed here: {str(exc).strip().splitlines()[0]}"
                bar.advance(task)
    results["techniques"] = {t: v for t, v in results["techniques"].items() if v["shapes"] and t not in
                             results["skipped"]}
    return results


# technique effects are measured with the CPU path (models on the host, in the format plans for it start from); a
# GPU calibration's `--hardware local` is the GPU, which plans with them only where they were measured on it
# (`plan.effects.measured_effects`)
EFFECTS_ON_CPU_ONLY = ("technique effects are measured on the CPU only, and this machine's calibration is its GPU's: "
                       "`--hardware local` plans there with the cited effects. A machine keeps one calibration: "
                       "`calibrate --device cpu` would replace the GPU's, and `local` on this machine is its GPU")


def effects_measurable(calibration: dict[str, Any]) -> bool:
    """Whether technique effects measured here would be read: the calibration is the CPU's (`EFFECTS_ON_CPU_ONLY`)."""
    return calibrated_device(calibration) in ("cpu", None)  # a calibration naming no device is the CPU's


def calibrate_effects(models: list[Path] | None = None, rounds: int = 4, show_progress: bool = True,
                      techniques: list[str] | None = None, earlier: dict[str, Any] | None = None
                      ) -> tuple[dict[str, Any], Path]:
    """Measure technique effects on this machine and store them in its calibration file (made by `calibrate`);
    `techniques`: only those are measured again, the others keep their earlier measurement (on the same kind of
    models): the file's, or `earlier` where a new fit has just replaced the file (`calibrate -t` without
    --only-effects)."""
    from ..planner.errors import MeasureError

    data = load_calibration()
    if data is None:
        raise MeasureError("this machine has no calibration yet: run `optiplan calibrate` (it measures the "
                           "technique effects too)")
    if not effects_measurable(data):
        raise MeasureError(EFFECTS_ON_CPU_ONLY)
    # measured in the format the plans for this CPU start from (`plan.effects.measured_effects` reads no other): fp32
    # unless calibration found its 16-bit matmuls as fast
    fresh = measure_effects(models, techniques=techniques, rounds=rounds, show_progress=show_progress,
                            dtype=unquantized_dtype(local_cpu()))
    earlier = data.get("effects") or earlier or {}
    if techniques and all(earlier.get(k, "fp32" if k == "dtype" else None) == fresh[k]
                          for k in ("models", "device", "dtype")):
        kept = {t: v for t, v in earlier.get("techniques", {}).items() if t not in techniques}
        fresh["techniques"] = {**kept, **fresh["techniques"]}
        fresh["skipped"] = {**{t: r for t, r in earlier.get("skipped", {}).items() if t not in techniques},
                            **fresh["skipped"]}
    data["effects"] = fresh
    return data, save_calibration(data)
