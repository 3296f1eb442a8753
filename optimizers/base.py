"""What every optimizer shares: the model being optimized (a `Workspace`), the registry that maps a plan's
technique ids to the function that applies them, and the error for a technique this device cannot run.

An optimizer is a function `(workspace, params) -> str` (what it did, in one line) registered with
`@optimizer(technique_id, devices=..., packages=...)`. It either changes the model in place (quantization,
attention kernel) or records a runtime setting (`workspace.runtime`) that `optiplan.load` re-applies
(caches, speculative decoding, compile, continuous batching).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..planner.errors import OptiplanError
from ..planner.schema.optimize import Runtime


class NotSupportedHere(OptiplanError):
    """A technique that cannot run on this device or without a package, with the reason and what to do."""


@dataclass
class Workspace:
    """A real transformers model (and tokenizer) on its device, plus the runtime settings applied so far."""

    model: Any
    tokenizer: Any
    device: str
    source: Path
    runtime: Runtime = field(default_factory=Runtime)
    draft: Any = None  # the draft model when speculative decoding uses one
    quantization_config: Any = None  # the transformers quantization config the weights were loaded with


@dataclass(frozen=True)
class Optimizer:
    technique: str
    apply: Callable[[Workspace, dict[str, Any]], str]
    devices: tuple[str, ...]
    packages: tuple[str, ...]
    changes_weights: bool
    summary: str


_REGISTRY: dict[str, Optimizer] = {}


def optimizer(technique: str, *, devices: tuple[str, ...] = ("cpu", "cuda"), packages: tuple[str, ...] = (),
              changes_weights: bool = False):
    """Register `fn` as the way to apply `technique` (a planner technique id)."""

    def wrap(fn):
        _REGISTRY[technique] = Optimizer(technique, fn, devices, packages, changes_weights,
                                         (fn.__doc__ or "").strip().splitlines()[0])
        return fn

    return wrap


def registry() -> dict[str, Optimizer]:
    """Every technique an optimizer can apply, importing the optimizer families on first use."""
    from . import attention, batching, compile, kv_cache, quantize, speculative  # noqa: F401  (they register)

    return dict(_REGISTRY)


def device_kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def check_supported(technique: str, device: str) -> Optimizer:
    """The optimizer for `technique`, or NotSupportedHere saying why it cannot run on `device`."""
    known = registry()
    if technique not in known:
        raise NotSupportedHere(f"{technique}: optiplan has no optimizer that applies it to a transformers model "
                               f"(it can apply: {', '.join(sorted(known))}); deploy it with a serving engine "
                               f"(`optiplan configs`)")
    opt = known[technique]
    if device_kind(device) not in opt.devices:
        raise NotSupportedHere(f"{technique} needs {' or '.join(opt.devices)}; this run is on {device}")
    missing = [p for p in opt.packages if importlib.util.find_spec(p) is None]
    if missing:
        raise NotSupportedHere(f"{technique} needs the package(s) {', '.join(missing)}: "
                               f"pip install 'optiplan[torch]' (or {' '.join(missing)})")
    return opt


def quiet_libraries() -> None:
    """Silence the libraries' own progress bars and load reports: optiplan shows its own progress."""
    import logging
    import warnings

    from ..planner.measure.runtime import quiet_transformers

    quiet_transformers()
    logging.getLogger("torchao").setLevel(logging.ERROR)
    logging.getLogger("ContinuousBatchingLogger").setLevel(logging.ERROR)  # "no fast path on CPU", every call
    warnings.filterwarnings("ignore", module="torchao")
    warnings.filterwarnings("ignore", module="optimum")
