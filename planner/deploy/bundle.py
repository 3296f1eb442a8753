"""The files of `optiplan configs` (and of POST /v1/configs, and `advise --emit-configs`) for one target or for `all`:
each engine rendered from the plan made for it, on the device of the serving engine's plan, with what could not be
planned or will not hold the workload said in words. The CLI prints the notes and warnings, the HTTP service returns
them beside the files; both get them from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..catalog.engine_devices import engine_runs_on
from ..catalog.engine_state_models import serving_refusal
from ..catalog.engines import deployed_engine
from ..catalog.hardware import resolve_hardware
from ..errors import DeployError, ImpossibleError, OptiplanError, UnknownNameError
from ..schema.advice import Advice
from ..schema.releases import plan_engine
from .config import ENGINES, TARGETS
from .render import render_all
from .training import training_files

# advise for one engine on a given device and count: (engine, hardware id, devices) -> the plan; engine None: the one
# `advise` picks when none is named (the workload's where it runs on the device, else one that does)
AdviseFor = Callable[[str | None, str, int | None], Advice]


@dataclass
class Bundle:
    files: dict[str, str]
    skipped: list[str] = field(default_factory=list)  # "engine: why", an engine that cannot run here
    notes: list[str] = field(default_factory=list)  # an engine rendered from a plan other than its own best
    warnings: list[str] = field(default_factory=list)  # a configuration predicted not to hold the workload
    target: str = ""  # what was rendered: an engine, compose, kubernetes or all

    def messages(self) -> list[str]:
        """The notes, skipped targets and warnings as the CLI prints them, one line each."""
        return ([f"note: {line}" for line in self.notes] + [f"skipped {line}" for line in self.skipped]
                + [f"warning: {line}" for line in self.warnings])


def targets_of(target: str) -> list[str]:
    """The targets `target` names: itself, or every one for `all`."""
    return [t for t in TARGETS if t != "all"] if target == "all" else [target]


def own_plans(advice: Advice, engines: list[str], advise_for: AdviseFor
              ) -> tuple[dict[str, Advice], list[str], list[str]]:
    """Each engine's own plan on `advice`'s device and count, as `advise --engine NAME` makes it, notes for those
    rendered otherwise, and the engines none of whose plans fits in memory ("engine: why"), which get no files: an
    engine whose best plan misses the workload renders that plan; one that cannot plan here renders `advice`'s. An
    engine that does not run on the device, or cannot run the model, is left out (`render_all` skips it with its
    reason).
    """
    own_engine = advice.workload.engine
    hw = resolve_hardware(advice.hardware.id)
    plans: dict[str, Advice] = {}
    notes, unfit = [], []
    for engine in engines:
        if engine == own_engine or not engine_runs_on(engine, hw) \
                or serving_refusal(deployed_engine(engine, hw), advice.model.model_type):
            continue
        try:
            plans[engine] = advise_for(engine, advice.hardware.id, advice.hardware.count)
        except ImpossibleError as exc:
            if exc.document is not None and not exc.document.plan.predicted.fits:
                # its configs would not start: the model and the smallest cache do not fit the devices
                unfit.append(f"{engine}: {exc}")
                continue
            if exc.document is not None:
                plans[engine] = exc.document
            notes.append(f"{engine}'s own plan misses the workload ({exc}); its files render "
                         + ("it" if exc.document is not None else f"the {own_engine} plan"))
        except OptiplanError as exc:
            notes.append(f"no plan of {engine}'s own ({exc}); its files render the {own_engine} plan")
    return plans, notes, unfit


def training_refusal(advice: Advice) -> str | None:
    """Why a plan has no config: its workload is a training job whose goal `--goal` overrode to a serving one (a
    serving plan of a job that serves nothing), or None. A training plan renders its training files
    (`deploy.training`)."""
    w = advice.workload
    if w.training is None or w.goal == "training":
        return None
    return (f"the {w.name} workload is a training job (its goal overridden to {w.goal}), and deployment configs "
            "render serving engines for a serving workload (e.g. --workload chat) and training files for a training "
            "goal")


def is_training(advice: Advice) -> bool:
    """Whether the plan is a training job's, whose files are a training script and its launch config."""
    return advice.workload.goal == "training" and advice.workload.training is not None


def bundle(advice: Advice, targets: list[str], advise_for: AdviseFor) -> Bundle:
    """The files for `targets` (see `targets_of`): a single target renders `advice`, which must be its own engine's
    plan; several render each engine from its own plan (`own_plans`) and the wrappers and index from `advice`. A
    training plan renders its training files instead (`deploy.training`)."""
    if is_training(advice):
        return Bundle(training_files(advice), target="train")
    if why := training_refusal(advice):
        raise DeployError(why)
    plans, notes, unfit = own_plans(advice, [t for t in targets if t in ENGINES], advise_for) if len(targets) > 1 \
        else ({}, [], [])
    left_out = {line.split(":", 1)[0] for line in unfit}
    files, skipped, warnings = render_all(advice, [t for t in targets if t not in left_out], plans, notes, unfit)
    return Bundle(files, skipped, notes, warnings)


def configs(target: str | None, serving_engine: str | None, hardware: str, devices: int | None,
            advise_for: AdviseFor) -> Bundle:
    """`optiplan configs --engine TARGET` (and POST /v1/configs): a single engine renders the plan made for it; the
    wrappers (compose, kubernetes) and `all` render the serving engine's, and each engine of `all` its own on the same
    device. Without a target, or a wrapper without a serving engine, the engine is the one `advise` plans for when
    none is named: the workload's (vLLM) where it runs on the device, else one that does (llama.cpp on a Mac); a
    serving workload whose engine has no configs (transformers) is served by vLLM; a training one renders its
    training files (`bundle`)."""
    for engine in (target, serving_engine):
        try:
            plan_engine(engine)
        except ValueError as exc:
            raise OptiplanError(str(exc)) from None
    if target is not None and target not in TARGETS:
        raise UnknownNameError("engine", target, TARGETS)
    engine = target if target in ENGINES else serving_engine
    advice = advise_for(engine, hardware, devices)
    if is_training(advice):  # a training job's files, planned for the engine that trains (transformers)
        result = bundle(advise_for(None, hardware, devices) if engine else advice, [], advise_for)
        if target or serving_engine:
            result.notes.append(f"{target or serving_engine} is a serving target: a training workload renders its "
                                "training files (train/), whatever the engine named")
        return result
    if engine is None and advice.workload.engine not in ENGINES:
        advice = advise_for("vllm", hardware, devices)
    target = target or advice.workload.engine
    result = bundle(advice, targets_of(target), advise_for)
    result.target = target
    return result
