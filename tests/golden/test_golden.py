"""The golden `profile`/`advise` documents saved before the planner's reorganisation still come out the same."""

from __future__ import annotations

import json
import math

import pytest
from golden.cases import GOLDEN_DIR, names, run


def _diff(path: str, want, got, out: list[str]) -> None:
    if isinstance(want, dict) and isinstance(got, dict):
        for key in sorted(set(want) | set(got)):
            if key not in got or key not in want:
                out.append(f"{path}.{key}: {'missing' if key not in got else 'new'}")
            else:
                _diff(f"{path}.{key}", want[key], got[key], out)
    elif isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for i, (w, g) in enumerate(zip(want, got)):
            _diff(f"{path}[{i}]", w, g, out)
    elif isinstance(want, float) and isinstance(got, (int, float)):
        if not math.isclose(want, got, rel_tol=1e-9, abs_tol=1e-12):
            out.append(f"{path}: {want!r} -> {got!r}")
    elif want != got:
        out.append(f"{path}: {want!r} -> {got!r}")


@pytest.mark.parametrize("case", names())
def test_matches_golden(case):
    want = json.loads((GOLDEN_DIR / f"{case}.json").read_text())
    got = json.loads(json.dumps(run(case), sort_keys=True))
    differences: list[str] = []
    _diff("", want, got, differences)
    assert not differences, f"{case} changed (regenerate with `python tests/golden/cases.py --update` only for a " \
                            f"named fix):\n" + "\n".join(differences[:40])
