"""The warning an engine that must hold the model's whole context at start-up gives where a device cannot (vLLM's
--max-model-len check), as `optiplan profile` prints it."""

from __future__ import annotations

from .memory import cache_room, longest_cached_context, one_sequence_bytes, per_device_bytes, stage_weight_bytes
from .setup import Setup


def startup_refusal(s: Setup, engine: str, context: int, prompt: int) -> list[str]:
    """Where the engine starts only if its cache holds one sequence of the model's whole context (vLLM, each worker
    with its own layers' cache), and a device does not: the warning, with the longest --max-model-len that starts;
    nothing where no cache fits at all (`fits` says so)."""
    _, _, act = per_device_bytes(s, 1, context, prompt)
    longest = s.spec.max_position_embeddings
    short = []  # (the context the stage's cache holds, what the whole one needs, what it has) per short stage
    for stage in range(s.pp):
        pool = cache_room(s, stage_weight_bytes(s, stage), act + s.runtime_bytes)
        need = one_sequence_bytes(s, longest, stage)
        if 0 < pool < need:
            short.append((longest_cached_context(s, pool, stage), need, pool))
    if not short:
        return []
    most, need, pool = min(short)
    return [f"{engine} refuses to start at the model's default --max-model-len: {longest:,} tokens need "
            f"{need / 2**30:.2f} GiB of cache per device, its share leaves {pool / 2**30:.2f} GiB; pass "
            f"--max-model-len {most:,} or less (or raise --gpu-memory-utilization)"]
