"""The weight format a model's published checkpoint is served in: its own low-precision format where the engine and
the device run it as it is, else None (the engine dequantizes it to 16 bits, or converts it to a file of its own)."""

from __future__ import annotations

from ..schema import HardwareSpec, ModelSpec
from .engines import engine_fact
from .hardware import device_checkpoint_dtype


def served_checkpoint_dtype(spec: ModelSpec, hw: HardwareSpec, engine: str | None = None) -> str | None:
    """The checkpoint's format as served: an engine whose profile lists the checkpoint formats it loads as they are
    (`checkpoint_formats`: llama.cpp keeps gpt-oss's MXFP4 experts in its GGUF on every backend it runs, and has no
    fp8 type for DeepSeek-V3's) serves those on any device it runs on and no other; an engine that states none, or no
    engine, serves the checkpoint where the device has its rate (`device_checkpoint_dtype`)."""
    formats = engine_fact(engine, "checkpoint_formats")
    if formats is None:
        return device_checkpoint_dtype(spec, hw)
    return spec.checkpoint_dtype if spec.checkpoint_dtype in formats else None
