"""`optiplan apply`: turn a plan into an optimized model folder, step by step, measuring each step.

The plan comes from the planner (`--goal`, on this machine's hardware with the transformers engine), from a
saved `advise --format json`, or from an explicit list of techniques. Each step is applied to the real model,
then a short measurement says whether the gain it exists for showed up; with `drop_unprofitable` a step
whose gain did not show is rolled back. The folder is written all or nothing and then verified.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..planner.errors import ImpossibleError, OptiplanError, PlanError, RequestError
from ..planner.fsutil import previous_kept, temporary_prefix, write_text_atomic
from ..planner.measure.runtime import quiet_libraries
from ..planner.plan.effects import BATCHED_FLOOR, NOISE, TPOT_CEILING
from ..planner.plan.graph import plan_order
from ..planner.plan.techniques import all_techniques, runtime_conflict
from ..planner.report.verify import AGREEING_ROUNDS, established_ratios
from ..planner.schema.optimize import ArtifactManifest, StepRecord
from .corpus import DEFAULT_PROMPTS, read_eval_text
from .registry import check_supported, registry
from .runtime import LoadedModel
from .speculative import DRAFT_TOKEN_CHOICES
from .step_spec import StepSpec, parse_technique
from .workspace import AlreadyInPlace, NotSupportedHere, Workspace

# The figure each goal is judged by (quick_figures' keys) and which way is better
SPEED_GOALS = ("latency", "throughput", "cost")
GOAL_METRIC = {"latency": ("tpot_ms", "lower"), "throughput": ("batched_tokens_per_s", "higher"),
               "cost": ("batched_tokens_per_s", "higher"), "memory": ("weights_bytes", "lower"),
               "context": ("cache_bytes", "lower")}
# The quick figures after each step are a few samples on a shared machine (10-30% apart from run to run here):
# a step is judged on them only for what noise cannot make (timings 10% against the goal, speed halved or
# doubled); `verify`'s interleaved measurement then judges the whole plan against `plan.effects`' limits
QUICK_NOISE, QUICK_BATCHED_FLOOR, QUICK_TPOT_CEILING = 0.10, 0.5, 2.0
# what verify measures of memory: a memory plan ships only where one of them fell beyond noise
MEMORY_FIGURES = ("weights_bytes", "cache_bytes", "peak_memory_bytes")


def steps_from_plan(plan_file: Path, source: Path) -> tuple[list[StepSpec], dict[str, Any]]:
    """Steps of a saved `advise --format json`, refused if the plan was made for another model."""
    from ..planner.catalog.models import resolve_model
    from ..planner.schema import Advice

    try:
        advice = Advice.model_validate_json(Path(plan_file).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(f"cannot read plan {plan_file}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise PlanError(f"{plan_file}: not a plan from `optiplan advise --format json`: "
                        f"{str(exc).splitlines()[0]}") from exc
    spec = resolve_model(str(source))
    planned = advice.model
    mine = (spec.num_layers, spec.hidden_size, spec.num_heads, spec.num_kv_heads)
    theirs = (planned.num_layers, planned.hidden_size, planned.num_heads, planned.num_kv_heads)
    if mine != theirs:
        raise PlanError(f"the plan in {plan_file} was made for {planned.name} (layers, hidden, heads, kv heads = "
                        f"{theirs}), not for {source} {mine}; run `optiplan advise {source} --format json` first")
    return _with_predictions(advice), json.loads(advice.model_dump_json())


def step_ratios(before, after) -> dict[str, float]:
    """A step's predicted effect: its prediction over the one before it, in the figures apply measures."""
    return {"tpot_ms": after.tpot_ms / before.tpot_ms if before.tpot_ms else 1.0,
            "weights_bytes": after.weights_per_device_bytes / max(before.weights_per_device_bytes, 1),
            "cache_bytes": after.kv_cache_per_device_bytes / max(before.kv_cache_per_device_bytes, 1),
            "batched_tokens_per_s": after.throughput_tokens_per_s / max(before.throughput_tokens_per_s, 1e-9)}


def _with_predictions(advice) -> list[StepSpec]:
    """The plan's steps with their predicted ratios; a folder in a step's parameters is dropped (advise names a draft
    by its catalog name, draft_model: the folder is --draft's to give, and a plan file is no licence to read a path)."""
    steps, before = [], advice.baseline
    for step in advice.plan.steps:
        params = {k: v for k, v in step.params.items() if k != "draft"}
        steps.append(StepSpec(step.technique, params, step_ratios(before, step.predicted)))
        before = step.predicted
    return steps


def predict_named(steps: list[StepSpec], source: Path, hardware: str, workload: str | None,
                  log: Callable[[str], None]) -> None:
    """The planner's prediction for steps named by hand (`-t`), each over the one before it, so that they too are
    shown predicted beside measured; a model or machine the planner cannot describe leaves them unpredicted."""
    from ..planner.plan.advise import predict_stack
    from ..planner.schema import AdviseRequest

    try:
        before, predicted = predict_stack(AdviseRequest(model=str(source), hardware=hardware, num_devices=1,
                                                        workload=workload, engine="transformers"),
                                          [s.technique for s in steps])
    except OptiplanError as exc:
        log(f"no prediction for the steps: {exc}")
        return
    for step in steps:
        if step.technique in predicted:
            step.predicted = step_ratios(before, predicted[step.technique])
            before = predicted[step.technique]


def steps_from_goal(source: Path, goal: str, hardware: str, workload: str | None, context: int | None = None,
                    concurrency: int | None = None, max_quality_loss_pct: float | None = None
                    ) -> tuple[list[StepSpec], dict[str, Any]]:
    """Ask the planner: this machine's hardware, the transformers engine, one device."""
    from ..planner.plan.advise import advise
    from ..planner.schema import AdviseRequest

    request = AdviseRequest(model=str(source), hardware=hardware, num_devices=1, workload=workload, goal=goal,
                            engine="transformers", max_context=context, concurrency=concurrency,
                            max_quality_loss_pct=max_quality_loss_pct)
    try:
        advice = advise(request)
    except ImpossibleError as exc:
        if exc.document is None or not exc.document.plan.predicted.fits:
            raise
        # the workload's SLOs are out of reach here, but a plan fits: apply the best one (the manifest keeps the
        # plan with its predicted misses), rather than refuse to optimize at all
        advice = exc.document
    return _with_predictions(advice), json.loads(advice.model_dump_json())


def ordered(steps: list[StepSpec]) -> list[StepSpec]:
    """Steps in the order the compatibility graph gives (declared order, then families: weights first, compile
    and speculation last); names the graph does not know keep their place at the end, for a clear error later."""
    known = [s for s in steps if s.technique in all_techniques()]
    rank = {t: i for i, t in enumerate(plan_order([s.technique for s in known]))}
    return sorted(known, key=lambda s: rank[s.technique]) + [s for s in steps if s.technique not in rank]


def check_together(steps: list[StepSpec], draft: str | Path | None) -> None:
    """Refuse, before any step runs, steps that cannot stand together in one transformers model: two of one group (two
    weight formats), declared conflicts, two KV caches (`runtime_conflict`), and spec-draft without a draft model.
    Unknown names are left to the registry's clearer error."""
    declared = all_techniques()
    known = [declared[s.technique] for s in steps if s.technique in declared]
    for i, a in enumerate(known):
        for b in known[i + 1:]:
            if a.group and a.group == b.group:
                raise PlanError(f"{a.id} and {b.id} are both in the {a.group} group: a model takes one of them")
            if b.id in a.conflicts or a.id in b.conflicts:
                raise PlanError(f"{a.id} and {b.id} conflict: apply one of them")
            if reason := runtime_conflict(a, b, "transformers"):
                raise PlanError(f"{a.id} and {b.id} cannot run together: {reason}")
    if any(s.technique == "spec-draft" and not (draft or s.params.get("draft")) for s in steps):
        raise PlanError("spec-draft needs a draft model: pass --draft PATH (a smaller model with the same tokenizer)")


def quick_prompts(loaded: LoadedModel) -> dict:
    """The quick figures' prompts for the workspace's model as it stands (`loaded`); the cache's as long as its runtime
    cache needs to show (`effects.cache_tokens`: a step is timed against the model before it on these, both sides
    alike)."""
    from .effects import cache_tokens, id_prompts

    config = loaded.model.config
    return {**id_prompts(config.vocab_size, cache_context=cache_tokens(config, loaded)),
            "decode": [DEFAULT_PROMPTS[0]], "batch": list(DEFAULT_PROMPTS)}


def quick_figures(ws: Workspace) -> dict[str, float]:
    """A short measurement after each step (`effects.figures`: time per token as the median of three, on the built-in
    prompts; one sample of the rest; no cache bytes, read where a cache step is timed interleaved): seconds on a small
    model; the full before/after comparison is `verify`'s."""
    from .effects import figures

    loaded = LoadedModel.of(ws)
    return figures(loaded, quick_prompts(loaded), decode_tokens=24, decode_samples=3, cache=False)


# what a step does while it says nothing for a while
SLOW_STEPS = {"torch-compile": " (compiling each prompt shape twice before timing it: a minute or more on a CPU)",
              "spec-draft": f" (timing the draft at {', '.join(map(str, DRAFT_TOKEN_CHOICES))} drafted tokens a step)",
              "weight-int4-gptq": " (calibrating on the held-out corpus, layer by layer)"}
# what a step applied and kept says once verify measured the whole plan as a loss and the original model shipped
WHOLE_PLAN_ROLLED_BACK = "rolled back with the whole plan"
# rounds of a step's interleaved check against the model before it (ABBA: the two orders once each)
STEP_ROUNDS = 2
# a model up to this size is copied before a step that changes its weights even where the step is kept whatever it
# measures (named with --technique), so that the step is timed against it interleaved
CHECK_COPY_BYTES = 2e9


def model_bytes(ws: Workspace) -> int:
    """Bytes the workspace's model holds as stored (`metrics.weights_bytes`)."""
    from .metrics import weights_bytes

    return weights_bytes(LoadedModel.of(ws))


def interleaved_step_ratios(ws: Workspace, saved: tuple, cache: bool) -> dict[str, float]:
    """A step's measured ratios (after / before), the model before it (`saved`: its copy, or None where the step
    changed only runtime settings and the model is the same; its runtime, draft) and after it timed back to back in
    alternating order (`effects.interleaved_ratios`), so that load or drift on a shared machine lands on both: two
    measurements apart in time can show a slower step as a faster one (a cache step had read 25x on a first token)."""
    from .effects import FIGURES, interleaved_ratios

    model = saved[0] if saved[0] is not None else ws.model
    before = LoadedModel(model, ws.tokenizer, ws.device, saved[1], saved[2])
    after = LoadedModel.of(ws)
    out = interleaved_ratios(before, after, quick_prompts(after), rounds=STEP_ROUNDS, cache=cache)
    return {k: v for k, v in out.items() if k in FIGURES}


def losses(goal: str | None, ratios: dict[str, float], quick: bool = False) -> list[str]:
    """What measured ratios (after / before) cost, in words: the goal's figure worse beyond noise, or speed
    beyond the floor and ceiling where speed is not the goal. `quick`: the few samples after one step, judged
    only beyond their own noise (QUICK_*)."""
    out = []
    metric, direction = GOAL_METRIC.get(goal or "", (None, None))
    ratio = ratios.get(metric) if metric else None
    noise = QUICK_NOISE if quick and metric in ("tpot_ms", "batched_tokens_per_s") else NOISE
    if ratio is not None and (ratio > 1 + noise if direction == "lower" else ratio < 1 - noise):
        out.append(f"{metric} {ratio:.2f}x, against the {goal} goal")
    if goal == "memory" and not quick and not any(ratios.get(k, 1.0) < 1 - NOISE for k in MEMORY_FIGURES):
        # a plan for memory that saved none where verify measures it (weights, the cache past its kept span, peak)
        # has only its speed costs to show: never shipped for them
        out.append("no memory saved in weights, cache or peak memory")
    if goal in SPEED_GOALS and not quick and ratio is not None and not out and \
            not (ratio < 1 - NOISE if direction == "lower" else ratio > 1 + NOISE):
        # likewise a plan for speed whose gain verify's interleaved rounds do not establish: the quick checks after
        # each step are a few samples; what ships is what verify measured faster (and its quality costs nothing more)
        out.append(f"no {metric} gain verify could establish for the {goal} goal")
    ceiling, floor = (QUICK_TPOT_CEILING, QUICK_BATCHED_FLOOR) if quick else (TPOT_CEILING, BATCHED_FLOOR)
    if ratios.get("tpot_ms", 1.0) > ceiling and metric != "tpot_ms":
        out.append(f"time per token {ratios['tpot_ms']:.2f}x")
    if ratios.get("batched_tokens_per_s", 1.0) < floor and metric != "batched_tokens_per_s":
        out.append(f"batched tokens/s {ratios['batched_tokens_per_s']:.2f}x")
    return out


def gain_shown(step: StepSpec, before: dict[str, float], after: dict[str, float],
               ratios: dict[str, float] | None = None) -> tuple[bool, dict[str, float]]:
    """Whether the figure the step's declaration aims at improved beyond noise, and every measured ratio (`ratios`
    where they were measured interleaved, else after / before)."""
    ratios = ratios if ratios is not None else {k: after[k] / before[k] for k in after if before.get(k)}
    metric, direction = registry()[step.technique].aim
    ratio = ratios.get(metric, 1.0)
    return (ratio < 1 - NOISE) if direction == "lower" else (ratio > 1 + NOISE), ratios


def apply(source: str | Path, out: str | Path, *, goal: str | None = None, plan: str | Path | None = None,
          techniques: list[str] | None = None, hardware: str = "local", workload: str | None = None,
          draft: str | Path | None = None, device: str | None = None, dtype: str | None = None, force: bool = False,
          drop_unprofitable: bool = False, keep_all: bool = False, verify: bool = True,
          verify_options: dict[str, Any] | None = None, allow_pickle: bool = False,
          context: int | None = None, concurrency: int | None = None, max_quality_loss_pct: float | None = None,
          log: Callable[[str], None] = lambda line: None) -> ArtifactManifest:
    """Apply a plan to the model at `source` and write the optimized folder `out` (then verify it).

    A planner-chosen step (`goal`, `plan`) is measured right after it is applied and rolled back when its gain
    did not show, when it made the goal's figure worse, or when it cost too much speed where speed is not the
    goal (`losses`); `keep_all` keeps them. Steps named with `techniques` are kept and flagged,
    unless `drop_unprofitable`. If nothing is left, the unchanged model is written with its manifest. `dtype` None
    loads the source as it is stored (an fp32 checkpoint in bf16 on a GPU), and verify compares against the same."""
    quiet_libraries()
    from .artifact import ArtifactError, check_folder
    from .runtime import check_device, default_device

    source, out = Path(source), Path(out)
    check_folder(source, allow_pickle)
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise ArtifactError(f"{out} is the source model's folder or inside it: write the optimized model elsewhere")
    if out.exists() and not force:
        raise ArtifactError(f"{out} exists; pass --force to replace it")
    given = [name for name, x in (("--goal", goal), ("--plan", plan), ("--technique", techniques))
             if x is not None and x != []]
    if len(given) != 1:
        raise PlanError("say what to apply: one of --goal, --plan or --technique"
                        + (f" (got {' and '.join(given)})" if given else ""))
    plan_json, goal_of_plan = None, None
    if techniques:
        steps = [parse_technique(t) for t in techniques]
        check_together(steps, draft)
        predict_named(ordered(steps), source, hardware, workload, log)
    elif plan is not None:
        steps, plan_json = steps_from_plan(Path(plan), source)
        goal_of_plan = plan_json["workload"]["goal"]
        made = (plan_json["workload"].get("engine"), plan_json["hardware"]["id"])
        if made != ("transformers", hardware):
            log(f"the plan was made for {made[0]} on {plan_json['hardware'].get('count', 1)} x {made[1]}: its steps "
                f"are applied here with transformers on {hardware}, and its predictions are of that deployment, not "
                "of this machine (`optiplan apply --goal` plans for this one)")
    else:
        steps, plan_json = steps_from_goal(source, goal, hardware, workload, context, concurrency,
                                           max_quality_loss_pct)
    device = check_device(device or default_device())
    if verify:  # an unreadable or short evaluation text fails before any step runs, not after them
        read_eval_text((verify_options or {}).get("eval_text"))
        speed_goal = goal or goal_of_plan
        repeats = (verify_options or {}).get("repeats", AGREEING_ROUNDS)
        if not techniques and not keep_all and speed_goal in SPEED_GOALS and repeats < AGREEING_ROUNDS:
            # it ships only the gain verify establishes, which no timing of fewer rounds does (`losses`)
            raise RequestError(f"a plan for the {speed_goal} goal ships only a gain verify's interleaved rounds "
                               f"establish, which needs --repeats {AGREEING_ROUNDS} or more (got {repeats}); "
                               "--keep-all keeps the plan unjudged")
    runnable, records = [], []
    for step in ordered(steps):
        if step.technique == "spec-draft" and draft:
            step.params["draft"] = str(draft)
        try:
            declared = check_supported(step.technique, device).declared
            if techniques:  # the user's parameters: an unknown name or a bad value is an error
                declared.check_options(step.technique, step.params)
            else:  # a plan's parameters also describe engine options; the optimizer takes its own
                step.params = declared.from_plan(step.params)
            runnable.append(step)
        except NotSupportedHere as exc:
            # asked for by name, or planned but impossible on this device: an error. A planned technique with no
            # optimizer at all (tensor parallel on one device, a serving-engine feature) is skipped with its reason.
            if techniques or (plan is not None and step.technique in registry()):
                raise
            records.append(StepRecord(technique=step.technique, status="skipped", detail=str(exc),
                                      params=step.params, predicted=step.predicted))
    if not runnable:
        log("nothing in the plan can be applied to a transformers model here ("
            + "; ".join(r.detail for r in records) + "): the model is written unchanged, with its manifest")
    planned = not techniques
    judged_by = goal or (goal_of_plan if plan is not None else None)
    # written, verified (and rolled back where verify says so) in a staging folder beside `out`, renamed into place
    # only then: an interrupt or a kill at any point leaves no folder at `out` whose manifest lacks its verification
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(out.name), dir=str(out.parent)))
    staging.rmdir()
    try:
        # the models live in `_written`'s frame only: none is held while verify loads its two (`del` had left them)
        manifest = _written(source, staging, runnable, records, device=device, dtype=dtype, allow_pickle=allow_pickle,
                            goal=goal, plan_json=plan_json, planned=planned, judged_by=judged_by, keep_all=keep_all,
                            drop_unprofitable=drop_unprofitable, log=log)
        if verify:
            guarded = planned and not keep_all
            manifest = _verified(manifest, source, staging, out, records, plan_json, judged_by, guarded, device, dtype,
                                 allow_pickle, verify_options, log)
            write_text_atomic(staging / "optiplan.json", manifest.model_dump_json(indent=2))
        with previous_kept(out):  # a folder --force replaces stays until the new one is in place
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _skipped(records: list[StepRecord], step, detail: str, log: Callable[[str], None], said: str = "skipped: ") -> None:
    """A step left out of the model, with its reason, in the manifest and the log."""
    records.append(StepRecord(technique=step.technique, status="skipped", detail=detail, params=_plain(step.params),
                              predicted=step.predicted))
    log(f"  {said}{detail}")


def _written(source: Path, staging: Path, runnable: list[StepSpec], records: list[StepRecord], *, device: str,
             dtype: str | None, allow_pickle: bool, goal: str | None, plan_json: dict[str, Any] | None, planned: bool,
             judged_by: str | None, keep_all: bool, drop_unprofitable: bool,
             log: Callable[[str], None]) -> ArtifactManifest:
    """Load the model, apply `runnable` (each step measured, kept or rolled back, in `records`), write it."""
    from .artifact import load, write_artifact
    from .runtime import dtype_hint

    base = load(source, device, dtype=dtype, allow_pickle=allow_pickle)  # dtype None: as the source stores it
    ws = Workspace(model=base.model, tokenizer=base.tokenizer, device=device, source=source)
    ws.runtime.dtype = base.runtime.dtype
    log(f"working in {ws.runtime.dtype}" + ("" if dtype else " (as stored)") + dtype_hint(ws.runtime.dtype, device))
    if runnable:
        log("timing the model before the plan (a warm-up run, then a measured one)")
        quick_figures(ws)  # warm-up: a first run pays one-time costs (allocations, lazy initialisation)
    figures = quick_figures(ws) if runnable else {}
    guard = (planned and not keep_all) or drop_unprofitable
    for step in runnable:
        opt = registry()[step.technique]
        # a copy of the model before a step that changes its weights: to roll the step back (`guard`), and, where it
        # is small enough to hold twice, to time the step against it interleaved
        copied = opt.changes_model and (guard or model_bytes(ws) <= CHECK_COPY_BYTES)
        saved = (copy.deepcopy(ws.model) if copied else None,
                 ws.runtime.model_copy(deep=True), ws.draft, ws.quantization_config)
        log(f"applying {step.technique}" + SLOW_STEPS.get(step.technique, ""))
        applied = False  # (a failure of the step itself, before its first run, is never skipped as one of it)
        try:
            detail = opt.apply(ws, dict(step.params))
            applied = True
            # its first run is where a setting the library takes but cannot run fails (torch.compile's whole-graph
            # capture of a decode step that breaks the graph, or that meets torch's recompile limit): a failed step,
            # not an internal error
            if ws.runtime.compile and not (saved[1].compile or {}):
                # a compiled step compiles each shape on its first run, and again where a later prompt grew its
                # static cache: time it warm after two runs, as `effects.interleaved_ratios` and verify do
                for _ in range(2):
                    quick_figures(ws)
            after = quick_figures(ws)
        except AlreadyInPlace as exc:
            ws.runtime = saved[1]
            _skipped(records, step, str(exc), log, "")
            continue
        except NotSupportedHere as exc:
            # named by the user or in their plan file: an error, as before any step runs. A step the planner chose
            # (--goal) that finds it cannot run on this model (a format that cannot reach its fused experts) is
            # rolled back and skipped with its reason, as the planned steps impossible on the device are
            if not goal or (opt.changes_model and saved[0] is None):
                raise
            model, ws.runtime, ws.draft, ws.quantization_config = saved
            ws.model = model if model is not None else ws.model
            _skipped(records, step, str(exc), log)
            continue
        except Exception as exc:
            first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            if not goal or opt.changes_model or not applied:
                raise OptiplanError(f"{step.technique} failed on {source}: {first}") from exc
            # a runtime setting the planner chose (--goal) that the library cannot run on this model, as its first
            # run shows (torch.compile's whole-graph capture of a model whose decode step breaks the graph): rolled
            # back and skipped with the library's reason, as a step found impossible before it runs is
            ws.runtime, ws.draft, ws.quantization_config = saved[1], saved[2], saved[3]
            _skipped(records, step, f"failed on its first run here: {first}", log)
            continue
        # with the model before the step at hand (its copy, kept to roll it back, or the same model under the
        # runtime settings before the step), the two are timed interleaved; only a step that changes the model too
        # large to copy is judged by two samples apart in time
        timed = saved[0] is not None or not opt.changes_model
        if timed:
            log(f"  timing {step.technique} against the model before it ({STEP_ROUNDS} interleaved rounds)")
        interleaved = interleaved_step_ratios(ws, saved, opt.aim[0] == "cache_bytes") if timed else None
        shown, ratios = gain_shown(step, figures, after, interleaved)
        costs = losses(judged_by, ratios, quick=True)
        status = "applied"
        if (planned and not keep_all and (not shown or costs)) or (drop_unprofitable and not shown):
            model, ws.runtime, ws.draft, ws.quantization_config = saved
            ws.model = model if model is not None else ws.model
            status, after = "rolled-back", figures
            detail += "; rolled back: " + ("; ".join(costs) if costs else "its gain did not show here")
        elif costs:
            detail += "; kept " + ("as asked" if not planned else "(--keep-all)") + " although it cost " + \
                "; ".join(costs)
        records.append(StepRecord(technique=step.technique, status=status, detail=detail, params=_plain(step.params),
                                  predicted=step.predicted, measured={k: round(v, 4) for k, v in ratios.items()},
                                  gain_shown=shown))
        log(f"  {detail}; {'gain shown' if shown else 'no measured gain'}")
        figures = after
    if runnable and not any(r.status == "applied" for r in records):
        log("nothing in the plan helps here: the model is written unchanged, with the measurements in its manifest")
    manifest = ArtifactManifest(source=str(source), created="", device=device, goal=goal, steps=records,
                                runtime=ws.runtime, libraries={}, sha256={}, plan=plan_json)
    return write_artifact(ws, staging, manifest, staged=True)


def _verified(manifest: ArtifactManifest, source: Path, staging: Path, out: Path, records: list[StepRecord],
              plan_json: dict[str, Any] | None, judged_by: str | None, guarded: bool, device: str, dtype: str | None,
              allow_pickle: bool, verify_options: dict[str, Any] | None,
              log: Callable[[str], None]) -> ArtifactManifest:
    """The staged artifact's manifest with its verification; where verify measured a loss of a guarded plan (the
    goal's figure, as far as its interleaved rounds establish it, or quality over the plan's budget), the original
    model written in its place with the figures of the plan kept on record."""
    from .artifact import load, write_artifact
    from .verify import verify as run_verify

    report = run_verify(source, staging, device=device, dtype=dtype, allow_pickle=allow_pickle,
                        **(verify_options or {})).model_copy(update={"optimized": str(out)})
    manifest = manifest.model_copy(update={"verify": report})
    # what its interleaved rounds establish, not a median that noise alone can move
    loss = losses(judged_by, established_ratios(report))
    # and the quality the plan was made within: its measured perplexity against the workload's budget
    budget = ((plan_json or {}).get("workload") or {}).get("max_quality_loss_pct")
    if budget is not None and report.quality.perplexity_change_pct > budget:
        loss.append(f"perplexity +{report.quality.perplexity_change_pct:.2f}%, over the plan's "
                    f"{budget:g}% quality budget")
    if not (guarded and loss and any(r.status == "applied" for r in records)):
        return manifest
    # the interleaved measurement outranks the quick one after each step: ship the original instead
    log("verify measured a loss (" + "; ".join(loss) + "): the plan is rolled back, the model written unchanged")
    unchanged = load(source, device, dtype=dtype, allow_pickle=allow_pickle)
    ws = Workspace(model=unchanged.model, tokenizer=unchanged.tokenizer, device=device, source=source)
    ws.runtime.dtype = unchanged.runtime.dtype
    rolled = [r.model_copy(update={"status": "rolled-back", "detail": f"{r.detail}; {WHOLE_PLAN_ROLLED_BACK}: "
                                   "verify measured " + "; ".join(loss)})
              if r.status == "applied" else r for r in records]
    rolled_back = manifest.model_copy(update={"steps": rolled, "runtime": ws.runtime})
    return write_artifact(ws, staging, rolled_back, staged=True).model_copy(update={
        "verify": report.model_copy(update={
            "steps": rolled, "predicted": None, "predicted_ratios": {},
            "notes": [*report.notes, ("the figures above are of the plan, which measured as a loss and was rolled "
                                      "back: the folder holds the original model")]})})


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in params.items()}
