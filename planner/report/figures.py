"""The figures a report shows per plan step and in its summary line, by goal: TTFT, TPOT and tokens/s for serving;
step time, tokens/s and MFU for training (a training step has no first token and no decode step). One definition
for the terminal, Markdown and HTML reports."""

from __future__ import annotations

from collections.abc import Callable

from ..analytic.accuracy import band_text, decode_band
from ..catalog.workloads import priced_tokens
from ..numbers import rate, usd
from ..schema.advice import Advice, Prediction

Column = tuple[str, Callable[[Prediction], str]]



def _as_if(cell: Callable[[Prediction], str]) -> Callable[[Prediction], str]:
    """A speed figure, in parentheses where its row does not fit (priced as if it did: `AS_IF_NOTE`)."""
    return lambda p: cell(p) if p.fits else f"({cell(p)})"


def _ms(value: float, decimals: int) -> str:
    """Milliseconds with fewer decimals as they grow (a table cell stays on one line: 28,881 ms, not 28,880.9)."""
    return f"{value:,.{0 if value >= 1000 else min(decimals, 1) if value >= 100 else decimals}f}"


def waits(p: Prediction) -> bool:
    """Whether a row's time to first token is in part its wait for the engine's front end (more than 1% of it)."""
    return p.front_end_wait_ms > 0.01 * p.ttft_ms


AS_IF_NOTE = "(figures in parentheses): a row that does not fit, priced as if it did"
# a row's first token can come later only because its requests wait to be taken in (the 1B's fp8 row: 88 -> 227 ms
# at the same tokens/s, the device faster and the front end not)
WAIT_NOTE = ("TTFT †: includes time a request waits for the engine's front end (its API server) before its "
             "prefill; the front end, not the device, bounds that row's requests")
SERVING: list[Column] = [
    ("batch", lambda p: f"{p.batch:,}"),  # the sequences each row runs at once: a TPOT moves with them
    ("TTFT ms", _as_if(lambda p: _ms(p.ttft_ms, 1) + (" †" if waits(p) else ""))),
    ("TPOT ms", _as_if(lambda p: _ms(p.tpot_ms, 2))),
    ("tokens/s", _as_if(lambda p: rate(p.throughput_tokens_per_s))),
]
TRAINING: list[Column] = [
    ("step s", _as_if(lambda p: f"{p.training_step_s:,.1f}" if p.training_step_s is not None else "-")),
    ("tokens/s", _as_if(lambda p: f"{p.throughput_tokens_per_s:,.0f}")),
    ("MFU", _as_if(lambda p: f"{p.training_mfu:.1%}" if p.training_mfu is not None else "-")),
]


def any_as_if(advice: Advice) -> bool:
    """Whether a row of the plan's table does not fit (its figures in parentheses)."""
    return not advice.baseline.fits or any(not s.predicted.fits for s in advice.plan.steps)


def any_wait(advice: Advice) -> bool:
    """Whether a serving row of the plan's table waits for the front end (its TTFT marked: `WAIT_NOTE`)."""
    return advice.workload.goal != "training" and any(
        waits(p) for p in (advice.baseline, *(s.predicted for s in advice.plan.steps)))


def step_columns(advice: Advice) -> list[Column]:
    """(header, cell) for the speed figures of a plan step, before the memory column."""
    return TRAINING if advice.workload.goal == "training" else SERVING


def alternative_columns(advice: Advice) -> list[Column]:
    """The speed figures an alternative plan is compared by: time per token and tokens/s (step time in training)."""
    return [c for c in step_columns(advice) if c[0] in ("TPOT ms", "step s", "tokens/s")]


def baseline_label(advice: Advice) -> str:
    """The plan table's first row: the baseline, with its layout where it spreads over several devices (its engine's
    own: a layer split, pipeline stages, for engines that split layers by default), which its figures are of."""
    p = advice.baseline
    layout = [f"{name} {n}" for name, n in (("tp", p.tensor_parallel), ("pp", p.pipeline_parallel),
                                            ("dp", p.data_parallel)) if n > 1]
    return "baseline" + (f" ({', '.join(layout)})" if layout and advice.workload.goal != "training" else "")


def cost_and_loss(advice: Advice) -> str:
    """What follows the predicted figures in every format: the cost per million output tokens (tokens trained, for a
    training plan) where the device has a
    price, and the plan's quality loss against the workload's budget."""
    cost, hw = advice.plan.predicted.cost_per_million_tokens_usd, advice.hardware
    price = ""
    if cost and hw.usd_per_hour:
        price = f" (a device at ${hw.usd_per_hour:,.2f}/h"
        if hw.usd_per_hour_range:  # the catalog's range of prices gives a range of costs
            low, high = hw.usd_per_hour_range
            price += (f", the middle of the catalog's ${low:,.2f}-{high:,.2f}: "
                      f"{usd(cost * low / hw.usd_per_hour)}-{usd(cost * high / hw.usd_per_hour)}")
        price += ")"
    return ((f", {usd(cost)} per million {priced_tokens(advice.workload.goal)}{price}" if cost else "")
            + f"; quality loss {advice.plan.quality_loss_pct:g}% (budget {advice.workload.max_quality_loss_pct:g}%)")


def plan_below(advice: Advice) -> str:
    """What the plan shown of an infeasible advice is."""
    if advice.plan.predicted.fits:
        return "The plan below is the best that fits in memory"
    return ("Nothing fits: the plan below is the one that needs the least memory, and its speeds are as if it fit "
            "(no ± bands)")


def predicted_summary(advice: Advice) -> str:
    """The plan's predicted figures in one line, each with its error band where the advice has one (only the
    memory's where the plan does not fit: `analytic.accuracy.fitting_bands`)."""
    p, b = advice.plan.predicted, advice.accuracy
    memory = f"{p.memory_per_device_bytes / 1e9:,.1f} GB per device{band_text(b, 'memory_bytes')}"
    if advice.workload.goal == "training":
        job = advice.workload.training
        step = p.training_step_s or 0.0
        parts = ", ".join(f"{what} {value / 1e9:,.1f}" for what, value in p.training_memory_parts)
        # where loading takes more than a step (QLoRA under FSDP), the figure is the load's and the parts the step's
        parts = f"while the model loads; a step: {parts}" if p.load_peak_bytes else parts
        return (f"a step of {job.global_batch} x {job.sequence_length} tokens takes {step:,.1f} s"
                f"{band_text(b, 'training_step_s')} ({p.throughput_tokens_per_s:,.0f} tokens/s, MFU "
                f"{(p.training_mfu or 0):.1%}), {memory} ({parts} GB)")
    wait = f", of which {p.front_end_wait_ms:,.0f} ms waiting for the engine's front end" if waits(p) else ""
    return (f"TTFT {p.ttft_ms:,.1f} ms{band_text(b, 'ttft_ms')}{wait} (a {advice.workload.prompt_tokens_p95:,}-token "
            f"p95 prompt), TPOT {p.tpot_ms:,.2f} ms{band_text(b, decode_band(p.batch, b))}, "
            f"{rate(p.throughput_tokens_per_s)} output tokens/s{band_text(b, 'throughput_tokens_per_s')} at batch "
            f"{p.batch}{_backlog(advice)}, {memory}")


def _backlog(advice: Advice) -> str:
    """Where the plan runs more sequences than the workload has in flight (the throughput goal fills the servers),
    that its figures need a backlog of requests to keep them full."""
    p, asked = advice.plan.predicted, advice.workload.concurrency
    if p.batch <= asked:
        return ""
    return (f" (the {advice.workload.goal} goal fills every server: the workload asks for {asked:,} in flight, and "
            f"these figures need a backlog of requests that keeps {p.batch} running)")
