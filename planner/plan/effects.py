"""Technique effects measured on this machine (`optiplan calibrate`), and how predictions use them.

For `--hardware local` with the transformers engine, a technique whose effect was measured here is predicted with
the measured ratios (time per token, time to first token, batched tokens per second) in place of the analytic
model's; the other steps keep the analytic model's. Predictions still compose: the prediction after a step is the
analytic prediction of its state times, for each measured step so far, measured ratio / analytic ratio of that step.
Memory stays analytic (it matches measurements within a few percent; the measured byte ratios are reported).

Effects are measured on models of a few widths (`optiplan.optimizers.effects.EFFECT_SHAPES`) and read for a model
by its width: interpolated between the measured widths on a log scale, held at the nearest one outside them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..catalog.engines import engine_defaults
from ..catalog.hardware import unquantized_dtype
from ..machine.calibration import load_calibration
from ..schema import HardwareSpec, ModelSpec
from ..schema.advice import Prediction
from ..schema.workload import Workload
from .predict import evaluate
from .state import PlanState

SPEED = ("tpot_ms", "ttft_ms", "batched_tokens_per_s")
# Where speed is not the goal, a plan may still cost only so much of it: a memory plan that serves 14x slower is not
# a plan anyone ships (issue 13: batched throughput kept at 0.8x or better; time per token may grow by half, the
# price of weights a third the size on a CPU without int8 matmul kernels). `optiplan apply` holds measurements to
# the same limits.
BATCHED_FLOOR = 0.8
TPOT_CEILING = 1.5
NOISE = 0.03  # a measured ratio within this of 1 is no effect
RULE = "rule: the analytic model (roofline of the step's FLOPs and bytes with this device's efficiency)"


@dataclass(frozen=True)
class MeasuredEffect:
    """A technique's measured ratios (after / before) for one model width, and where they come from."""

    technique: str
    ratios: Mapping[str, float]
    source: str
    acceptance_measured: bool = True  # False: measured on random weights, where speculation is never accepted


# the fewest interleaved rounds whose spread tells an effect from noise: one round's range is a point, not a spread
MIN_ROUNDS = 2


def beyond_noise(shape: Mapping) -> dict:
    """A measured shape with each ratio whose rounds straddle 1 (or lie within NOISE of it) read as 1: on a shared
    machine a technique that changes nothing measures anywhere from 0.8x to 1.3x. Timings of one round read as 1 too
    (`calibrate --repeats 2` measures one: its range is a point, no spread); sizes are exact in one."""
    out = dict(shape)
    few = shape.get("rounds", MIN_ROUNDS) < MIN_ROUNDS
    for key, (low, high) in (shape.get("range") or {}).items():
        if low <= 1 <= high or abs(shape[key] - 1) <= NOISE or (few and key in SPEED):
            out[key] = 1.0
    return out


def _at_width(shapes: Sequence[Mapping], hidden: int) -> dict[str, float]:
    """Ratios at `hidden`: log-linear between the measured widths, the nearest measured width outside them."""
    shapes = sorted((beyond_noise(s) for s in shapes), key=lambda s: s["hidden"])
    keys = [k for k in (*SPEED, "weights_bytes", "cache_bytes", "tokens_per_step")
            if all(k in s and s[k] > 0 for s in shapes)]
    if hidden <= shapes[0]["hidden"]:
        return {k: shapes[0][k] for k in keys}
    if hidden >= shapes[-1]["hidden"]:
        return {k: shapes[-1][k] for k in keys}
    lo, hi = next((a, b) for a, b in zip(shapes, shapes[1:]) if a["hidden"] <= hidden <= b["hidden"])
    w = math.log(hidden / lo["hidden"]) / math.log(hi["hidden"] / lo["hidden"])
    return {k: math.exp((1 - w) * math.log(lo[k]) + w * math.log(hi[k])) for k in keys}


def measured_effects(spec: ModelSpec, hw: HardwareSpec, engine: str,
                     calibration: Mapping | None = None) -> dict[str, MeasuredEffect]:
    """The effects `optiplan calibrate` measured on this machine, read at `spec`'s width; empty unless the plan is
    for this machine (`local`) with the transformers engine and the calibration measured them on its device, on
    models in the format the plan's unquantized model runs in (an int8 step measured against fp32 weights gains twice
    what it gains against bf16 ones)."""
    if hw.id != "local" or engine != "transformers":
        return {}
    data = calibration if calibration is not None else load_calibration()
    effects = (data or {}).get("effects") or {}
    if effects.get("device") != ("cuda" if hw.kind == "gpu" else "cpu"):
        return {}
    if effects.get("dtype", "fp32") != unquantized_dtype(hw):  # (files before the dtype was recorded measured fp32)
        return {}
    out = {}
    for tid, entry in effects.get("techniques", {}).items():
        shapes = entry.get("shapes") or []
        if not shapes:
            continue
        ratios = _at_width(shapes, spec.hidden_size)
        widths = sorted({s["hidden"] for s in shapes})
        span = f"{widths[0]}" if len(widths) == 1 else f"{widths[0]}-{widths[-1]}"
        source = (f"measured here ({effects.get('measured_at', '?')[:10]}, {effects.get('models', 'models')} "
                  f"{span} wide, read at width {spec.hidden_size}): " +
                  ", ".join(f"{k} {ratios[k]:.2f}x" for k in SPEED if k in ratios))
        random_weights = effects.get("models") == "random weights"
        if random_weights and "tokens_per_step" in ratios and tid.startswith("spec-"):
            source = (f"step cost measured here ({effects.get('measured_at', '?')[:10]}: time per token "
                      f"{ratios['tpot_ms']:.2f}x at {ratios['tokens_per_step']:.2f} tokens per step on random "
                      "weights); acceptance from the rule")
        out[tid] = MeasuredEffect(tid, ratios, source, acceptance_measured=not random_weights)
    return out


def expected_tokens(state: PlanState) -> float:
    """Tokens a speculative step yields on average: (1 - a^(g+1)) / (1 - a) (Leviathan et al.)."""
    spec = state.speculation
    a, g = min(max(spec.acceptance, 0.0), 0.999), spec.num_tokens
    return (1 - a ** (g + 1)) / (1 - a)


def measured_ratios(effect: MeasuredEffect, state: PlanState) -> Mapping[str, float]:
    """The ratios a step is predicted with: as measured, except that a speculative step measured on random weights
    (nothing accepted) keeps its measured cost per step and takes its tokens per step from the rule's acceptance."""
    ratios = effect.ratios
    if effect.acceptance_measured or state.speculation is None or "tokens_per_step" not in ratios:
        return ratios
    per_step = ratios["tpot_ms"] * ratios["tokens_per_step"]  # measured cost of one speculative step
    return {**ratios, "tpot_ms": per_step / expected_tokens(state)}


def speed_factors(base: PlanState, steps: Sequence, states: Sequence[PlanState], workload: Workload,
                  effects: Mapping[str, MeasuredEffect]) -> list[tuple[float, float, float]]:
    """After each step, the factors (time per token, time to first token, throughput) that turn the analytic
    prediction of its state into one with every measured step so far at its measured ratio."""
    factors, out, prev = [1.0, 1.0, 1.0], [], base
    for t, state in zip(steps, states):
        effect = effects.get(t.id)
        if effect is not None:
            ratios = measured_ratios(effect, state)
            a, b = evaluate(prev, workload, full=False), evaluate(state, workload, full=False)
            analytic = (b.tpot_ms / a.tpot_ms if a.tpot_ms else 1.0, b.ttft_ms / a.ttft_ms if a.ttft_ms else 1.0,
                        b.throughput_tokens_per_s / a.throughput_tokens_per_s if a.throughput_tokens_per_s else 1.0)
            for i, key in enumerate(SPEED):
                if key in ratios and analytic[i] > 0:
                    factors[i] *= ratios[key] / analytic[i]
        out.append((factors[0], factors[1], factors[2]))
        prev = state
    return out


def predict_steps(base: PlanState, steps: Sequence, states: Sequence[PlanState], workload: Workload,
                  effects: Mapping[str, MeasuredEffect], full: bool = True, last_only: bool = False) -> list[Prediction]:
    """The prediction after each step (or only after the last), measured effects composed in."""
    factors = speed_factors(base, steps, states, workload, effects) if effects else [None] * len(states)
    pairs = list(zip(states, factors))
    if last_only:
        pairs = pairs[-1:]
    return [evaluate(s, workload, full=full, speed=f) for s, f in pairs]


def engine_default(technique, engine: str | None) -> bool:
    """Whether the engine runs `technique` by default (its profile's `defaults`): the baseline includes it."""
    return bool(engine) and technique.id in engine_defaults(engine)


def effect_source(technique, effects: Mapping[str, MeasuredEffect], engine: str | None = None) -> str:
    """Where a step's predicted speed effect comes from: the engine's default (in the baseline, so no gain), measured
    here, or the rule (with its source)."""
    if engine_default(technique, engine):
        why = engine_defaults(engine)[technique.id]
        return f"on by default in {engine}: the baseline includes it, no gain counted ({why})"
    effect = effects.get(technique.id)
    return effect.source if effect is not None else f"{RULE}; {technique.effect_source}" \
        if technique.effect_source else RULE


def within_speed_limits(p: Prediction, base: Prediction, goal: str) -> bool:
    """Where speed is not the goal: time per token at most TPOT_CEILING x and throughput at least BATCHED_FLOOR x
    the baseline's."""
    if goal in ("latency", "throughput", "cost", "training") or not base.tpot_ms or not base.throughput_tokens_per_s:
        return True
    return p.tpot_ms <= TPOT_CEILING * base.tpot_ms and \
        p.throughput_tokens_per_s >= BATCHED_FLOOR * base.throughput_tokens_per_s
