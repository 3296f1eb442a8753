"""A step of `optiplan apply`: a technique and its parameters, as a plan or the command line names it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..planner.errors import PlanError


@dataclass
class StepSpec:
    technique: str
    params: dict[str, Any] = field(default_factory=dict)
    predicted: dict[str, float] = field(default_factory=dict)


def parse_technique(text: str) -> StepSpec:
    """`weight-int8` or `sliding-window-sinks:window=256,num_sinks=4`."""
    name, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise PlanError(f"technique option {item!r} in {text!r}: expected key=value")
        params[key.strip()] = _value(value.strip())
    return StepSpec(name.strip(), params)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
