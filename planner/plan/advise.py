"""`optiplan advise`: bottleneck, the best plan for the goal, alternatives, rejections, and (with
`--hardware auto`) the hardware to buy or rent. Pure Python: never imports torch."""

from __future__ import annotations

from dataclasses import replace

from ... import profiles
from ..analytic.accuracy import (
    accuracy_bands,
    architecture_kind,
    fitting_bands,
    missing_bands_reason,
    training_accuracy_bands,
)
from ..analytic.model_summary import model_summary
from ..analytic.params import param_counts
from ..analytic.speculation import draft_vocab_refusal
from ..catalog.engine_devices import engine_for_backend, engine_runs_on
from ..catalog.engine_memory import engine_kv_memory
from ..catalog.engine_refusals import attention_split_refusal
from ..catalog.engine_state_models import state_model_refusal
from ..catalog.engines import (
    deployed_engine,
    engine_budget_per_group,
    engine_default_limit,
    engine_fact,
    engine_runtime,
    engine_splits_layers,
)
from ..catalog.hardware import catalog_hardware, devices_per_node, resolve_hardware
from ..catalog.models import instruct_note, mtp_layers, resolve_model
from ..catalog.workloads import priced_tokens, serves_instruct, with_overrides
from ..errors import HardwareError, ImpossibleError, RequestError
from ..schema import HardwareSpec, ModelSpec
from ..schema.advice import (
    Advice,
    AdviseRequest,
    Alternative,
    HardwareChoice,
    HardwareOption,
    Plan,
    PlanStep,
    Prediction,
)
from ..schema.workload import Workload
from .bottleneck import classify
from .effects import effect_source, engine_default, measured_effects, predict_steps
from .explain import alternative_note, paying_off, rejections, speed
from .hardware_ranking import cost_range, explain_ranking
from .objective import score
from .predict import evaluate, plan_caveats, sequences_per_server
from .request import engine_here, resolve_request
from .search import (
    Candidate,
    SearchResult,
    apply_steps,
    engine_baseline,
    pareto_alternatives,
    rank,
    search,
)
from .state import PlanState
from .techniques import Context, all_techniques, denied_default_refusal, static_reason
from .training import token_scan_caveat

GB = 1e9
AUTO_COUNTS = (1, 2, 4, 8)
QUICK_GROUPS = frozenset({"weight-format", "kv-format", "parallelism"})


def _quick(workload: Workload) -> frozenset[str] | None:
    """The groups a quick search enumerates: formats and parallelism for serving; every training
    technique (there are few) for training."""
    return None if workload.goal == "training" else QUICK_GROUPS


# ---------------------------------------------------------------------------------------------
# context: draft and smaller models from the catalog
# ---------------------------------------------------------------------------------------------


def _family(spec: ModelSpec) -> str | None:
    name = profiles.resolve_model_name(spec.name)
    if name is not None:
        return profiles.load_model(name).get("tokenizer_family")
    for other in profiles.model_names():  # a config file: the catalog family with its vocabulary and type
        entry = profiles.load_model(other)
        # the type as the catalog model is named (a wrapper's, Gemma 3 27B's gemma3; Llama 4's llama4)
        if entry["config"].get("vocab_size") == spec.vocab_size and resolve_model(other).model_type == spec.model_type:
            return entry.get("tokenizer_family")
    return None


def _generation(spec: ModelSpec) -> str:
    """A model's generation within its tokenizer family: its architecture, dense and mixture-of-experts alike
    (qwen3 and qwen3_moe)."""
    return spec.model_type.removesuffix("_moe")


def _relatives(spec: ModelSpec) -> list[ModelSpec]:
    family = _family(spec)
    if family is None:
        return []
    return [resolve_model(n) for n in profiles.model_names()
            if profiles.load_model(n).get("tokenizer_family") == family and n != spec.name]


def build_context(spec: ModelSpec, hw: HardwareSpec, devices: int, workload: Workload) -> Context:
    """The technique context: a draft model (same tokenizer family, at most a fifth of the target's
    active parameters: the smallest such of the target's own generation, else of the family) and a
    distillation student (the largest of the family at most half the target's size and at least a
    quarter of it)."""
    target = param_counts(spec)
    relatives = [(param_counts(r), r) for r in _relatives(spec)]
    # a draft of the target's own generation first (Qwen3-0.6B for a Qwen3 target, dense or mixture of experts, as
    # vLLM's draft-model docs pair them, over the smaller Qwen2.5-0.5B of the same tokenizer): trained on the same
    # data, it guesses more of what the target writes
    drafts = sorted((_generation(r) != _generation(spec), c.active, r.name, r) for c, r in relatives
                    if c.active * 5 <= target.active and draft_vocab_refusal(spec, r) is None)
    # a student of a half to a quarter of the teacher's parameters: the compressions distillation's quality figure
    # comes from (Minitron, 15B into 8B and 4B); a smaller one has no published figure to plan with
    smaller = sorted((c.total, r.name, r) for c, r in relatives if c.total * 4 >= target.total >= c.total * 2)
    if workload.goal != "training" and (why := state_model_refusal(deployed_engine(workload.engine, hw),
                                                                     spec.model_type)):
        raise RequestError(why)
    catalog = profiles.resolve_model_name(spec.name)
    entry = profiles.load_model(catalog) if catalog else {}
    mtp = mtp_layers(spec.name)  # the checkpoint's MTP modules
    return Context(spec=spec, hw=hw, devices=devices, workload=workload,
                   draft=drafts[0][3] if drafts else None, smaller=smaller[-1][2] if smaller else None,
                   mtp_layers=mtp or 0, eagle_heads=tuple(entry.get("eagle") or ()),
                   effects=measured_effects(spec, hw, workload.engine))


# ---------------------------------------------------------------------------------------------
# hardware auto
# ---------------------------------------------------------------------------------------------


def _counts(hw: HardwareSpec) -> list[int]:
    per_node = devices_per_node(hw)
    counts = [n for n in AUTO_COUNTS if n <= per_node]
    nodes = 2
    while per_node > 1 and nodes <= 8:
        counts.append(per_node * nodes)
        nodes *= 2
    return counts


def rank_hardware(spec: ModelSpec, workload: Workload, engine_asked: bool = False, count: int | None = None
                  ) -> list[tuple[HardwareOption, HardwareSpec, int]]:
    """Every catalog device at 1-8 per node (and more nodes where needed; at `count` devices only where given) that
    meets the workload, cheapest per million output tokens (tokens trained) first. Each is judged by a quick search
    over weight and KV formats and parallelism on top of the lossless serving techniques, served by an engine that
    runs on it: the one asked for (devices it does not run on are left out), or the preset's where it runs, else its
    fallback."""
    options = []
    preset = workload
    for hw_id in profiles.hardware_ids():
        hw = catalog_hardware(hw_id)
        if preset.goal != "training" and not engine_runs_on(preset.engine, hw):
            if engine_asked:
                continue
            workload = with_overrides(preset, engine=engine_for_backend(preset.engine, hw))
        else:
            workload = preset
        for n in [count] if count else _counts(hw):
            if n > 1 and hw.interconnect is None:
                break
            ctx = build_context(spec, hw, n, workload)
            if denied_default_refusal(ctx):  # its engine runs a technique asked left out by default here
                break
            try:
                ranked = rank(search(ctx, only_groups=_quick(workload)).candidates)
            except HardwareError:  # e.g. a training step at a rate the device lacks
                break
            if not ranked or not ranked[0].predicted.meets_slo:
                continue
            p = ranked[0].predicted
            note = "+".join(i for i in ranked[0].ids if not all_techniques()[i].always_on) or "serving defaults"
            options.append((HardwareOption(id=hw_id, count=n, meets_workload=True,
                                           cost_per_million_tokens_usd=p.cost_per_million_tokens_usd,
                                           cost_range_usd=cost_range(p.cost_per_million_tokens_usd, hw),
                                           throughput_tokens_per_s=p.throughput_tokens_per_s, note=note), hw, n))
            break  # the fewest devices of this kind that meet the workload
    options.sort(key=lambda o: (o[0].cost_per_million_tokens_usd is None, o[0].cost_per_million_tokens_usd or 0,
                                -o[0].throughput_tokens_per_s, o[0].id))
    return options


# ---------------------------------------------------------------------------------------------
# advise
# ---------------------------------------------------------------------------------------------


def _impossible(spec: ModelSpec, hw: HardwareSpec, devices: int, workload: Workload, best: Candidate | None,
                nearest: str) -> str:
    where = f"{spec.name} on {devices} x {hw.id}"
    if best is None or not best.predicted.fits:
        what = "nothing fits"
        if best is not None:
            need = best.predicted.memory_per_device_bytes
            # under the device's size, it is the engine's share of the device (or its cache's room) that is short
            short = "" if need > hw.memory_bytes else ", beyond what the engine's memory share leaves its cache"
            # a full fine-tune as modelled keeps fp32 master weights and gradients: say what it leaves out
            full = workload.goal == "training" and not {"lora", "qlora"} & set(best.ids)
            what += (f" (the smallest plan needs {need / GB:,.1f} GB per device of {hw.memory_bytes / GB:,.1f} GB"
                     f"{short}" + ("; a full fine-tune as modelled keeps fp32 master weights and gradients, and "
                                   "recipes that keep bf16 weights and step the optimizer in the backward pass "
                                   "(torchtune's single-device full fine-tunes, about 6 bytes a parameter with an "
                                   "8-bit optimizer) are not modelled" if full else "") + ")")
    else:
        what = f"no plan meets the workload ({'; '.join(best.predicted.slo_violations)})"
    return f"{what}: {where} with every allowed technique; nearest feasible: {nearest}"


def _feasible(spec: ModelSpec, hw: HardwareSpec, devices: int, workload: Workload) -> bool:
    ranked = rank(search(build_context(spec, hw, devices, workload), only_groups=_quick(workload)).candidates)
    return bool(ranked) and ranked[0].predicted.meets_slo


def _nearest(spec: ModelSpec, hw: HardwareSpec, devices: int, workload: Workload) -> str:
    for budget in (2.0, 5.0):
        if budget > workload.max_quality_loss_pct and _feasible(
                spec, hw, devices, workload.model_copy(update={"max_quality_loss_pct": budget})):
            return f"a looser quality budget (--max-quality-loss {budget:g}%)"
    for count in _counts(hw):
        if count > devices and _feasible(spec, hw, count, workload):
            return f"{count} x {hw.id} (--gpus {count})"
    # then on the same devices: fewer sequences at once, a smaller model of the family, before other hardware
    concurrency = workload.concurrency // 2 if workload.goal != "training" else 0  # a step's batch is its own
    while concurrency >= 1:
        if _feasible(spec, hw, devices, with_overrides(workload, concurrency=concurrency)):
            return f"{concurrency} sequences at once instead of {workload.concurrency} (--concurrency {concurrency})"
        concurrency //= 2
    if hw.kind in ("apple", "cpu") or hw.id == "local":  # a laptop or a desktop: a model it can run, before renting
        for smaller in sorted(_relatives(spec), key=lambda r: -param_counts(r).total):
            if param_counts(smaller).total < param_counts(spec).total and _feasible(smaller, hw, devices, workload):
                return f"{smaller.name}, a smaller model of its family, on the same {devices} x {hw.id}"
    options = rank_hardware(spec, workload, engine_asked=True)
    if hw.kind in ("apple", "cpu") or hw.id == "local":
        # one user at a desk: the machine that costs least by the hour, not the cheapest token at a datacenter's load
        options.sort(key=lambda o: _hourly(o[1], o[2]))
    for option, other, count in options[:1]:
        price = _hourly(other, count)
        if price < float("inf") and hw.kind in ("apple", "cpu"):
            why = f", about ${price:.2f} an hour"
        elif option.cost_per_million_tokens_usd is not None:  # say why another kind of device: it serves cheapest
            why = (f", the catalog's cheapest per token that meets it (${option.cost_per_million_tokens_usd:,.2f} per "
                   f"million {priced_tokens(workload.goal)})")
        else:
            why = ""
        return f"{count} x {other.id} (--hardware {other.id} --gpus {count})" + why
    return "none in the catalog; relax the SLOs or the workload"


def _hourly(hw: HardwareSpec, count: int) -> float:
    """The catalog's price of `count` devices per hour (infinite where it has none)."""
    price = hw.price.usd_per_hour if hw.price else None
    return price * count if price else float("inf")


def advise(request: AdviseRequest) -> Advice:
    """The Python API of `optiplan advise`."""
    if request.num_devices is not None and request.num_devices < 1:
        raise RequestError(f"num devices must be at least 1, got {request.num_devices}")
    spec, workload, notes = resolve_request(request)
    ranking: list[HardwareOption] = []
    hardware_reason = None
    if request.hardware.strip().lower() == "auto":
        options = rank_hardware(spec, workload, engine_asked=request.engine is not None, count=request.num_devices)
        if not options:
            at = (f"at {request.num_devices} devices (--gpus; without it the search picks the count)"
                  if request.num_devices else "at any count up to 64")
            raise ImpossibleError(f"no catalog device meets the workload for {spec.name} {at}; nearest feasible: "
                                  "relax the SLOs, the concurrency or the quality budget"
                                  + (" (devices whose engine runs a technique left out by default are not ranked)"
                                     if workload.denied_techniques else ""))
        ranking = [o[0] for o in options]
        hw, devices = options[0][1], options[0][2]
        hardware_reason = explain_ranking(ranking, priced_tokens(workload.goal))
        workload = engine_here(workload, hw, request.engine, notes)
    else:
        hw = resolve_hardware(request.hardware)
        devices = request.num_devices or 1
        if devices > 1 and hw.interconnect is None:
            raise HardwareError(f"{hw.id} has no device interconnect: one model cannot span {devices} of them")
        workload = engine_here(workload, hw, request.engine, notes)
    ctx = build_context(spec, hw, devices, workload)
    result = search(ctx)
    ranked = rank(result.candidates)
    best = ranked[0] if ranked else None
    if best is None or not best.predicted.meets_slo:
        if best is not None and not best.predicted.fits:  # name the smallest plan, not the fastest
            best = min(result.candidates, key=lambda c: c.predicted.memory_per_device_bytes)
        nearest = _nearest(spec, hw, devices, workload)
        message = _impossible(spec, hw, devices, workload, best, nearest)
        document = None if best is None else _document(
            spec, workload, hw, devices, ctx, result, ranked, best, ranking, hardware_reason, notes).model_copy(
            update={"feasible": False, "infeasible_reason": message.split("; nearest feasible")[0],
                    "nearest_feasible": nearest})
        raise ImpossibleError(message, document)
    if note := _fewer_devices(spec, hw, devices, workload, best):
        notes = [*notes, note]
    return _document(spec, workload, hw, devices, ctx, result, ranked, best, ranking, hardware_reason, notes)


def _fewer_devices(spec: ModelSpec, hw: HardwareSpec, devices: int, workload: Workload, best: Candidate) -> str | None:
    """Where the heads do not split over one node's devices and the plan runs pipeline stages there, the most of them
    they split over, in tensor parallel, where that plan does better on the goal (70B on 3 x H100: 2 of them)."""
    def splits(d: int) -> bool:  # the heads, and the KV heads as the engine splits them
        return attention_split_refusal(workload.engine, spec.num_heads, spec.num_kv_heads, d) is None
    if workload.goal == "training" or best.state.pp == 1 or devices > devices_per_node(hw) \
            or engine_splits_layers(workload.engine) or splits(devices):
        return None
    fewer = next((d for d in range(devices - 1, 1, -1) if splits(d)), None)
    ranked = rank(search(build_context(spec, hw, fewer, workload)).candidates) if fewer else []
    if not ranked or not ranked[0].predicted.meets_slo:
        return None
    goal, a, b = workload.goal, ranked[0].predicted, best.predicted
    if score(a, goal, workload.output_tokens_mean, workload.concurrency) >= \
            score(b, goal, workload.output_tokens_mean, workload.concurrency):
        return None
    return (f"{spec.num_heads} attention heads ({spec.num_kv_heads} KV heads) do not split over {devices} devices, so "
            f"the plan runs {best.state.pp} pipeline stages; {fewer} of them in tensor parallel do better for the "
            f"{goal} goal: {speed(a, goal)} against {speed(b, goal)} (`--gpus {fewer}`)")


def predict_stack(request: AdviseRequest, ids: list[str]) -> tuple[Prediction, dict[str, Prediction]]:
    """The planner's predictions for a stack chosen by hand (`apply -t`), composed step by step in the order given on
    the request's hardware and engine: the baseline's, and each step's that the planner knows and can apply there."""
    spec, workload, notes = resolve_request(request)
    hw = resolve_hardware(request.hardware)
    workload = engine_here(workload, hw, request.engine, notes)
    ctx = build_context(spec, hw, request.num_devices or 1, workload)
    techniques = all_techniques()
    base = engine_baseline(ctx, [t for t in techniques.values() if static_reason(t, ctx) is None])
    known = [techniques[i] for i in ids if i in techniques and static_reason(techniques[i], ctx) is None]
    steps = predict_steps(base, known, apply_steps(base, known, ctx), workload, ctx.effects) if known else []
    return evaluate(base, workload), {t.id: p for t, p in zip(known, steps)}


def _document(spec: ModelSpec, workload: Workload, hw: HardwareSpec, devices: int, ctx: Context,
              result: SearchResult, ranked: list[Candidate], best: Candidate, ranking: list[HardwareOption],
              hardware_reason: str | None, notes: list[str]) -> Advice:
    """The advice document for the plan `best`: its steps predicted one by one, alternatives, rejections."""
    ctx = ctx.sized(best.replica_size)  # its data-parallel replicas at the size it was priced at
    techniques = all_techniques()
    steps_t = [techniques[i] for i in best.ids]
    states = apply_steps(result.baseline, steps_t, ctx)
    steps = []
    predictions = predict_steps(result.baseline, steps_t, states, workload, ctx.effects)
    # a step's parameters name the sequences a server runs in the plan (the throughput goal's batch where it is larger
    # than the workload's), as the configs do
    per_server = sequences_per_server(predictions[-1], workload.concurrency) if predictions else workload.concurrency
    if predictions and engine_budget_per_group(workload.engine):  # vLLM's max_num_seqs holds per data-parallel rank
        per_server = -(-per_server // predictions[-1].attention_data_parallel)
    params_ctx = replace(ctx, workload=workload.model_copy(update={"concurrency": per_server}))
    # the engine at the release the plan is priced at, whose defaults the baseline runs (`search.engine_baseline`)
    engine = ctx.release_engine if workload.goal != "training" else None
    # each step parametrised and priced for the model it is applied to (after distillation, the student's checkpoint)
    for t, predicted, before in zip(steps_t, predictions, [result.baseline, *states]):
        here = ctx.on_model(before.spec)
        steps.append(PlanStep(technique=t.id, name=t.name, params=t.parameters(params_ctx.on_model(before.spec),
                                                                                predicted),
                              why=t.summary, quality_risk=t.quality_risk, quality_loss_pct=t.loss(here),
                              quality_source=t.source(here),
                              effect_source=effect_source(t, ctx.effects, engine),
                              engine_default=engine_default(t, engine), predicted=predicted))
    steps = paying_off(steps, evaluate(result.baseline, workload), workload)
    final = steps[-1].predicted if steps else evaluate(result.baseline, workload)
    baseline = evaluate(result.baseline, workload)
    alternatives = [Alternative(techniques=list(c.ids), predicted=_predicted(c, result.baseline, ctx),
                                note=alternative_note(c, best, workload.goal)) for c in pareto_alternatives(best, ranked)]
    warnings = [*notes, *spec.warnings]
    if workload.goal != "training" and serves_instruct(workload) and (note := instruct_note(spec.name, workload.name)):
        warnings.append(note)
    if not baseline.fits:
        figures = "step time is" if workload.goal == "training" else "latency figures are"
        warnings.append(f"the baseline does not fit: its {figures} what it would take if it did")
    if workload.goal != "training":
        warnings += [w for w in (_above_default_share(baseline, workload.engine, hw, "the baseline"),
                                 _above_default_share(final, workload.engine, hw, "the plan")) if w]
    used = best.state.tp * best.state.pp * best.state.attention_dp * best.state.replicas
    if used < devices:  # a layer split stops at one layer per device
        warnings.append(f"the plan uses {used} of the {devices} devices: {spec.name} has {spec.num_layers} layers to "
                        f"split and no technique here spreads it further")
    replicas = final.data_parallel - final.prefill_instances
    if replicas > 1 and workload.goal not in ("throughput", "cost", "training"):
        # the replicas the prediction serves its sequences on (`evaluate`), each running a server's share of them
        idle = replicas - -(-final.batch // sequences_per_server(final, workload.concurrency))
        if idle > 0:
            warnings.append(f"{idle} of the plan's {replicas} replicas stand idle: the workload has "
                            f"{workload.concurrency} sequence{'' if workload.concurrency == 1 else 's'} at once "
                            f"(their devices are still in its cost)")
    if workload.goal == "cost" and not (hw.price and hw.price.usd_per_hour):
        warnings.append(f"the catalog has no price for {hw.id}: the cost goal ranks the plans by output tokens per "
                        f"second, the same order on these devices, and shows no cost per token")
    training = workload.goal == "training"
    weights = best.state.weight_dtype  # the plan's weights: the format a calibration of this machine must have fitted
    method = next((m for m in ("qlora", "lora") if m in best.state.training), None)
    bands = training_accuracy_bands(hw, devices, architecture_kind(spec), method) if training \
        else accuracy_bands(hw, engine_runtime(workload.engine), workload.engine, architecture_kind(spec), weights)
    if not bands:
        warnings.append(missing_bands_reason(hw, architecture_kind(spec), training, weights,
                                             full_fine_tune=training and method is None))
    if training and (scan := token_scan_caveat(spec)):
        warnings.append(scan)
    bands = fitting_bands(bands, final.fits)  # a plan that does not fit: its memory's alone (plan_below says why)
    if not training:  # weights priced by a kernel rate measured elsewhere only; an expert dispatch the image lacks
        warnings += plan_caveats(workload.engine, weights, hw, final)
        unbanded = [what for what, on in (
            ("speculative decoding (its step model checked against one published sweep: "
             "benchmarks/bench_speculation_published.py)", best.state.speculation is not None),
            ("weights offloaded to host memory", best.state.offload_fraction > 0)) if on]
        if bands and unbanded:  # as profile says of its speculative figures (`speculation.speculation_note`)
            warnings.append(f"the ± bands are plain decoding's, from published points without the plan's "
                            f"{' or '.join(unbanded)}")
    advice = Advice(
        model=model_summary(spec), workload=workload,
        # a training plan runs every device as a data-parallel rank (FSDP shards over them); a serving plan its
        # state's layout
        hardware=HardwareChoice(id=hw.id, name=hw.name, count=devices,
                                tensor_parallel=1 if training else best.state.tp,
                                pipeline_parallel=1 if training else best.state.pp,
                                data_parallel=devices if training else best.state.replicas,
                                attention_data_parallel=best.state.attention_dp,
                                usd_per_hour=hw.price.usd_per_hour if hw.price else None,
                                usd_per_hour_range=hw.price.usd_per_hour_range if hw.price else None),
        bottleneck=classify(result.baseline, baseline, workload), baseline=baseline,
        plan=Plan(steps=steps, predicted=final, quality_loss_pct=round(best.predicted.quality_loss_pct, 4),
                  score=best.score),
        alternatives=alternatives, rejected=rejections(best, ranked, result, ctx),
        hardware_ranking=ranking, hardware_reason=hardware_reason, warnings=warnings, accuracy=bands,
    )
    limit = _engine_limit_warning(advice, hw)
    return advice.model_copy(update={"warnings": [*warnings, limit]}) if limit else advice


def _above_default_share(p: Prediction, engine: str | None, hw: HardwareSpec, what: str) -> str | None:
    """Where the baseline or the plan (`what`) holds its sequences only above the engine's default share of each
    device (vLLM's --gpu-memory-utilization 0.9): that it is priced with the share raised as its configs raise it,
    and that a server at its defaults holds fewer."""
    pool = engine_kv_memory(engine, hw) if engine else None
    if pool is None or pool[0] != "device" or not p.device_memory_bytes or not p.fits:
        return None  # a configuration that does not fit has its own warning: no share can be raised past the device
    need = p.memory_per_device_bytes / p.device_memory_bytes
    if round(need, 3) <= pool[1]:
        return None
    option = engine_fact(engine, "kv_memory").get("option", "its memory share")
    return (f"{what} holds its {p.batch:,} sequence{'' if p.batch == 1 else 's'} at {need:.0%} of each device, above "
            f"{engine}'s default {pool[1]:.0%}: it is priced with {option} raised, as the configs raise it; a server "
            f"started with its defaults holds fewer")


def _engine_limit_warning(advice: Advice, hw: HardwareSpec) -> str | None:
    """Where the plan runs more sequences per server than the engine takes by default: what a server started with
    its defaults would do with the rest, and that the configs optiplan writes raise the limit (`deploy.config`)."""
    engine, p = advice.workload.engine, advice.plan.predicted
    if advice.workload.goal == "training" or engine is None:
        return None
    limit = engine_default_limit(engine, hw, p.tensor_parallel * p.pipeline_parallel, p.attention_data_parallel)
    running = sequences_per_server(advice.plan.predicted, advice.workload.concurrency)
    if limit is None or running <= limit[0]:
        return None
    cap, option, refuses = limit
    rest = "refuses the rest" if refuses else "queues the rest"
    return (f"the plan runs {running:,} sequences at once per server; {engine} takes {cap:,} by default on "
            f"{hw.id} and {rest} ({option}): the configs optiplan writes (`optiplan configs`, --emit-configs) "
            f"raise {option}, and a server started by hand must too")


def _predicted(c: Candidate, base: PlanState, ctx: Context):
    """A stack's full prediction (the search's skips the longest-context figure), measured effects composed in."""
    if not c.ids:
        return evaluate(base, ctx.workload)
    ctx = ctx.sized(c.replica_size)
    steps = [all_techniques()[i] for i in c.ids]
    return predict_steps(base, steps, apply_steps(base, steps, ctx), ctx.workload, ctx.effects, last_only=True)[0]
