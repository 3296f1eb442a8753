"""The serving engines a plan can be made for (`profiles/engines.yaml`): their versions, and which runtime of the
analytic model each runs ("serving": an optimized engine with CUDA graphs and chunked prefill; "transformers":
eager `generate`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ... import profiles
from ..errors import UnknownNameError

# `profile --engine serving` predicts a generic serving engine of the "serving" runtime
GENERIC_SERVING = "serving"


@lru_cache(maxsize=1)
def engine_table() -> dict[str, Any]:
    return profiles.read_yaml(profiles.ROOT / "engines.yaml")


def engine_names() -> list[str]:
    return list(engine_table())


def engine_runtime(engine: str) -> str:
    """The analytic runtime an engine runs (its fixed costs per step and KV layout)."""
    if engine == GENERIC_SERVING:
        return "serving"
    if engine not in engine_table():
        raise UnknownNameError("engine", engine, [GENERIC_SERVING, *engine_table()])
    return engine_table()[engine]["runtime"]
