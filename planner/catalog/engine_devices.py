"""Which engines run on which devices: an engine's backends (cuda, rocm, metal, cpu, tpu) and, on CUDA, the oldest
compute capability it supports (its profile's `min_compute_capability`), the refusal that names the engines that do
run there, and the engine a preset falls back to where its own does not (a Mac gets llama.cpp, not vLLM)."""

from __future__ import annotations

from ..schema import HardwareSpec
from .engines import GENERIC_SERVING, below_compute_capability, engine_fact, engine_profile


def engine_backends(engine: str) -> tuple[str, ...]:
    """The device backends (cuda, rocm, metal, cpu, tpu) the engine runs on; every one for the generic `serving`."""
    if engine == GENERIC_SERVING:
        return ("cuda", "rocm", "metal", "cpu", "tpu")
    return tuple(engine_profile(engine)["backends"])


# The engine a preset's serving is planned for when its own does not run on the device, in order of preference
FALLBACK_ENGINES = ("vllm", "sglang", "llama.cpp", "transformers")


def engine_runs_on(engine: str, hw: HardwareSpec) -> bool:
    """Whether `engine` runs on `hw`: on its backend, and on a CUDA GPU of at least the compute capability its profile
    names (`min_compute_capability`: TensorRT-LLM's supported hardware starts at Ampere)."""
    if hw.features.backend not in engine_backends(engine):
        return False
    floor = engine_fact(engine, "min_compute_capability")
    return floor is None or hw.features.backend != "cuda" or not below_compute_capability(hw, floor)


def backend_refusal(engine: str, hw: HardwareSpec, candidates: list[str]) -> str | None:
    """Why `engine` cannot run on `hw`, naming those of `candidates` that can; None where it runs there."""
    if engine_runs_on(engine, hw):
        return None
    here = ", ".join(e for e in candidates if engine_runs_on(e, hw))
    if hw.features.backend in engine_backends(engine):
        why = str(engine_fact(engine, "min_compute_capability_source")).split(" (")[0]
        return f"{engine} does not run on {hw.id} (compute capability {hw.features.compute_capability}: {why}); " \
               f"engines that do: {here}"
    return f"{engine} does not run on {hw.id} ({hw.features.backend}); engines that do: {here}"


def engine_for_backend(preferred: str, hw: HardwareSpec) -> str:
    """`preferred` where it runs on `hw`, else the first of FALLBACK_ENGINES that does."""
    if engine_runs_on(preferred, hw):
        return preferred
    return next((e for e in FALLBACK_ENGINES if engine_runs_on(e, hw)), preferred)
