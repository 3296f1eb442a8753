"""How far off a prediction may be: the error of the analytic model against published measurements of real engines
(`benchmarks/published/`, by figure: batch-1 decode, TTFT, request throughput, request latency, memory), stored in
`profiles/accuracy.yaml` by `python benchmarks/bench_published.py --write-accuracy`. Reports show the median error
as the band and the p90 beside it ("TPOT 21 ms (±8%, p90 ±17%)": half the published points were closer than 8%, nine
in ten closer than 17%); JSON carries both.

A band is the error of the points most like the prediction that are numerous enough: the engine's points of the
model's kind (MoE or dense), else the kind's, else the engine's, else every point. The kind comes first because it
divides the errors more than the engine does: the MoE models' request throughput and TTFT are further off than the
dense models' in the set as a whole (an engine's own points of one kind, where it has enough, come first).

The validation set is GPUs with serving engines; eager transformers on a GPU has its own, our H200 runs; for this
machine (`local`) the band is calibration's own error where it was fitted (`optiplan calibrate`), and there is none
otherwise: an uncalibrated CPU was never validated."""

from __future__ import annotations

import re
from functools import lru_cache

from ... import profiles
from ..catalog.engines import GENERIC_SERVING
from ..machine.calibration import calibrated_device, calibrated_here, load_calibration
from ..schema import AccuracyBand, HardwareSpec, ModelSpec

ACCURACY_FILE = profiles.ROOT / "accuracy.yaml"
# The training step model's error on published fine-tuning step times, held-out points only
# (`python benchmarks/bench_training_published.py --write-accuracy`)
TRAINING_ACCURACY_FILE = profiles.ROOT / "training_accuracy.yaml"
# Eager transformers on a GPU is launch-bound, nothing like the serving engines the published points measure: its
# band is the error against our own GPU runs (`python benchmarks/gpu/bench_transformers_cuda.py --refit ...
# --write-accuracy`)
EAGER_GPU_ACCURACY_FILE = profiles.ROOT / "transformers_gpu_accuracy.yaml"
BATCH1 = "batch1-decode"  # the category of one sequence's decode runs: no band for a time per token under load


@lru_cache(maxsize=None)
def _bands_file(path) -> dict:
    """A bands file, read once per process (every profile and advise asks)."""
    return profiles.read_yaml(path) if path.exists() else {}


def published_accuracy() -> dict:
    return _bands_file(ACCURACY_FILE)


def architecture_kind(spec: ModelSpec) -> str:
    """The kind of model the validation set splits its errors by: "hybrid" (state-space or linear-attention layers,
    experts or not), "moe" (a Transformer with routed experts) or "dense" (one without them)."""
    if spec.layer_mixers:
        return "hybrid"
    return "moe" if spec.moe is not None else "dense"


# figures whose error is an engine's own, shown only with that engine's band: how an engine sizes its cache at
# start-up (vLLM's points within 0.5% say nothing of SGLang's or TensorRT-LLM's)
ENGINE_ONLY = ("kv_cache_tokens",)


# how the reports name a kind of device
KIND_NAMES = {"apple": "Apple GPU", "cpu": "CPU", "tpu": "TPU"}


def accuracy_bands(hw: HardwareSpec, runtime: str = "serving", engine: str | None = None,
                   kind: str | None = None, dtype: str | None = None) -> dict[str, AccuracyBand]:
    """Figure name -> its error band on this hardware (empty where nothing validates it), figure by figure the most
    specific the validation set has enough points for: on a GPU the engine's points of the model's `kind`
    (`architecture_kind`), the kind's, the engine's, every point; on another device the engine's runs on its kind; on
    this machine (`local`) the calibration's fit of the weights' format (`dtype`) on this device."""
    if hw.id == "local":
        calibration = load_calibration()
        if not calibrated_here(calibration, hw):
            return {}
        # the fit of the weights' format the prediction reads: another format's steps say nothing of its error
        fit = ((calibration.get("runtimes") or {}).get(runtime) or {}).get(dtype) if dtype else None
        err = (fit or {}).get("median_abs_error_pct")
        if err is None:
            return {}
        source = f"optiplan calibrate on this machine ({runtime}, {dtype}): median error of the fitted steps"
        return {figure: AccuracyBand(median_pct=round(err, 1), p90_pct=None, points=len(fit.get("points", [])),
                                     source=source) for figure in ("tpot_ms", "ttft_ms")}
    if hw.kind != "gpu":
        # the engine's published runs on this kind of device (llama.cpp's on Apple GPUs), none where it has none
        data = _bands_file(ACCURACY_FILE)
        device = ((data.get("devices") or {}).get(hw.kind) or {}).get(engine) if runtime != "transformers" else None
        return {figure: _band(data, b, f"{b['category']}, {engine} on {KIND_NAMES.get(hw.kind, hw.kind)}s")
                for figure, b in (device or {}).items()}
    data = _bands_file(EAGER_GPU_ACCURACY_FILE if runtime == "transformers" else ACCURACY_FILE)
    if kind == "hybrid" and kind not in (data.get("kinds") or {}):
        return {}  # too few hybrid points for a band: nothing validates such a model's figures, and none is shown
    named = f"{kind} models" if kind else ""
    layers = [((data.get("engines") or {}).get(engine) or {}, f"{engine} only"),
              ((data.get("kinds") or {}).get(kind) or {}, named),
              ((data.get("engine_kinds") or {}).get(engine, {}).get(kind) or {}, f"{named}, {engine} only")]
    bands = {f: b for f, b in _bands(data).items() if f not in ENGINE_ONLY}
    for i, (figures, what) in enumerate(layers):  # the least specific first: each later one overrides it
        bands |= {figure: _band(data, b, f"{b['category']}, {what}") for figure, b in figures.items()
                  if figure not in ENGINE_ONLY or i != 1}  # the kinds' layer (1) mixes engines
    if engine and engine != GENERIC_SERVING and runtime != "transformers" and engine not in (data.get("engines") or {}):
        # a named engine with too few published runs for a band of its own (TGI, LMDeploy): its bands are other
        # engines' errors, and the reports say so beside them, inside each band's group of points (`bands_note`)
        unvalidated = f"; other engines' errors: too few published {engine} runs for a band of its own"
        bands = {f: b.model_copy(update={"source": b.source[:-1] + unvalidated + ")" if b.source.endswith(")")
                                         else b.source + unvalidated}) for f, b in bands.items()}
    return bands


def missing_bands_reason(hw: HardwareSpec, kind: str | None, training: bool = False, dtype: str | None = None,
                         full_fine_tune: bool = False) -> str:
    """Why a prediction has no error band, for the reports to say beside figures that carry no ± (`accuracy_bands`
    and `training_accuracy_bands` return none there)."""
    if training and full_fine_tune and kind == "dense":
        return ("no error bands: the training step model was validated on LoRA and Q-LoRA runs; a full fine-tune's "
                "published runs (the Qwen README's 1.8B on one A100, held out) come out 0.99-1.03x at 4K-8K tokens "
                "but 0.34-0.73x below, where they took 2.1-2.3 s whatever their length (a fixed cost of their "
                "DeepSpeed step not modelled)")
    if training and kind == "moe":
        return ("no error bands: the training step model was validated on dense models only; a mixture of experts' "
                "step is priced as a dense model of its active parameters (with, under LoRA, the traffic of peft's "
                "merge of every expert with its adapters, measured), and transformers runs the experts one by one, "
                "slower than that (LLaMA-Factory#7921: Qwen3-30B-A3B's LoRA took 1.6x QwQ-32B's time, where the "
                "model gives it half), so these figures are optimistic and unvalidated")
    if training and kind == "hybrid":
        return ("no error bands: the training step model was validated on dense models only; the rendered script runs "
                "transformers' unfused PyTorch paths for the state-space and linear-attention mixers (it installs no "
                "mamba-ssm, causal-conv1d or flash-linear-attention kernels), whose activations are counted as those "
                "paths keep them (RWKV's, and a layer's state mixer beside its attention, as attention of the "
                "model's widths), but whose step time is priced as fused kernels would run: optimistic and "
                "unvalidated")
    if training:
        return ("no error bands: the training step model was validated on dense models on one A100 only (published "
                "fine-tuning runs); these figures are unvalidated here")
    if hw.id == "local":
        calibration = load_calibration()
        if calibration is None:
            return ("no error bands: this machine is not calibrated (`optiplan calibrate` measures it and fits its "
                    "error)")
        if not calibrated_here(calibration, hw):
            measured = calibrated_device(calibration) or "unnamed device"
            return (f"no error bands: this machine's calibration measured its {measured}, not the "
                    f"{'GPU' if hw.kind == 'gpu' else 'CPU'} these figures are for")
        fitted = sorted({d for fits in (calibration.get("runtimes") or {}).values() for d in fits})
        return (f"no error bands: this machine's calibration fitted {', '.join(fitted) or 'no format'}"
                + (f", not {dtype} weights" if dtype else "") + " (`optiplan calibrate` fits its error)")
    if hw.kind != "gpu":
        kind_name = KIND_NAMES.get(hw.kind, hw.kind)
        ran = sorted(((_bands_file(ACCURACY_FILE).get("devices") or {}).get(hw.kind) or {}))
        if ran:
            return (f"no error bands: the validation set's runs on an {kind_name} are {' and '.join(ran)}'s; these "
                    f"figures, another engine's, are unvalidated")
        return (f"no error bands: nothing in the validation set ran on a {kind_name} ({hw.id}); these figures are "
                f"unvalidated")
    if kind == "hybrid":
        return ("no error bands: the validation set has too few published points of hybrid (state-space or linear "
                "attention) models for one; these figures are unvalidated")
    return "no error bands: nothing in the validation set covers this prediction"


def _band(data: dict, b: dict, what: str) -> AccuracyBand:
    return AccuracyBand(median_pct=b["median_pct"], p90_pct=b["p90_pct"], points=b["points"],
                        source=f"{data['source']} ({what})", category=b.get("category"))


def _bands(data: dict) -> dict[str, AccuracyBand]:
    return {figure: _band(data, b, b["category"]) for figure, b in (data.get("figures") or {}).items()}


def training_accuracy_bands(hw: HardwareSpec, devices: int = 1, kind: str | None = None,
                            method: str | None = None) -> dict[str, AccuracyBand]:
    """The band of a training step's time and tokens/s where the step model was validated: the held-out error against
    published fine-tuning runs of dense models on one A100 (none elsewhere: nothing validates it there; a
    mixture of experts' step, priced as a dense model of its active parameters, runs its experts one by one in
    transformers and is slower than that) for the plan's `method` (lora or qlora: a full fine-tune's few published
    runs are reported apart, not a band), and of its memory where those runs used it."""
    if not hw.id.startswith("a100") or devices != 1 or kind != "dense" or method is None:
        return {}  # (a full fine-tune's published runs are not the band's: `missing_bands_reason`)
    data = _bands_file(TRAINING_ACCURACY_FILE)
    own = ((data.get("methods") or {}).get(method) or {}) if method else {}
    return _bands(data) | {figure: _band(data, b, b["category"]) for figure, b in own.items()}


def fitting_bands(bands: dict[str, AccuracyBand], fits: bool) -> dict[str, AccuracyBand]:
    """The bands of a setup's figures: all where it fits; where it does not, its memory's and cache size's alone (its
    speeds are priced as if it fit, which nothing validates). `profile` and `advise` keep them so in their
    documents, which every report reads."""
    return bands if fits else {k: b for k, b in bands.items() if k in ("memory_bytes", "kv_cache_tokens")}


def decode_band(batch: int, bands: dict[str, AccuracyBand]) -> str:
    """The figure whose band a time per token at `batch` carries: the batch-1 decode points' alone, the loaded runs'
    (validated with the request latencies and inter-token latencies under load) above one sequence, where `bands`
    has them (eager transformers' own runs, at batch 1 and 16, give one band for every time per token)."""
    if batch <= 1:
        return "tpot_ms"
    one = bands.get("tpot_ms")
    if "request_latency_ms" in bands or (one is not None and one.category == BATCH1):
        return "request_latency_ms"  # none where only one sequence's runs validate it (llama.cpp on Apple GPUs)
    return "tpot_ms"


# how a band's figure reads in a report's note on its bands
FIGURE_NAMES = {"tpot_ms": "TPOT at one sequence", "request_latency_ms": "TPOT under load and request latency",
                "ttft_ms": "TTFT", "throughput_tokens_per_s": "throughput", "memory_bytes": "memory",
                "kv_cache_tokens": "cache size", "training_step_s": "training step"}
_GROUP = re.compile(r"^(.*) \(([^()]*)\)$")  # "<the bands file's source> (<the points' group>)"


def bands_note(bands: dict[str, AccuracyBand]) -> str:
    """What the ± bands of a report are, once under its figures ('' where it has none): every report and README
    says it in these words. Each figure's band is its own group of points (the engine's, the kind of model's): the
    note names each group where they share one source, else each band's whole source."""
    if not bands:
        return ""
    parts = {figure: _GROUP.match(b.source) for figure, b in bands.items()}
    sources = {m.group(1) if m else bands[f].source for f, m in parts.items()}
    if len(sources) == 1 and all(parts.values()) and len({m.group(2) for m in parts.values()}) > 1:
        # a remark every group ends with (an engine's bands that are other engines' errors) said once, after them
        tails = {m.group(2).partition("; ")[2] for m in parts.values()}
        tail = tails.pop() if len(tails) == 1 else ""
        groups = "; ".join(f"{FIGURE_NAMES.get(f, f)}: {m.group(2).removesuffix('; ' + tail) if tail else m.group(2)}"
                           for f, m in parts.items())
        where = f"{sources.pop()}, each figure against its own points ({groups}{'; ' + tail if tail else ''})"
    elif len(sources) == 1:
        where = next(iter(bands.values())).source
    else:
        where = "; ".join(f"{FIGURE_NAMES.get(f, f)}: {b.source}" for f, b in bands.items())
    return f"± bands: the median error against {where}; p90: the error nine in ten stayed within"


def band_text(bands: dict[str, AccuracyBand], figure: str) -> str:
    """' (±3%, p90 ±21%)' for a figure with a band (its median error, and the error nine in ten points stayed within
    where known: a tight median alone would hide how far the worst tenth is off), ' (±16%)' where only the median is
    known (a local calibration), '' otherwise."""
    band = bands.get(figure)
    if not band:
        return ""
    tail = f", p90 ±{band.p90_pct:.0f}%" if band.p90_pct is not None else ""
    # below 1% a whole percent would read ±0%: one decimal (the engines' caches at start-up, within 0.5%)
    median = f"{band.median_pct:.1f}" if band.median_pct < 1 else f"{band.median_pct:.0f}"
    return f" (±{median}%{tail})"
