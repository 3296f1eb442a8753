"""The technique registry. Each technique declares itself once (DESIGN.md, principle 3): what it
needs (hardware features, model features, packages, data), which serving engines run it, what it
conflicts with, what must run before it, its quality risk with a source, a pure transform of the plan
state, and how `optiplan apply` applies it to a transformers model (its optimizer, by import path).
The compatibility graph, the plan search and the optimizer registry are built from these
declarations only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ...analytic.accuracy import architecture_kind
from ...catalog.engine_refusals import draft_attention_refusal, engine_step_refusal
from ...catalog.engine_state_models import state_technique_refusal
from ...catalog.engines import deployed_engine, engine_defaults, engine_profile
from ...errors import RequestError
from ...schema import HardwareSpec, ModelSpec
from ...schema.workload import Workload
from ..state import PlanState

Risk = Literal["none", "low", "medium", "high"]


@dataclass(frozen=True)
class Context:
    """What a technique is checked against: the model, the device and count, the workload."""

    spec: ModelSpec
    hw: HardwareSpec
    devices: int
    workload: Workload
    draft: ModelSpec | None = None  # a catalog model of the same tokenizer family, much smaller
    smaller: ModelSpec | None = None  # a catalog model of the same family to distill into
    mtp_layers: int = 0  # multi-token-prediction heads the checkpoint ships
    eagle_heads: tuple[Mapping[str, Any], ...] = ()  # published EAGLE-3 draft heads of the model (catalog `eagle`)
    effects: Mapping[str, Any] = field(default_factory=dict)  # technique -> effect measured here (`plan.effects`)
    # the data-parallel step's devices per replica where the search weighs a size (None: the fewest that hold the
    # model; `parallel.replica_size_choices`)
    replica_size: int | None = None

    @property
    def release_engine(self) -> str:
        """The workload's engine pinned to the release its configs' image runs on this device
        (`engines.deployed_engine`): the release the plan is priced at, whose facts its refusals read."""
        return deployed_engine(self.workload.engine, self.hw)

    @property
    def kind(self) -> str:
        """The model's kind (dense, moe, hybrid), which some engines' refusals go by (vLLM's runner choice)."""
        return architecture_kind(self.spec)

    def sized(self, replica_size: int | None) -> Context:
        """The context whose data-parallel step makes replicas of `replica_size` devices (a candidate's)."""
        return self if replica_size == self.replica_size else replace(self, replica_size=replica_size)

    def on_model(self, spec: ModelSpec) -> Context:
        """The context a step is applied, priced and parametrised in where the plan has replaced the model before it
        (a distilled plan's student, a pruned model): that model's published figures and checkpoints, not the
        original's; a new model ships none of the original's heads (MTP, EAGLE-3) nor has a smaller one to distil."""
        if spec.name == self.spec.name:
            return self
        return replace(self, spec=spec, smaller=None, mtp_layers=0, eagle_heads=())


# pip distribution -> import name, for the packages a declaration names (the optimizer registry checks them).
PACKAGE_IMPORTS = {"optimum-quanto": "optimum.quanto", "flash-attn": "flash_attn", "autoawq": "awq",
                   "modelopt": "modelopt", "torchao": "torchao", "hqq": "hqq", "gptqmodel": "gptqmodel",
                   "optimum": "optimum", "bitsandbytes": "bitsandbytes", "peft": "peft", "torch": "torch",
                   "triton": "triton"}


@dataclass(frozen=True)
class Option:
    """One parameter a user may give a technique (`-t 'kv-int4:residual_length=32'`)."""

    kind: type  # int, float, str or bool
    help: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None

    def check(self, technique: str, name: str, value: Any) -> str | None:
        """Why `value` is not valid for this option, or None."""
        if self.kind is bool and not isinstance(value, bool):
            return f"{technique}: {name} must be true or false, got {value!r}"
        if self.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{technique}: {name} must be an integer, got {value!r}"
        if self.kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"{technique}: {name} must be a number, got {value!r}"
        if self.kind is str and not isinstance(value, str):
            return f"{technique}: {name} must be text, got {value!r}"
        if self.choices and value not in self.choices:
            return f"{technique}: {name} must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            return f"{technique}: {name} must be from {self.low:g} to {self.high:g}, got {value!r}"
        return None


@dataclass(frozen=True)
class Applied:
    """How `optiplan apply` applies a technique to a real transformers model."""

    optimizer: str  # "module:function" under optiplan.optimizers, resolved only when it runs
    devices: tuple[str, ...] = ("cpu", "cuda")  # where the optimizer runs
    # it changes the model object itself (its weights, or the attention kernel set on it), not only runtime settings:
    # rolled back by restoring a copy of the model, and timed against that copy
    changes_model: bool = False
    aim: tuple[str, str] = ("tpot_ms", "lower")  # the measured figure the step exists to improve, and which way
    options: tuple[tuple[str, Option], ...] = ()  # the parameters its optimizer reads, checked before it runs
    # a plan's parameter (named as the engines name it) that the optimizer reads under its own name: (plan, option)
    plan_names: tuple[tuple[str, str], ...] = ()

    def from_plan(self, params: dict[str, Any]) -> dict[str, Any]:
        """The optimizer's parameters of a plan step: its options, by their own names or a plan's (`plan_names`);
        the parameters that only describe engine options are left out."""
        names, known = dict(self.plan_names), dict(self.options)
        return {names.get(k, k): v for k, v in params.items() if names.get(k, k) in known}

    def check_options(self, technique: str, params: dict[str, Any]) -> None:
        """Raise RequestError naming the valid parameters when `params` has an unknown name or a bad value."""
        known = dict(self.options)
        for name, value in params.items():
            if name not in known:
                valid = "; ".join(f"{n} ({o.help})" for n, o in self.options) or "none"
                raise RequestError(f"{technique} has no parameter '{name}'; its parameters: {valid}")
            problem = known[name].check(technique, name, value)
            if problem:
                raise RequestError(problem)


@dataclass(frozen=True)
class Combines:
    """How a technique combines with others inside one engine's runtime (e.g. transformers' `generate`)."""

    cache: str | None = None  # the KV-cache implementation it installs: a generation has one
    cache_needs: tuple[str, ...] = ()  # caches it works with ("dynamic": the engine's default, croppable one)
    batch_one: bool = False  # it serves one sequence at a time

    def uses(self) -> str:
        return self.cache or "dynamic"


def requirements(t: Technique, engine: str | None) -> tuple[str, ...]:
    """What `t` needs in the plan beside it: its declared requirements, or none where the engine runs it by default
    its own way (llama.cpp's per-slot prompt cache needs no paged cache)."""
    return () if engine is not None and t.id in engine_defaults(engine) else t.requires


def runtime_conflict(a: Technique, b: Technique, engine: str, ctx: Context | None = None) -> str | None:
    """Why `a` and `b` cannot run together in `engine`'s runtime (declared in `combines`; with `ctx`, on its device:
    an fp8 cache's attention backend, which vLLM 0.10-0.11 drafts no EAGLE-3 chain over), or None."""
    if ctx is not None and {a.id, b.id} == {"kv-fp8", "spec-eagle3"} and (
            why := draft_attention_refusal(ctx.release_engine, ctx.hw, ctx.spec.attention_sinks, fp8_cache=True)):
        return why
    ca, cb = a.combines.get(engine), b.combines.get(engine)
    if ca is None or cb is None:
        return None
    if ca.cache and cb.cache:
        return (f"{engine} runs one KV cache per generation: {a.id} installs a {ca.cache} cache, {b.id} a "
                f"{cb.cache} cache")
    for x, cx, y, cy in ((a, ca, b, cb), (b, cb, a, ca)):
        if cx.cache_needs and cy.uses() not in cx.cache_needs:
            return f"{x.id} needs a {' or '.join(cx.cache_needs)} cache in {engine}, and {y.id} installs a {cy.uses()} one"
    return None


@dataclass(frozen=True)
class Technique:
    id: str
    name: str
    family: str
    summary: str
    transform: Callable[[PlanState, Context], PlanState]
    group: str | None = None  # at most one technique of a group in a plan
    phase: Literal["inference", "training"] = "inference"
    hardware: tuple[str, ...] = ()  # features: see HARDWARE_CHECKS
    model: tuple[str, ...] = ()  # features: see MODEL_CHECKS
    # it replaces the model (distillation's student, a pruned model): the steps after it are the new model's
    # (`Context.on_model`), their quality losses too
    replaces_model: bool = False
    engines: tuple[str, ...] = ()  # serving engines that run it (profiles/engines.yaml names them)
    packages: tuple[str, ...] = ()  # pip packages that apply it (its optimizer's, where it has one)
    data: str | None = None  # calibration or training data it needs
    requires: tuple[str, ...] = ()  # techniques that must be in the plan too
    conflicts: tuple[str, ...] = ()  # beyond its group
    after: tuple[str, ...] = ()  # techniques that must come before it when both are present
    quality_risk: Risk = "none"
    quality_loss_pct: float | Callable[[Context], float] = 0.0
    quality_source: str | Callable[[Context], str] = "lossless: the computation is exact"
    effect_source: str = ""  # where its speed rule comes from, beyond the analytic model (e.g. an acceptance rate)
    # lossless: added whenever it is valid (and tried without, where the engine does not run it by default)
    always_on: bool = False
    # servers, processes or models it adds to run and watch beyond one engine (a router, instances of another role, a
    # draft model): among plans within QUALITY_TIE of the best, the one with fewer goes first
    moving_parts: int = 0
    check: Callable[[Context], str | None] | None = None  # a reason it cannot apply here, or None
    unchanged: str | None = None  # why its transform may change nothing (shown when it did), beyond the usual cases
    params: Callable[[Context], dict[str, Any]] | None = None
    # parameters read from the step's prediction, where the layout it chooses is the search's (data-parallel's sizes,
    # a server's step budget over the devices it runs on)
    predicted_params: Callable[[Context, Any], dict[str, Any]] | None = None
    apply: Applied | None = None  # None: a serving engine applies it (`optiplan configs`), not `optiplan apply`
    combines: dict[str, Combines] = field(default_factory=dict)  # engine -> how it shares that engine's runtime

    def loss(self, ctx: Context) -> float:
        return self.quality_loss_pct(ctx) if callable(self.quality_loss_pct) else self.quality_loss_pct

    def source(self, ctx: Context) -> str:
        """Where its quality loss for this model comes from."""
        return self.quality_source(ctx) if callable(self.quality_source) else self.quality_source

    def parameters(self, ctx: Context, predicted: Any = None) -> dict[str, Any]:
        """Its parameters in the plan: the context's, and those of the step's prediction (`predicted_params`)."""
        own = self.params(ctx) if self.params else {}
        return own | (self.predicted_params(ctx, predicted) if self.predicted_params and predicted is not None else {})


REGISTRY: dict[str, Technique] = {}
# the family modules, in the order the plan search meets their techniques
FAMILIES = ("parallel", "quantization", "serving", "speculative", "structural", "training")
_ORIGIN: dict[str, str] = {}  # technique id -> its family module


def register(*techniques: Technique, family: str) -> None:
    """Declare the techniques of the family module `family` (one of FAMILIES)."""
    if family not in FAMILIES:
        raise ValueError(f"{family} is not a family module ({', '.join(FAMILIES)})")
    for t in techniques:
        if t.id in REGISTRY:
            raise ValueError(f"technique {t.id} declared twice")
        REGISTRY[t.id] = t
        _ORIGIN[t.id] = family


# Hardware features a technique may need: feature -> (test, reason when missing).
HARDWARE_CHECKS: dict[str, tuple[Callable[[HardwareSpec, int], bool], str]] = {
    "gpu": (lambda hw, n: hw.kind == "gpu", "{hw} is not a GPU"),
    "cuda": (lambda hw, n: hw.features.backend == "cuda", "needs CUDA; {hw} runs {backend}"),
    "cuda-or-rocm": (lambda hw, n: hw.features.backend in ("cuda", "rocm"), "needs a CUDA or ROCm GPU; {hw} runs {backend}"),
    "fp8": (lambda hw, n: hw.features.fp8, "{hw} has no fp8 (fp8 tensor cores need compute capability 8.9 or newer)"),
    "fp4": (lambda hw, n: hw.features.fp4, "{hw} has no fp4 tensor-core rate (in the catalog: NVIDIA's Blackwell GPUs)"),
    "bf16": (lambda hw, n: hw.features.bf16, "{hw} has no bf16 (needs compute capability 8.0 or newer)"),
    "int8-tensor-cores": (lambda hw, n: hw.features.int8_tensor_cores, "{hw} has no int8 tensor cores"),
    "flash-attention-2": (lambda hw, n: hw.features.flash_attention >= 2,
                          "FlashAttention-2 needs compute capability 8.0 or newer; {hw} has {cc}"),
    "multi-device": (lambda hw, n: n > 1, "needs more than one device (plan has {n})"),
    "interconnect": (lambda hw, n: hw.interconnect is not None, "{hw} has no device interconnect"),
    "host-memory": (lambda hw, n: hw.host_link_gbps is not None, "{hw} has no separate host memory to offload to"),
}


def _model_checks() -> dict[str, tuple[Callable[[Context], bool], str]]:
    return {
        "moe": (lambda c: c.spec.moe is not None, "{model} is not a mixture of experts"),
        "mtp": (lambda c: c.mtp_layers > 0, "{model} ships no multi-token-prediction heads"),
        "eagle": (lambda c: bool(c.eagle_heads), "the catalog knows no published EAGLE-3 head of {model}"),
        "draft": (lambda c: c.draft is not None, "the catalog has no much smaller model of {model}'s tokenizer family"),
        "smaller": (lambda c: c.smaller is not None, "the catalog has no model of {model}'s family at a half to a "
                                                     "quarter of its size (the compressions distillation's quality "
                                                     "figure comes from)"),
        "full-attention": (lambda c: any(w is None for w in c.spec.layer_windows),
                           "{model} already uses sliding windows on every layer"),
    }


MODEL_CHECKS = _model_checks()


# What a training step does instead of an inference technique, by the technique's family.
TRAINING_INSTEAD = {
    "attention": "a training step already runs fused attention (transformers trains with PyTorch SDPA, its flash "
                 "kernel on CUDA), and the step model counts no score matrix",
    "parallelism": "the transformers Trainer spreads training over devices as data parallelism, sharded with "
                   "FSDP / ZeRO-3 (`fsdp`); tensor and pipeline parallel training need Megatron-LM or torchtitan",
    "weight quantization": "inference weight formats; a training step keeps trainable weights in 16 bits, and "
                           "`qlora` stores the frozen base in NF4",
    "compilation": "`compiled-training` compiles the training step with torch.compile",
    "memory": "offloading optimizer states to the host (ZeRO-Offload) is not modelled; for memory use `qlora`, "
              "`optimizer-8bit`, `activation-checkpointing` or `fsdp`",
    "compression": "pruning and distillation make a smaller model to serve: each is a training job of its own",
    "sliding-window-sinks": "it bounds the KV cache of a long generation, which a training step does not keep",
    None: "it acts on serving (KV cache, decoding, batching of requests), which a training step does not do",
}


def hardware_reason(t: Technique, ctx: Context) -> str | None:
    """Why the device (or the device count) cannot run technique `t`, or None."""
    for feature in t.hardware:
        test, reason = HARDWARE_CHECKS[feature]
        if not test(ctx.hw, ctx.devices):
            return reason.format(hw=ctx.hw.id, backend=ctx.hw.features.backend, n=ctx.devices,
                                 cc=f"compute capability {ctx.hw.features.compute_capability or '?'}")
    return None


def denied_default_refusal(ctx: Context) -> str | None:
    """Why the techniques the workload leaves out cannot be planned without: one the engine runs by default here (its
    baseline's, so leaving it out would price a server its configs do not run), or None."""
    w = ctx.workload
    if w.goal == "training":
        return None
    techniques = all_techniques()
    defaults = engine_defaults(ctx.release_engine)
    for t_id in w.denied_techniques:
        t = techniques.get(t_id)
        if t is None or t_id not in defaults:
            continue
        asked = tuple(d for d in w.denied_techniques if d != t_id)
        if static_reason(t, replace(ctx, workload=w.model_copy(update={"denied_techniques": asked}))) is not None:
            continue  # the baseline would not run it here either (llama.cpp's CUDA graphs on a Mac)
        version = engine_profile(ctx.release_engine)["version"]
        return (f"{t_id} is on by default in {w.engine} {version} and is part of the baseline every plan is priced "
                f"against; optiplan does not plan {w.engine} without it (its configs would still run it): drop "
                f"`--without {t_id}` (or remove it from the workload's denied_techniques), or pick another engine "
                "with --engine")
    return None


def static_reason(t: Technique, ctx: Context) -> str | None:
    """Why technique `t` cannot apply in this context at all, or None when it can."""
    w = ctx.workload
    if t.id in w.denied_techniques:
        return "left out as asked (--without, or the workload's denied_techniques)"
    if w.allowed_techniques is not None and t.id not in w.allowed_techniques and \
            (w.goal == "training" or t.id not in engine_defaults(ctx.release_engine)):
        # (what the engine runs by default stays: its baseline and configs run it whatever the list names)
        return "not in the workload's allowed techniques"
    training = w.goal == "training"
    if (t.phase == "training") != training:
        if t.phase == "training":
            return "a training technique"
        instead = TRAINING_INSTEAD.get(t.id) or TRAINING_INSTEAD.get(t.family) or TRAINING_INSTEAD[None]
        return f"an inference technique; the goal is training: {instead}"
    if not training:
        if w.engine not in t.engines:
            engine = engine_profile(ctx.release_engine)
            if t.id in engine_defaults(ctx.release_engine):
                # a default of the engine's build for other devices (llama.cpp's CUDA graphs on a Mac) is no default here
                if why := hardware_reason(t, ctx):
                    return why
                return (f"on by default in {w.engine} {engine['version']}: the baseline runs it already, so it is not a "
                        "step of the plan")
            if unplanned := (engine.get("unplanned") or {}).get(t.id):
                return (f"{w.engine} {engine['version']} has {unplanned['option']}, which plans do not use: "
                        f"{unplanned['why']}")
            return no_option(w.engine, ctx.release_engine, t.id)
        if why := engine_step_refusal(ctx.release_engine, ctx.hw, ctx.spec.model_type, t.id, ctx.kind):
            return why
        runtime = t.combines.get(w.engine)
        if runtime is not None and runtime.batch_one and w.concurrency > 1:
            return f"{w.engine} serves it one sequence at a time; the workload has {w.concurrency} at once"
    if why := hardware_reason(t, ctx):
        return why
    for feature in t.model:
        test, reason = MODEL_CHECKS[feature]
        if not test(ctx):
            return reason.format(model=ctx.spec.name)
    if t.check is not None and (why := t.check(ctx)):
        return why
    # what the engine does not run on a model with state layers (its profile's data, with the source)
    return None if training else state_technique_refusal(ctx.release_engine, t.id, ctx.spec.model_type)


def no_option(name: str, release: str, technique: str, what: str = "it") -> str:
    """'NAME VERSION has no option for WHAT', with the reason and source its profile's `missing` gives where it does:
    the sentence advise rejects a step with, and profile warns of a setup with (`plan.engine_support`)."""
    engine = engine_profile(release)
    why = (engine.get("missing") or {}).get(technique)
    return f"{name} {engine['version']} has no option for {what}" + (
        f": {why['why']} (source: {why['source'].split(' — ')[0]})" if why else "")


def all_techniques() -> dict[str, Technique]:
    """Every declared technique, in the family modules' order (`FAMILIES`: the search meets them in it, whichever of
    the modules was imported first)."""
    from . import parallel, quantization, serving, speculative, structural, training  # noqa: F401

    if list(REGISTRY) != (ordered := sorted(REGISTRY, key=lambda t: FAMILIES.index(_ORIGIN[t]))):
        # a family module imported on its own before the others (a script importing its constants) registered first
        items = {t: REGISTRY[t] for t in ordered}
        REGISTRY.clear()
        REGISTRY.update(items)
    return REGISTRY
