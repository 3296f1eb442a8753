"""An advise request resolved before any plan is searched: the model, the workload with the request's overrides (a
preset clipped to the model's context, the user's own lengths refused past it, techniques asked left out) and the
engine that runs on the device. Pure Python: never imports torch."""

from __future__ import annotations

from ..catalog.engine_devices import backend_refusal, engine_for_backend
from ..catalog.engine_refusals import engine_planning_refusal
from ..catalog.engines import planned_engines
from ..catalog.models import context_extension_hint, resolve_model
from ..catalog.workloads import is_workload_file, load_workload, with_overrides
from ..errors import ImpossibleError, RequestError, UnknownNameError
from ..schema import HardwareSpec, ModelSpec
from ..schema.advice import AdviseRequest
from ..schema.workload import Workload
from .techniques import all_techniques


def resolve_request(request: AdviseRequest) -> tuple[ModelSpec, Workload, list[str]]:
    """The model and the workload with the request's overrides, and notes for the report (a clipped preset)."""
    spec = resolve_model(request.model)
    if why := engine_planning_refusal(request.engine, spec.model_type):
        raise RequestError(why)
    preset = request.workload or ("fine-tune" if request.goal == "training" else "chat")
    workload = with_overrides(load_workload(preset), goal=request.goal,
                              max_quality_loss_pct=request.max_quality_loss_pct, engine=request.engine,
                              concurrency=request.concurrency, max_context=request.max_context)
    if request.without:
        workload = workload.model_copy(update={"denied_techniques": tuple(dict.fromkeys(
            (*workload.denied_techniques, *request.without)))})
    known = set(all_techniques())
    unknown = [t for t in (*(workload.allowed_techniques or ()), *workload.denied_techniques) if t not in known]
    if unknown:
        raise UnknownNameError("technique", unknown[0], known, "`optiplan techniques` lists them")
    if spec.max_position_embeddings < workload.context_needed:
        if request.max_context is not None:  # the user asked for this context: say it cannot be had
            raise ImpossibleError(f"the workload needs {workload.context_needed:,} tokens of context and {spec.name} "
                                  f"supports {spec.max_position_embeddings:,}; nearest feasible: a model with a longer "
                                  f"context, or --context {spec.max_position_embeddings}"
                                  + context_extension_hint(spec.name))
        if is_workload_file(preset):  # the user's own lengths: not cut short behind their back, as a preset is
            raise ImpossibleError(f"the workload file {preset} needs {workload.context_needed:,} tokens of context "
                                  f"(prompts p95 {workload.prompt_tokens_p95:,}, outputs p95 "
                                  f"{workload.output_tokens_p95:,}) and {spec.name} supports "
                                  f"{spec.max_position_embeddings:,}; nearest feasible: a model with a longer "
                                  f"context, or lengths within {spec.max_position_embeddings:,} tokens in the file"
                                  + context_extension_hint(spec.name))
        clipped = clip_to_context(workload, spec.max_position_embeddings)
        return spec, clipped, [f"workload {workload.name} clipped to {spec.name}'s {spec.max_position_embeddings:,}-"
                               f"token context: it asked for {workload.context_needed:,} (prompts p95 "
                               f"{workload.prompt_tokens_p95:,}, outputs p95 {workload.output_tokens_p95:,}); now "
                               f"prompts p95 {clipped.prompt_tokens_p95:,}, outputs p95 {clipped.output_tokens_p95:,}"
                               + context_extension_hint(spec.name)]
    return spec, workload, []


def engine_here(workload: Workload, hw: HardwareSpec, asked: str | None, notes: list[str]) -> Workload:
    """The workload served by an engine that runs on the device: the one asked for (an error where it cannot run), or
    the preset's, replaced by the first fallback that runs there (a note says so): a Mac gets llama.cpp, not vLLM."""
    refusal = backend_refusal(workload.engine, hw, planned_engines())
    if workload.goal == "training" or refusal is None:
        return workload
    if asked is not None:
        raise RequestError(refusal)
    engine = engine_for_backend(workload.engine, hw)
    # the refusal's own reason (its backend, or its compute capability), without the list of engines that do run
    notes.append(f"the {workload.name} preset's engine {refusal.split('; engines that do')[0]}: planned for {engine}")
    return with_overrides(workload, engine=engine)


def clip_to_context(workload: Workload, limit: int) -> Workload:
    """A preset's sequences cut to the model's context: outputs kept up to half of it, prompts take the rest."""
    output_p95 = min(workload.output_tokens_p95, limit // 2)
    prompt_p95 = min(workload.prompt_tokens_p95, limit - output_p95)
    changes = {"max_context": limit, "prompt_tokens_p95": prompt_p95,
               "prompt_tokens_mean": min(workload.prompt_tokens_mean, prompt_p95),
               "output_tokens_p95": output_p95, "output_tokens_mean": min(workload.output_tokens_mean, output_p95)}
    return with_overrides(workload, **changes)
