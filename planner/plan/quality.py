"""The quality a weight-quantization step costs a given model: published WikiText-2 perplexity increases by model
family and size (profiles/quality.yaml), not one figure per method measured on one 7B model.

A model is placed in a family by its config (model_type and vocabulary size). A model within 10% of a measured size
takes its figure; between two measured sizes of its family the increase is interpolated in log(size); above the
largest it is the largest's, below the smallest the smallest's, growing as size ** -exponent below 7B (the slope of
OPT's 125M-6.7B GPTQ figures). A model of no listed family, or a family without a point for the method, takes the
most any listed family loses at its size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache

from ... import profiles
from ..analytic.params import param_counts
from ..schema import ModelSpec

QUALITY_FILE = profiles.ROOT / "quality.yaml"
SAME_SIZE = 1.1  # a model within 10% of a measured size takes its figure: papers name sizes rounded ("7B", "70B")


@dataclass(frozen=True)
class QualityLoss:
    """A perplexity increase in percent and where it comes from, in words."""

    pct: float
    source: str


@cache
def _data() -> dict:
    return profiles.read_yaml(QUALITY_FILE)


def methods() -> dict[str, str]:
    """The methods with published points: id -> what it is."""
    return dict(_data()["methods"])


def family_of(spec: ModelSpec) -> str | None:
    """The listed family whose model_type and vocabulary the model has, or None."""
    for name, rule in _data()["families"].items():
        low, high = rule["vocab_size"]
        if spec.model_type == rule["model_type"] and low <= spec.vocab_size <= high:
            return name
    return None


def _increase(point: dict) -> float:
    ratio = point["ratio"] if "ratio" in point else point["quantized"] / point["baseline"]
    return 100.0 * (ratio - 1.0)


def _points(method: str, family: str) -> list[dict]:
    return sorted((p for p in _data()["points"] if p["method"] == method and p["family"] == family),
                  key=lambda p: p["size_b"])


def _cite(point: dict) -> str:
    source = _data()["sources"][point["source"]]["what"]
    if "ratio" in point:
        figures = f"perplexity x{point['ratio']:.4f}"
    else:
        figures = f"perplexity {point['baseline']:g} -> {point['quantized']:g}"
    return f"{point['family']} {point['size_b']:g}B {figures} ({_increase(point):+.1f}%; {source})"


def _in_family(points: list[dict], size_b: float) -> tuple[float, str]:
    data = _data()
    exponent = data["small_model_exponent"]
    floor = data["small_model_floor_b"] / SAME_SIZE  # "7B" models are 6.7-7.6B
    low, high = points[0], points[-1]
    near = min(points, key=lambda p: abs(math.log(size_b / p["size_b"])))
    if abs(math.log(size_b / near["size_b"])) <= math.log(SAME_SIZE):  # "7B" is Llama-2-7B's 6.74B
        return _increase(near), _cite(near)
    if size_b <= low["size_b"]:
        scale = (min(floor, low["size_b"]) / max(size_b, data["small_model_least_b"])) ** exponent \
            if size_b < floor else 1.0
        if scale <= 1.0 + 1e-9:
            return _increase(low), _cite(low)
        return (_increase(low) * scale,
                f"{_cite(low)}, x{scale:.2f} for {size_b:.2g}B: below {data['small_model_floor_b']:g}B the increase "
                f"grows as size^-{exponent:g} ({data['small_model_source'].split(' — ')[0]})")
    if size_b >= high["size_b"]:
        return _increase(high), _cite(high)
    for a, b in zip(points, points[1:]):
        if a["size_b"] <= size_b <= b["size_b"]:
            t = math.log(size_b / a["size_b"]) / math.log(b["size_b"] / a["size_b"])
            return ((1 - t) * _increase(a) + t * _increase(b),
                    f"interpolated in log(size) between {_cite(a)} and {_cite(b)}")
    raise AssertionError("sizes are sorted")


@lru_cache(maxsize=512)
def published_loss(method: str, spec: ModelSpec) -> QualityLoss | None:
    """The perplexity increase `method` costs `spec`, or None where no family has a point for the method."""
    size_b = param_counts(spec).total / 1e9
    family = family_of(spec)
    own = _points(method, family) if family else []
    if own:
        pct, text = _in_family(own, size_b)
        return QualityLoss(round(max(pct, 0.0), 2), f"published WikiText-2 perplexity, {text}")
    estimates = []
    for other in _data()["families"]:
        if points := _points(method, other):
            estimates.append((*_in_family(points, size_b), other))
    if not estimates:
        return None
    pct, text, other = max(estimates, key=lambda e: e[0])
    why = (f"{spec.name} is of no family with published {method} figures" if family is None
           else f"{family} has no published {method} figure")
    return QualityLoss(round(max(pct, 0.0), 2),
                       f"{why}: the most a listed family loses at {size_b:.3g}B ({other}): "
                       f"published WikiText-2 perplexity, {text}")
