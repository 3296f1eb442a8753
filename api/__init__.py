"""optiplan: profile, plan, apply and verify optimizations of Transformer language models.

The Python API mirrors the CLI: each function takes the same request model the command builds.

    >>> import optiplan
    >>> p = optiplan.profile("llama-3.1-8b", hardware="h100-sxm", context=8192, batch=16)
    >>> p.latency.tpot_ms, p.memory.per_device_bytes, p.fits
    >>> a = optiplan.advise("llama-3.1-8b", hardware="l4", workload="chat")
    >>> a.bottleneck.primary, [s.technique for s in a.plan.steps]

This package maps the repository's top-level folders as subpackages: `optiplan.planner`,
`optiplan.profiles`, `optiplan.optimizers`, `optiplan.kernels`, `optiplan.templates`.
Importing it never imports torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "advise", "apply", "load", "profile", "verify"]


def profile(model: str, hardware: str = "h100-sxm", **options: Any):
    """Analytic profile of `model` (catalog name, config.json, folder or hub id) on `hardware`.
    Options are the fields of `optiplan.planner.schema.ProfileRequest` (dtype, batch, context,
    num_devices, pipeline_parallel, kv_dtype, engine, ...). Returns a `Profile`."""
    from .planner.plan.engine_support import checked_profile
    from .planner.schema import ProfileRequest

    return checked_profile(ProfileRequest(model=model, hardware=hardware, **options))


def advise(model: str, hardware: str = "auto", **options: Any):
    """Bottleneck, plan, alternatives and rejections for `model` on `hardware` ('auto' ranks the
    catalog). Options are the fields of `optiplan.planner.schema.AdviseRequest` (num_devices,
    workload, goal, max_quality_loss_pct, engine, concurrency, max_context). Returns an `Advice`."""
    from .planner.plan.advise import advise as _advise
    from .planner.schema import AdviseRequest

    return _advise(AdviseRequest(model=model, hardware=hardware, **options))


def load(path: str, device: str | None = None, **options: Any):
    """Load an optimized model folder (or any Hugging Face causal LM folder) with every runtime setting its plan
    chose; returns a `LoadedModel` with `.model`, `.tokenizer`, `.generate(...)` and `.generate_text(prompt)`."""
    from .optimizers.artifact import load as _load

    return _load(path, device, **options)


def apply(model: str, out: str, **options: Any):
    """Apply a plan to the model folder `model` and write the optimized folder `out`; see `optiplan apply`.
    Returns the `ArtifactManifest` (with its verify report unless verify=False)."""
    from .optimizers.apply import apply as _apply

    return _apply(model, out, **options)


def verify(baseline: str, optimized: str, **options: Any):
    """Measure both models on the same workload and compare quality; returns a `VerifyReport`."""
    from .optimizers.verify import verify as _verify

    return _verify(baseline, optimized, **options)
