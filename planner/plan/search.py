"""Plan search: every valid stack of techniques, evaluated with the composed analytic model.

Valid means: each technique's requirements hold here (hardware, model, engine, workload), its
quality loss fits the budget, the techniques it requires are in the stack, and no two conflict.
Lossless techniques (`always_on`) join every stack where they are valid, and the leading stacks are evaluated
again without each one the engine does not run by default; the search enumerates one choice (or none) per
remaining group. `rank` reads a stack within STEP_GAIN of one of its sub-stacks as that sub-stack. Deterministic:
ties go to the stack with less quality loss, then fewer steps, then the ids in order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass

from ..catalog.engines import engine_defaults, engine_splits_layers
from ..catalog.served import produced_formats
from ..catalog.workloads import serves_instruct
from ..errors import RequestError
from ..schema.advice import Prediction
from .effects import predict_steps, within_speed_limits
from .graph import conflicting, plan_order
from .objective import STEP_GAIN, score, slo_tier
from .predict import evaluate
from .state import PlanState, baseline_state
from .techniques import (Context, Technique, all_techniques, denied_default_refusal, requirements, runtime_conflict,
                         static_reason)
from .techniques.parallel import replica_size_choices


@dataclass(frozen=True)
class Candidate:
    ids: tuple[str, ...]  # in plan order
    state: PlanState
    predicted: Prediction
    score: float
    speed_ok: bool = True  # within the speed limits where speed is not the goal (`effects.within_speed_limits`)
    objective: tuple[float, float] | None = None  # (a part that must be equal, a figure compared within QUALITY_TIE)
    # weight formats whose checkpoint the user must produce before the engine serves the plan (`served.produced_formats`)
    produced: tuple[str, ...] = ()
    replica_size: int | None = None  # the data-parallel replicas' size it was priced at (`Context.replica_size`)


@dataclass(frozen=True)
class SearchResult:
    baseline: PlanState
    baseline_prediction: Prediction
    candidates: tuple[Candidate, ...]  # every evaluated stack
    rejected: dict[str, str]  # technique id -> reason it was never considered
    no_ops: frozenset[str] = frozenset()  # valid techniques that changed nothing in any stack


def apply_steps(state: PlanState, steps: list[Technique], ctx: Context, until_idle: bool = False,
                memo: MutableMapping[tuple[str, ...], PlanState] | None = None) -> list[PlanState]:
    """The state after each step, in order (the composition of the steps' pure transforms), each step applied to and
    priced for the model the plan has reached (`Context.on_model`: after distillation, the student); `until_idle`:
    none after the first chosen step that changes nothing (`idles`), whose stack the search drops. `memo`: the state
    after each run of steps from the same `state` in the same `ctx` (the search's stacks share their first steps in
    plan order)."""
    states = []
    for i, t in enumerate(steps):
        before = state
        key = tuple(step.id for step in steps[:i + 1])
        if memo is not None and key in memo:
            state = memo[key]
        else:
            here = ctx.on_model(state.spec)
            state = t.transform(state, here)
            loss = t.loss(here)
            if loss:
                state = state.with_(quality_loss_pct=state.quality_loss_pct + loss)
            if memo is not None:
                memo[key] = state
        states.append(state)
        if until_idle and idles(t, before, state):
            break
    return states


class SizedMemo(MutableMapping):
    """apply_steps' memo for one replica size: a run of steps before the data-parallel step (the only one that reads
    `Context.replica_size`) is the same at every size, and is kept in the memo they share; a run through it is this
    size's own."""

    def __init__(self, shared: dict[tuple[str, ...], PlanState]):
        self.shared = shared
        self.own: dict[tuple[str, ...], PlanState] = {}

    def _home(self, key: tuple[str, ...]) -> dict[tuple[str, ...], PlanState]:
        return self.own if "data-parallel" in key else self.shared

    def __contains__(self, key: object) -> bool:  # (MutableMapping's goes through a KeyError; the search asks often)
        return key in self._home(key)

    def __getitem__(self, key: tuple[str, ...]) -> PlanState:
        return self._home(key)[key]

    def __setitem__(self, key: tuple[str, ...], state: PlanState) -> None:
        self._home(key)[key] = state

    def __delitem__(self, key: tuple[str, ...]) -> None:
        del self._home(key)[key]

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        yield from self.shared
        yield from self.own

    def __len__(self) -> int:
        return len(self.shared) + len(self.own)


def idles(t: Technique, before: PlanState, after: PlanState) -> bool:
    """A chosen step (not an always-on one) that changes nothing: CPU offload where the weights fit."""
    return not t.always_on and _unchanged(before, after)


def _unchanged(before: PlanState, after: PlanState) -> bool:
    return {k: v for k, v in vars(before).items() if k != "quality_loss_pct"} == \
        {k: v for k, v in vars(after).items() if k != "quality_loss_pct"}


def _clash(a: str, b: str, techniques: dict[str, Technique], ctx: Context) -> bool:
    """Declared conflict, or one inside the engine's runtime on the device (two caches in one generation, ...)."""
    return conflicting(a, b) or runtime_conflict(techniques[a], techniques[b], ctx.workload.engine, ctx) is not None


def _consistent(ids: set[str], techniques: dict[str, Technique], ctx: Context) -> bool:
    for i in ids:
        if any(dep not in ids for dep in requirements(techniques[i], ctx.workload.engine)):
            return False
    return not any(_clash(a, b, techniques, ctx) for a, b in itertools.combinations(sorted(ids), 2))


def engine_baseline(ctx: Context, valid: list[Technique]) -> PlanState:
    """The model as published, served by the workload's engine as it runs out of the box: what the engine does by
    default (`profiles/engines/`) and can do here is in the baseline, so it never counts as a plan's gain."""
    training = ctx.workload.goal == "training"
    base = baseline_state(ctx.spec, ctx.hw, ctx.devices, None if training else ctx.workload.engine)
    if training:
        return base
    # priced at the release its configs run, admitting the workload's longest sequence (their max_seq_len)
    base = base.with_(engine=ctx.release_engine, max_seq_len=ctx.workload.context_needed)
    # over several devices, spread as `profile` spreads the engine: consecutive layers where that is its own default
    # (llama.cpp, transformers: `device_split: layers`, the baseline state's), else tensor parallel within each node,
    # the launch the serving engines document for several GPUs (and TGI's own default: it shards over every visible
    # GPU; where its KV heads do not divide over them, servers of the largest group they divide, as it has no pipeline
    # stages), so that a plan is not credited with leaving a layer split nobody serves with
    tensor = next((t for t in valid if t.id == "tensor-parallel"), None)
    if ctx.devices > 1 and tensor is not None and not engine_splits_layers(ctx.release_engine):
        base = tensor.transform(base, ctx)
    defaults = engine_defaults(ctx.release_engine)
    by_id = {t.id: t for t in valid if t.id in defaults}
    for t_id in plan_order(sorted(by_id)):
        base = by_id[t_id].transform(base, ctx)
    return base


def search(ctx: Context, only_groups: frozenset[str] | None = None) -> SearchResult:
    """Evaluate every valid stack; `only_groups` narrows the choices to those groups (a quick search)."""
    if refusal := denied_default_refusal(ctx):
        raise RequestError(refusal)
    techniques = all_techniques()
    workload = ctx.workload
    rejected: dict[str, str] = {}
    valid: list[Technique] = []
    for t in techniques.values():
        reason = static_reason(t, ctx)
        if reason is None and t.loss(ctx) > workload.max_quality_loss_pct + 1e-9:
            reason = (f"exceeds the quality budget ({t.loss(ctx):g}% perplexity increase > "
                      f"{workload.max_quality_loss_pct:g}%)")
        if reason is not None:
            rejected[t.id] = reason
        else:
            valid.append(t)
    base = engine_baseline(ctx, valid)
    base_pred = evaluate(base, workload, full=False)
    always = [t for t in valid if t.always_on]
    always_ids = {t.id for t in always}
    groups: dict[str, list[Technique | None]] = {}
    for t in valid:
        if t.always_on:
            continue
        key = t.group or t.id
        if only_groups is not None and key not in only_groups:
            continue
        if t.group and any(a.group == t.group for a in always):
            continue  # its group's slot is taken by an always-on technique (e.g. cuda-graphs over torch.compile)
        groups.setdefault(key, [None]).append(t)
    candidates = []
    no_ops: set[str] = set()
    used: set[str] = set()
    seen: set[tuple[str, ...]] = set()
    # the state after each run of steps from the baseline: shared by every replica size up to the data-parallel step,
    # by the size it was priced at from there
    shared: dict[tuple[str, ...], PlanState] = {}
    applied: dict[int | None, SizedMemo] = {}
    # the data-parallel replicas' sizes a stack with them is priced at (in a quick search too: a device that meets the
    # workload only with replicas of more devices is ranked)
    sizes = replica_size_choices(ctx)
    engine = workload.engine

    def consider(ids: set[str]) -> None:
        """Evaluate the stack `ids` (once): a candidate unless it is over the quality budget or a chosen step idles;
        with data-parallel replicas, at each of their sizes, the stack's other steps applied to each (`price`)."""
        order = tuple(plan_order(sorted(ids)))
        if order in seen:
            return
        seen.add(order)
        steps = [techniques[i] for i in order]
        # first (cheap) the losses up to a step that replaces the model, which every stack with them has; then the
        # stack's own, each step's for the model it is applied to (a distilled student's 4-bit loss is the student's)
        known = 0.0
        for t in steps:
            known += t.loss(ctx)
            if t.replaces_model:
                break
        if known > workload.max_quality_loss_pct + 1e-9:
            return
        priced = [c for c in (price(order, steps, size) for size in (sizes if "data-parallel" in ids else [None]))
                  if c is not None]
        layouts: dict[tuple[int, int, int], Candidate] = {}  # a size the weights do not allow repeats the fewest's
        for c in priced:
            layouts.setdefault((c.state.tp, c.state.replicas, c.state.attention_dp), c)
        if layouts:
            candidates.append(pick_size(list(layouts.values())))

    def price(order: tuple[str, ...], steps: list[Technique], size: int | None) -> Candidate | None:
        here = ctx.sized(size)
        # where the losses are known whole (no step replaces the model), the steps after the first idle one are not
        # applied: the stack is dropped, and they may cost (the API servers' step prices the state it is given)
        states = apply_steps(base, steps, here, until_idle=not any(t.replaces_model for t in steps),
                             memo=applied.setdefault(size, SizedMemo(shared)))
        if len(states) == len(steps) and states and \
                states[-1].quality_loss_pct - base.quality_loss_pct > workload.max_quality_loss_pct + 1e-9:
            return None
        idle = {t.id for prev, cur, t in zip([base, *states], states, steps) if idles(t, prev, cur)}
        if idle:
            no_ops.update(idle)
            return None  # a chosen step that changes nothing here (e.g. CPU offload when the weights fit)
        used.update(order)
        final = states[-1] if steps else base
        full = workload.goal == "context"
        pred = predict_steps(base, steps, states, workload, ctx.effects, full=full, last_only=True)[0] if steps \
            else evaluate(base, workload, full=full)
        goal_score = score(pred, workload.goal, workload.output_tokens_mean, workload.concurrency)
        if workload.goal == "context":
            objective = (float(min(pred.max_concurrency, workload.concurrency)), pred.tpot_ms)
        elif workload.goal == "memory":  # what the plan holds: the runtime's own memory is the same in every plan
            objective = (0.0, float(pred.memory_per_device_bytes - ctx.hw.runtime_overhead_bytes))
        else:
            objective = (0.0, goal_score)
        # of the model the weight steps are applied to (a distilled plan's student)
        produced = tuple(produced_formats(order, final.spec, ctx.hw, workload.engine, serves_instruct(workload), pred))
        return Candidate(order, final, pred, goal_score, within_speed_limits(pred, base_pred, workload.goal),
                         objective, produced, size)

    for combo in itertools.product(*groups.values()):
        chosen = {t.id for t in combo if t is not None}
        ids = always_ids | chosen
        if not _consistent(ids, techniques, ctx):
            # the combination's choices win: drop always-on techniques that clash with them, then those whose
            # requirements went with them
            ids = chosen | {a for a in always_ids if not any(_clash(a, c, techniques, ctx) for c in chosen)}
            ids = {i for i in ids if all(d in ids for d in requirements(techniques[i], engine))}
            if not _consistent(ids, techniques, ctx):
                continue
        consider(ids)
    # an always-on technique that is not the engine's default joins every stack, yet may cost the goal here (TensorRT-
    # LLM's chunked prefill holds memory a memory plan does not want; transformers' paged cache a step's time): the
    # leading stacks are tried without each such step, and rank weighs them like the others
    defaults = engine_defaults(ctx.release_engine)
    for c in rank(tuple(candidates))[:REFINED]:
        for t_id in c.ids:
            if techniques[t_id].always_on and t_id not in defaults:
                ids = set(c.ids) - {t_id}
                ids = {i for i in ids if all(d in ids for d in requirements(techniques[i], engine))}
                if _consistent(ids, techniques, ctx):
                    consider(ids)
    return SearchResult(base, base_pred, tuple(candidates), rejected, frozenset(no_ops - used))


# The leading stacks (`rank`) tried again without each always-on step that is not the engine's default
REFINED = 3
# A lossier plan must beat a less lossy one by more than this share of the goal's objective to be chosen: 4% lower
# time per token is not worth 25 times the perplexity increase (issue 15: int4 at 4.9% chosen over int8 at 0.2%)
QUALITY_TIE = 0.05
# Two plans within QUALITY_TIE whose quality losses are this close (perplexity points) count as equally good, and the
# simpler goes first: an 8-bit cache's 0.1% is not worth a router and two roles of instances, while the smallest
# 4-bit loss (AWQ's 1.8% on Llama-2-13B) is more than this.
QUALITY_EQUAL = 0.5


def tier(c: Candidate) -> tuple[int, bool]:
    """A stack's standing before its score: it fits and meets the SLOs, fits, or neither (`objective.slo_tier`), then
    whether it keeps within the speed limits where speed is not the goal."""
    return slo_tier(c.predicted), not c.speed_ok


def pick_size(priced: list[Candidate]) -> Candidate:
    """Of one stack priced at several replica sizes, the best in the best tier (fits and meets the SLOs, within the
    speed limits), the fewest devices a replica among those within STEP_GAIN of it: copies that talk less, where the
    model cannot tell the layouts apart."""
    top = min(tier(c) for c in priced)
    best = min((c for c in priced if tier(c) == top), key=lambda c: c.score)
    return min((c for c in priced if tier(c) == top and within_step_gain(c, best) or c is best),
               key=lambda c: (c.state.tp * c.state.attention_dp, c.score))


def rank(candidates: tuple[Candidate, ...]) -> list[Candidate]:
    """Best first: stacks that fit and meet every SLO, then those that fit, each by score; a stack that costs more
    speed than the limits allow where speed is not the goal comes after those that do not. Among stacks within
    QUALITY_TIE of the best on the goal's figure (for the context goal: as many sequences, time per token within
    it; for the memory goal: the bytes the plan holds, without the runtime's own), the one with the least quality
    loss goes first; among those within QUALITY_EQUAL of that loss, the one with the fewest moving parts (a router
    and prefill and decode instances are not worth a few percent, nor is a checkpoint the user must produce first,
    a 235B model quantized with llm-compressor, where a published one or the engine's own quantizing serves), each
    of them first read without the steps that do not earn their place (`earned`)."""
    def key(c: Candidate):
        return (*tier(c), round(c.score, 9), c.predicted.quality_loss_pct, len(c.ids), c.ids)
    ranked = sorted(candidates, key=key)
    if not ranked:
        return ranked
    best = ranked[0]

    def near(c: Candidate) -> bool:
        (a, x), (b, y) = goal_figure(c), goal_figure(best)
        return tier(c) == tier(best) and a == b and abs(x - y) <= QUALITY_TIE * abs(y)
    close = [c for c in ranked if near(c)]
    techniques = all_techniques()

    def parts(c: Candidate) -> int:
        return sum(techniques[i].moving_parts for i in c.ids if i in techniques) + len(c.produced)
    least = min(round(c.predicted.quality_loss_pct, 4) for c in close)
    as_good = [earned(c, ranked) for c in close if c.predicted.quality_loss_pct <= least + QUALITY_EQUAL]
    pick = min(as_good, key=lambda c: (parts(c), round(c.predicted.quality_loss_pct, 4), round(c.score, 9),
                                       len(c.ids), c.ids))
    return [pick, *(c for c in ranked if c is not pick)]


def goal_figure(c: Candidate) -> tuple[float, float]:
    """(a part that must be equal, the figure compared by share): the candidate's objective, else (0, its score)."""
    return c.objective or (0.0, c.score)


def within_step_gain(a: Candidate, b: Candidate) -> bool:
    """Whether `a`'s goal figure is within STEP_GAIN of `b`'s (the part that must be equal, equal)."""
    (p, x), (q, y) = goal_figure(a), goal_figure(b)
    return p == q and abs(x - y) <= STEP_GAIN * abs(y)


def earned(c: Candidate, ranked: list[Candidate]) -> Candidate:
    """`c` without the steps that do not earn their place: the smallest of its sub-stacks in its tier, no lossier,
    whose goal figure is within STEP_GAIN of its own, and so on from that one until every step left moves the figure
    by more than STEP_GAIN against the stack without it (two steps of 2% each leave neither, though together they
    move it by 4%; `c` itself where none is within)."""
    stacks = [(frozenset(s.ids), s) for s in ranked]
    while True:
        ids = frozenset(c.ids)
        within = [s for held, s in stacks if held < ids and tier(s) == tier(c)
                  and s.predicted.quality_loss_pct <= c.predicted.quality_loss_pct + 1e-9 and within_step_gain(s, c)]
        if not within:
            return c
        c = min(within, key=lambda s: (len(s.ids), round(s.score, 9), s.ids))


def _differs(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    """A real trade: 3% apart in the objective or memory, or 0.05 points apart in quality loss."""
    score_a, loss_a, mem_a = a
    score_b, loss_b, mem_b = b
    return (abs(score_a - score_b) > 0.03 * max(abs(score_a), abs(score_b), 1e-9) or abs(loss_a - loss_b) >= 0.05
            or abs(mem_a - mem_b) > 0.03 * max(mem_a, mem_b))


def _dominates(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    """a is no worse than b in every dimension (within the tolerances of `_differs`) and differs."""
    tolerances = (0.03 * max(abs(b[0]), 1e-9), 0.05 - 1e-9, 0.03 * b[2])
    return all(x <= y + t for x, y, t in zip(a, b, tolerances)) and _differs(a, b)


def pareto_alternatives(best: Candidate, ranked: list[Candidate], limit: int = 3) -> list[Candidate]:
    """Stacks not dominated on (objective, quality loss, memory per device) that trade something
    real against the best, of near-equal ones the shortest and then the closest to the best's steps (an
    alternative changes what it trades, not also a layout that predicts the same), best objective first."""
    pool = [c for c in ranked if c.predicted.meets_slo == best.predicted.meets_slo and c.predicted.fits]

    def dims(c: Candidate) -> tuple[float, float, float]:
        return c.score, c.predicted.quality_loss_pct, float(c.predicted.memory_per_device_bytes)

    front: list[Candidate] = []
    for c in sorted(pool, key=lambda c: (len(c.ids), -len(set(c.ids) & set(best.ids)), c.ids)):
        dc = dims(c)
        if c.ids == best.ids or not _differs(dc, dims(best)):
            continue
        if any(_dominates(dims(o), dc) for o in pool):
            continue
        if any(not _differs(dims(f), dc) for f in front):
            continue
        front.append(c)
    return sorted(front, key=lambda c: (c.score, c.ids))[:limit]
