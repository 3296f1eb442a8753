"""Reading bench results, and what makes two of them comparable: the same environment (else the gate refuses
unless allowed) and quality measured the same way (the same evaluation text and length, the same greedy reference)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from pydantic import ValidationError

from ..errors import GateInputError
from ..schema.bench import BENCH_SCHEMA_VERSION, BenchResult


def load_result(path: str | Path) -> BenchResult:
    """Read and check a bench result: one clear GateInputError for anything the gate cannot use."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GateInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GateInputError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("kind") != "optiplan-bench":
        raise GateInputError(f"{path} is not an optiplan bench result (write one with `optiplan bench`)")
    version = data.get("schema_version")
    if version != BENCH_SCHEMA_VERSION:
        raise GateInputError(f"{path} has bench schema version {version!r}; this optiplan reads "
                             f"{BENCH_SCHEMA_VERSION!r}: re-run `optiplan bench` with this version")
    try:
        result = BenchResult.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise GateInputError(f"{path}: {where}: {first['msg']}") from exc
    if not result.metrics:
        raise GateInputError(f"{path} has no metrics")
    for name, m in result.metrics.items():
        if not m.samples:
            raise GateInputError(f"{path}: metric {name} has no samples")
        for i, x in enumerate(m.samples):
            if not math.isfinite(x):
                raise GateInputError(f"{path}: metric {name} sample {i + 1} is {x} (not a finite number)")
            if x < 0 or (m.noisy and x == 0):
                raise GateInputError(f"{path}: metric {name} sample {i + 1} is {x}; it must be positive")
        if m.rounds and len(m.rounds) != len(m.samples):
            raise GateInputError(f"{path}: metric {name} has {len(m.samples)} samples but {len(m.rounds)} rounds")
    return result


def environment_differences(a: BenchResult, b: BenchResult) -> list[str]:
    """What differs between the two environments (git commits and endpoint URLs may)."""
    ea, eb = a.environment, b.environment
    diffs = [f"{field}: {getattr(ea, field)} vs {getattr(eb, field)}"
             for field in ("hardware_fingerprint", "cpu", "cpu_count", "gpus", "device", "threads",
                           "python", "os")
             if getattr(ea, field) != getattr(eb, field)]
    if a.target_kind != b.target_kind:
        diffs.append(f"target kind: {a.target_kind} vs {b.target_kind}")
    for lib in sorted(set(ea.libraries) | set(eb.libraries)):
        va, vb = ea.libraries.get(lib, "absent"), eb.libraries.get(lib, "absent")
        if va != vb:
            diffs.append(f"{lib}: {va} vs {vb}")
    return diffs


# quality metric -> what must be the same in both files' `quality` for their figures to compare
QUALITY_MEASURE = {"perplexity": ("eval_text_sha256", "eval_tokens"), "prefix_agreement": ("greedy_reference_sha256",)}


def same_quality_measure(a: BenchResult, b: BenchResult, wanted: list[str], names: tuple[str, str]) -> None:
    """Refuse quality figures measured differently (another evaluation text or length, another greedy reference):
    their difference is not the models'. Where one file records what its figure was measured against and the other
    does not (benched before optiplan recorded it: the greedy reference's digest), the two cannot be told the same:
    refused too, asking for the older one again; two files that both lack it compare as before."""
    for metric, keys in QUALITY_MEASURE.items():
        if metric not in wanted:
            continue
        unknown = [k for k in keys if (k in a.quality) != (k in b.quality)]
        if unknown and metric in a.metrics and metric in b.metrics:
            older = names[0] if unknown[0] not in a.quality else names[1]
            raise GateInputError(f"{older} does not record what its {metric} was measured against "
                                 f"({', '.join(unknown)}: benched by an earlier optiplan), so it cannot be compared "
                                 f"with the other: bench {older} again")
        differ = [k for k in keys if k in a.quality and k in b.quality and a.quality[k] != b.quality[k]]
        if differ:
            raise GateInputError(f"{names[0]} and {names[1]} measured {metric} differently ({', '.join(differ)} "
                                 "differ): bench both with the same --eval-text, --eval-tokens and --reference")
