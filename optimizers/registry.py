"""The optimizers `optiplan apply` can run, read from the technique declarations (`apply=Applied(...)`): one
declaration per technique says what it needs and how it is applied, and the function is imported only when it
runs, so nothing imports every optimizer family."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..planner.plan.techniques import PACKAGE_IMPORTS, Applied, Technique, all_techniques
from .workspace import NotSupportedHere, Workspace, device_kind


@dataclass(frozen=True)
class Optimizer:
    """A technique's declaration as `apply` uses it."""

    technique: Technique

    @property
    def declared(self) -> Applied:
        return self.technique.apply

    @property
    def apply(self) -> Callable[[Workspace, dict[str, Any]], str]:
        module, _, name = self.declared.optimizer.partition(":")
        return getattr(importlib.import_module(f"optiplan.optimizers.{module}"), name)

    @property
    def changes_model(self) -> bool:
        return self.declared.changes_model

    @property
    def aim(self) -> tuple[str, str]:
        return self.declared.aim


def registry() -> dict[str, Optimizer]:
    """Every technique `optiplan apply` can apply to a transformers model."""
    return {t.id: Optimizer(t) for t in all_techniques().values() if t.apply is not None}


def missing_packages(technique: Technique) -> list[str]:
    """The declared packages of `technique` that are not installed (pip names)."""
    return [p for p in technique.packages if importlib.util.find_spec(PACKAGE_IMPORTS.get(p, p)) is None]


def check_supported(technique: str, device: str) -> Optimizer:
    """The optimizer for `technique`, or NotSupportedHere saying why it cannot run on `device`."""
    known = registry()
    if technique not in known:
        from ..planner.plan.techniques import all_techniques

        if technique not in all_techniques():
            raise NotSupportedHere(f"unknown technique '{technique}' (`optiplan techniques` lists them; it can apply: "
                                   f"{', '.join(sorted(known))})")
        raise NotSupportedHere(f"{technique}: optiplan has no optimizer that applies it to a transformers model "
                               f"(it can apply: {', '.join(sorted(known))}); deploy it with a serving engine "
                               f"(`optiplan configs`)")
    opt = known[technique]
    if device_kind(device) not in opt.declared.devices:
        raise NotSupportedHere(f"{technique} needs {' or '.join(opt.declared.devices)}; this run is on {device}")
    missing = missing_packages(opt.technique)
    if missing:
        raise NotSupportedHere(f"{technique} needs the package(s) {', '.join(missing)}: "
                               f"pip install 'optiplan[torch]' (or {' '.join(missing)})")
    return opt
