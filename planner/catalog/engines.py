"""The serving engines a plan can be made for, one profile each in `profiles/engines/<name>.yaml`: the version the
facts describe, the analytic runtime it runs ("serving": an optimized engine with CUDA graphs and chunked prefill;
"transformers": eager `generate`), how it schedules (continuous or static batches), its default chunked-prefill
budget, what it runs by default (the baseline of a plan for it includes those: a default is never a plan step that
gains) and the kernel it runs per weight format, each with its source."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ... import profiles
from ..errors import UnknownNameError

# `profile --engine serving` predicts a generic serving engine of the "serving" runtime
GENERIC_SERVING = "serving"
ENGINES_DIR = profiles.ROOT / "engines"


@lru_cache(maxsize=1)
def engine_table() -> dict[str, Any]:
    """Every engine profile, by name."""
    table = {}
    for path in sorted(ENGINES_DIR.glob("*.yaml")):
        entry = profiles.read_yaml(path)
        table[entry["name"]] = entry
    return table


def engine_names() -> list[str]:
    return list(engine_table())


def engine_profile(engine: str) -> dict[str, Any]:
    if engine not in engine_table():
        raise UnknownNameError("engine", engine, [GENERIC_SERVING, *engine_table()])
    return engine_table()[engine]


def engine_runtime(engine: str) -> str:
    """The analytic runtime an engine runs (its fixed costs per step and KV layout)."""
    return "serving" if engine == GENERIC_SERVING else engine_profile(engine)["runtime"]


def engine_prefill_chunk(engine: str, runtime_default: int | None) -> int | None:
    """The engine's default chunked-prefill budget per step (its profile), or the runtime's for `serving`."""
    if engine == GENERIC_SERVING:
        return runtime_default
    return engine_profile(engine).get("prefill_chunk_tokens")


def continuous_scheduling(engine: str) -> bool:
    """Whether the engine batches continuously (sequences join and leave at every step) by default."""
    return engine == GENERIC_SERVING or engine_profile(engine)["scheduling"] == "continuous"


def engine_defaults(engine: str) -> dict[str, str]:
    """Technique id -> source, for what the engine runs by default (none for the generic `serving`)."""
    if engine == GENERIC_SERVING:
        return {}
    return {d["technique"]: d["source"] for d in engine_profile(engine).get("defaults") or []}
