"""`optiplan profile --measure`: run the real model here and put the measurement beside the
prediction, point by point, with the same keys."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..catalog.dtypes import canonical
from ..catalog.models import resolve_model
from ..errors import RequestError
from ..machine.probe import proc_kib_bytes, total_memory_bytes
from ..schema import MeasuredPoint, MeasuredProfile, Profile, ProfileRequest
from .models import catalog_random_model
from .runtime import MeasureError
from .timing import measure

# A model built with random weights must fit in this share of the memory available now.
MEMORY_HEADROOM = 0.8


def _available_bytes() -> int:
    return proc_kib_bytes("/proc/meminfo", "MemAvailable") or total_memory_bytes()


def _model_folder(request: ProfileRequest, predicted: Profile, tmp: Path, dtype: str) -> Path:
    """The folder to measure: the user's, or one with random weights built from the config."""
    path = Path(request.model).expanduser()
    if path.is_dir():
        return path
    need = predicted.memory.weights_bytes
    available = _available_bytes()
    if need > available * MEMORY_HEADROOM:
        raise MeasureError(f"{request.model} needs {need / 1e9:,.1f} GB of weights at {request.dtype}; this machine "
                           f"has {available / 1e9:,.1f} GB available: not loaded (measure a smaller model or a folder)")
    model = catalog_random_model(request.model, dtype)  # saved at the dtype it is measured at
    folder = tmp / "random-weights"
    model.save_pretrained(folder)
    return folder


def measure_profile(request: ProfileRequest, predicted: Profile, repeats: int = 5, show_progress: bool = True) -> Profile:
    """Measure the request's shape (prefill of the batch's prompts, one decode step at the context,
    peak memory in a fresh process) and return the profile with a `measured` section."""
    if predicted.hardware.id != "local":
        raise RequestError("--measure runs the model on this machine: use --hardware local")
    dtype = canonical(request.dtype)  # the profile already refused an unknown dtype
    if dtype not in ("fp32", "bf16", "fp16"):
        raise RequestError(f"--measure runs unquantized weights (fp32, bf16, fp16), not {request.dtype}")
    resolve_model(request.model)  # a clear error for a bad name before anything loads
    batch, context = request.batch, request.context
    prompt = request.prompt_tokens or context
    with tempfile.TemporaryDirectory(prefix="optiplan-measure-") as tmp:
        folder = _model_folder(request, predicted, Path(tmp), dtype)
        m = measure(folder, dtype=dtype, prefills=((batch, prompt),), decodes=((batch, context),), repeats=repeats,
                    memory=True, show_progress=show_progress)
    prefill = next(p for p in m.points if p.kind == "prefill")
    decode = next(p for p in m.points if p.kind == "decode")
    peak = next(p for p in m.points if p.kind == "peak")
    ttft_s = prefill.median_s
    points = [
        MeasuredPoint(kind="prefill", batch=batch, tokens=prompt, measured=ttft_s, spread=prefill.spread_s,
                      predicted=predicted.latency.ttft_ms / 1e3,
                      error_pct=_err(predicted.latency.ttft_ms / 1e3, ttft_s)),
        MeasuredPoint(kind="decode", batch=batch, tokens=context, measured=decode.median_s, spread=decode.spread_s,
                      predicted=predicted.latency.tpot_ms / 1e3,
                      error_pct=_err(predicted.latency.tpot_ms / 1e3, decode.median_s)),
        MeasuredPoint(kind="peak", batch=peak.batch, tokens=peak.tokens, measured=peak.peak_memory_bytes),
    ]
    measured = MeasuredProfile(engine="transformers", device=m.device, dtype=dtype, ttft_ms=ttft_s * 1e3,
                               tpot_ms=decode.median_s * 1e3, tokens_per_s=batch / decode.median_s,
                               peak_memory_bytes=peak.peak_memory_bytes, load_s=m.load_s, repeats=min(prefill.repeats, decode.repeats),
                               points=points)
    warnings = list(predicted.warnings)
    if request.engine != "transformers":
        warnings.append("measured with transformers; the prediction is for the serving engine (--engine transformers "
                        "predicts what was measured)")
    return predicted.model_copy(update={"measured": measured, "warnings": warnings})


def _err(predicted: float, measured: float) -> float:
    return 100 * (predicted - measured) / measured if measured else 0.0
