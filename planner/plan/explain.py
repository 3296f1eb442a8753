"""Why a technique is not in the plan and what an alternative plan trades, said in the goal's figures: the
"Not in the plan" and "Alternatives" sections of every report."""

from __future__ import annotations

from collections.abc import Callable

from ..numbers import rate
from ..schema.advice import PlanStep, Prediction, Rejection
from ..schema.workload import Workload
from .graph import conflicting, plan_order
from .objective import STEP_GAIN, score
from .search import QUALITY_TIE, Candidate, SearchResult, apply_steps, idles, within_step_gain
from .techniques import Context, Technique, all_techniques, requirements, runtime_conflict
from .training import LOAD_PEAK_WHY

GB = 1e9


def rejections(best: Candidate, ranked: list[Candidate], result: SearchResult, ctx: Context) -> list[Rejection]:
    ctx = ctx.sized(best.replica_size)  # the plan's data-parallel replicas at the size it was priced at
    techniques = all_techniques()
    chosen = set(best.ids)
    always = {i for i, x in techniques.items() if x.always_on}
    out = []
    for t_id, t in techniques.items():
        if t_id in chosen:
            continue
        reason = result.rejected.get(t_id)
        if reason is None and t_id in result.no_ops:
            reason = "changes nothing here: " + (t.unchanged or "the configuration already has what it sets")
        if reason is None:
            holder = next((c for c in best.ids if t.group and techniques[c].group == t.group), None)
            clash = next(filter(None, (runtime_conflict(t, techniques[c], ctx.workload.engine, ctx) for c in best.ids)),
                         None) or next((f"it does not run beside {c}, which the plan uses (a declared conflict: "
                                        "`optiplan techniques --graph`)" for c in best.ids if conflicting(t_id, c)),
                                       None)
            if holder is not None:
                swapped = (chosen - {holder}) | {t_id}
                # the stack with it in place of the holder; where the plan left out an always-on step that one kept (a
                # step gaining under STEP_GAIN), the nearest stack that differs only in such steps
                instead = next((c for c in ranked if set(c.ids) == swapped), None) or next(
                    (c for c in ranked if set(c.ids) - always == swapped - always), None)
                reason = f"one technique of the {t.group} group per plan: the plan uses {holder}" + (
                    f"; with {t_id} instead: " + trade(instead, best, ctx.workload.goal) if instead is not None else "")
            elif clash is not None:
                reason = clash
            elif (loss := t.loss(ctx.on_model(best.state.spec))) and \
                    best.predicted.quality_loss_pct + loss > ctx.workload.max_quality_loss_pct + 1e-9:
                reason = (f"with it the plan exceeds the quality budget: {best.predicted.quality_loss_pct:g}% + "
                          f"{loss:g}% > {ctx.workload.max_quality_loss_pct:g}%")
            else:
                # the plan with it added, where the search priced that stack (the nearest such, as for a swap);
                # else the stack with it of the most of the plan's steps, the best-ranked of those (a smaller one,
                # said against the plan with the steps it leaves out: the 1B's kv-fp8 had been weighed on the
                # baseline, "quality loss 0.1% against 0.5% without")
                added = chosen | {t_id}
                within = [c for c in ranked if t_id in c.ids and set(c.ids) - {t_id} <= chosen]
                with_it = next((c for c in ranked if set(c.ids) == added), None) or next(
                    (c for c in ranked if set(c.ids) - always == added - always), None) or (
                    min(within, key=lambda c: -len(set(c.ids) & chosen)) if within else None)
                needed = next((r for r in requirements(t, ctx.workload.engine) if r not in chosen), None)
                if with_it is None and needed is not None:
                    why = result.rejected.get(needed)
                    reason = f"it needs {needed}" + (f", which is out: {why}" if why else ", which the plan does not use")
                elif with_it is None:
                    reason = "not valid together with the chosen techniques"
                elif idles(t, best.state, t.transform(best.state, ctx.on_model(best.state.spec))):
                    # it acted in a stack of other steps, yet on the plan's own it changes nothing: said as such, not
                    # as that other stack's figures
                    reason = "changes nothing here: " + (t.unchanged or "the configuration already has what it sets")
                else:
                    reason = worse(with_it, best, ctx.workload.goal) + _left_out(with_it, best, t, result, ctx)
        out.append(Rejection(technique=t_id, reason=reason))
    return out


def _left_out(with_it: Candidate, best: Candidate, t: Technique, result: SearchResult, ctx: Context) -> str:
    """Where the stack a rejected technique is weighed on leaves out some of the plan's steps, which and why: beside
    it they change nothing (the search drops a stack with an idle step), or a requirement or conflict rules out the
    stack of them all (one over the quality budget is said before this: `rejections`)."""
    techniques = all_techniques()
    missing = [i for i in best.ids if i not in with_it.ids and not techniques[i].always_on]
    if not missing:
        return ""
    steps = [techniques[i] for i in plan_order(sorted({*best.ids, t.id}))]
    states = apply_steps(result.baseline, steps, ctx)
    idle = {s.id for prev, cur, s in zip([result.baseline, *states], states, steps) if idles(s, prev, cur)}
    said = ", ".join(missing)
    if set(missing) <= idle:
        one = len(missing) == 1
        return (f" (beside it the plan's {said} change{'s' if one else ''} nothing: priced without "
                f"{'it' if one else 'them'})")
    return (f" (the plan's stack with it, less {said}: the search priced no stack of them all, which a requirement "
            "or a conflict between them rules out)")


def trade(other: Candidate, best: Candidate, goal: str) -> str:
    """What swapping one technique for another changes, in numbers: the goal's figures and the quality loss."""
    a, b = other.predicted, best.predicted
    if not a.fits and b.fits:
        return f"the plan does not fit ({unfit(a, b)})"
    if not a.meets_slo and b.meets_slo:
        return "the plan misses the workload (" + ("; ".join(a.slo_violations) or "does not fit") + ")"
    return (f"{speed(a, goal)}, {a.memory_per_device_bytes / GB:,.1f} GB per device, quality loss "
            f"{a.quality_loss_pct:g}% against {speed(b, goal)}, {b.memory_per_device_bytes / GB:,.1f} GB, "
            f"{b.quality_loss_pct:g}% for the {goal} goal")


def worse(other: Candidate, best: Candidate, goal: str) -> str:
    a, b = other.predicted, best.predicted
    if not a.fits and b.fits:  # whatever it gains on the goal's figures: it cannot run
        return f"with it the plan does not fit: {unfit(a, b)}"
    if not a.meets_slo and b.meets_slo:
        return "with it the plan misses the workload: " + ("; ".join(a.slo_violations) or "does not fit")
    figures = (f"with it {speed(a, goal)}, {a.memory_per_device_bytes / GB:,.1f} GB per device, quality loss "
               f"{a.quality_loss_pct:g}%, against {speed(b, goal)}, {b.memory_per_device_bytes / GB:,.1f} GB, "
               f"{b.quality_loss_pct:g}% without")
    if other.score < best.score and a.quality_loss_pct > b.quality_loss_pct:
        # better on the goal, but by less than a lossier plan must win by (search.QUALITY_TIE)
        return (f"gains under {QUALITY_TIE:.0%} on the {goal} goal for more quality loss (a lossier plan must win by "
                f"more): {figures}")
    if other.score < best.score and within_step_gain(other, best):
        return (f"gains under {STEP_GAIN:.0%} on the {goal} goal, less than a step must move it by to be planned "
                f"(`objective.STEP_GAIN`): {figures}")
    if other.score < best.score:  # ahead, within the tie, with more to run (search.rank's moving parts)
        return (f"gains under {QUALITY_TIE:.0%} on the {goal} goal for more to run and watch (a draft model, a router): "
                f"{figures}")
    return f"no gain for the {goal} goal: {figures}"


def unfit(a: Prediction, b: Prediction) -> str:
    """The memory of a stack that does not fit against the device and the plan that does."""
    loading = f" while the model loads ({LOAD_PEAK_WHY})" if a.load_peak_bytes else ""
    return (f"{a.memory_per_device_bytes / GB:,.1f} GB per device of {a.device_memory_bytes / GB:,.1f} GB{loading}, "
            f"against {b.memory_per_device_bytes / GB:,.1f} GB without")


def speed(p: Prediction, goal: str) -> str:
    if goal == "training":
        return f"a step of {p.training_step_s or 0:,.1f} s ({p.throughput_tokens_per_s:,.0f} tokens/s)"
    # the latency goal's figure is a request's whole time: its first token as well as the rest
    first = f"TTFT {p.ttft_ms:,.0f} ms, " if goal == "latency" else ""
    return f"{first}TPOT {p.tpot_ms:,.1f} ms, {rate(p.throughput_tokens_per_s)} tokens/s"


def alternative_note(c: Candidate, best: Candidate, goal: str | None = None) -> str:
    """What an alternative gains over the plan, and what it costs (3% or 0.05 points count); the cost per token
    under the cost goal (on one device it follows the throughput, which the note already compares)."""
    a, b = c.predicted, best.predicted
    gains, costs = [], []

    def compare(label: str, x: float, y: float, fmt: str | Callable[[float], str], lower_is_better: bool = True,
                abs_tol: float = 0.0):
        if abs(x - y) <= max(0.03 * max(abs(x), abs(y)), abs_tol):
            return
        better = (x < y) == lower_is_better
        text = fmt if callable(fmt) else fmt.format
        (gains if better else costs).append(f"{label} {text(x)} vs {text(y)}")

    compare("quality loss", a.quality_loss_pct, b.quality_loss_pct, "{:g}%", abs_tol=0.049)
    compare("memory", a.memory_per_device_bytes / GB, b.memory_per_device_bytes / GB, "{:,.1f} GB")
    compare("TPOT", a.tpot_ms, b.tpot_ms, "{:,.1f} ms")
    compare("TTFT", a.ttft_ms, b.ttft_ms, "{:,.0f} ms")
    compare("throughput", a.throughput_tokens_per_s, b.throughput_tokens_per_s, lambda v: f"{rate(v)} tokens/s", False)
    if goal == "cost" and a.cost_per_million_tokens_usd and b.cost_per_million_tokens_usd:
        compare("cost per million output tokens", a.cost_per_million_tokens_usd, b.cost_per_million_tokens_usd,
                lambda v: f"${v:,.2f}")
    note = "; ".join(filter(None, ["better: " + ", ".join(gains) if gains else "",
                                   "worse: " + ", ".join(costs) if costs else ""])) or "an equal trade"
    if c.score < best.score and a.quality_loss_pct > b.quality_loss_pct:
        # ahead on the goal, yet not chosen: within the margin a lossier plan must win by (search.QUALITY_TIE) of the
        # best stack, whose steps that gain under STEP_GAIN the plan then leaves out (`search.earned`): the gap to
        # the plan itself may be wider than QUALITY_TIE, and is said as it is
        gap = (best.score - c.score) / abs(best.score) if best.score else 0.0
        if gap <= QUALITY_TIE:
            note += f" (ahead on the goal by under {QUALITY_TIE:.0%}: the plan's lower quality loss wins the tie)"
        else:
            note += (f" (ahead on the goal by {gap:.1%}: the plan is the less lossy of the stacks within "
                     f"{QUALITY_TIE:.0%} of the best, without its steps that gain under {STEP_GAIN:.0%})")
    elif len(c.produced) > len(best.produced) and abs(c.score - best.score) <= QUALITY_TIE * abs(best.score):
        # a checkpoint to produce first counts as a moving part where the two are within the tie (`search.rank`)
        note += (f" (its {', '.join(c.produced)} checkpoint must be produced first, none being published that the "
                 f"engine loads: a moving part the plan does without)")
    return note


def paying_off(steps: list[PlanStep], baseline: Prediction, workload: Workload) -> list[PlanStep]:
    """Each step that alone leaves the goal's objective worse than the row before (SGLang's prefill-decode split of a
    70B, whose first token waits longer until a draft model speeds its decode instance), with the later steps it is
    kept for: those up to the first row that does better than the one before it."""
    def objective(p: Prediction) -> float:
        return score(p, workload.goal, workload.output_tokens_mean, workload.concurrency)

    out = []
    for i, step in enumerate(steps):
        before = objective(steps[i - 1].predicted if i else baseline)
        if step.engine_default or objective(step.predicted) <= before:
            out.append(step)
            continue
        later = []
        for after in steps[i + 1:]:
            if not after.engine_default:
                later.append(after.technique)
            if objective(after.predicted) < before:
                break
        out.append(step.model_copy(update={"pays_off_with": later}))
    return out
