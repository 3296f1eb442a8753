"""What the service is asked: the CLI's own request models (ProfileRequest, AdviseRequest, BenchRequest) and, for
the commands whose library functions take options instead of a model (configs, apply, verify, calibrate), one
model each holding exactly the command's options. Every job request turns into the keyword arguments of the same
library function the CLI calls (`job_arguments`), with its names confined to the server's folders."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import ServiceRefused
from ..schema.advice import AdviseRequest
from ..schema.bench import BenchRequest
from ..schema.core import ProfileRequest
from . import TEST_JOBS_ENV
from .paths import CALIBRATION_WRITER, Roots

Name = Field(min_length=1, max_length=300)


class ConfigsRequest(AdviseRequest):
    """`optiplan configs`: the advise request it plans with, plus the target (an engine, compose, kubernetes or
    all) and the engine that compose and kubernetes run."""

    workload: str | None = "chat"
    target: str | None = Field(None, description="vllm, sglang, tgi, trtllm, llama.cpp, compose, kubernetes, or all; "
                                                 "none: the engine advise plans for (vllm, or where it does not run, "
                                                 "one that does)")
    serving_engine: Literal["vllm", "sglang", "tgi", "trtllm", "llama.cpp"] | None = None

    @field_validator("engine")
    @classmethod
    def _target_not_engine(cls, value: str | None) -> str | None:
        """Each engine's configs are planned for that engine: an `engine` would be ignored, so it is refused."""
        if value is not None:
            raise ValueError('configs name the engine they write for as "target" (the CLI\'s configs --engine), '
                             'and the engine compose and kubernetes run as "serving_engine"')
        return value


class _Job(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApplyJob(_Job):
    """`optiplan apply`: `model` a folder under a models dir, `output` a name under the workdir."""

    kind: Literal["apply"] = "apply"
    model: str = Name
    output: str = Name
    goal: Literal["memory", "latency", "throughput", "context", "cost"] | None = None
    plan: str | None = Field(None, max_length=300, description="a plan file (advise --format json) in the workdir")
    techniques: list[str] = Field([], max_length=16)
    hardware: str = Field("local", max_length=100)
    workload: str | None = Field(None, max_length=100, description="a preset name")
    context: int | None = Field(None, ge=1, le=10_000_000)
    concurrency: int | None = Field(None, ge=1, le=100_000)
    max_quality_loss_pct: float | None = Field(None, ge=0, le=100)
    draft: str | None = Field(None, max_length=300, description="draft model folder under a models dir")
    device: Literal["cpu", "cuda"] | None = None
    dtype: Literal["fp32", "bf16", "fp16"] | None = Field(None, description="None: as the model is stored")
    force: bool = False
    drop_unprofitable: bool = False
    keep_all: bool = False
    verify: bool = True
    repeats: int = Field(5, ge=1, le=100)
    eval_text: str | None = Field(None, max_length=300, description="held-out text file for perplexity")
    allow_pickle: bool = False


class VerifyJob(_Job):
    """`optiplan verify`: both models are names under a models dir or the workdir."""

    kind: Literal["verify"] = "verify"
    baseline: str = Name
    optimized: str = Name
    repeats: int = Field(5, ge=1, le=100)
    max_new_tokens: int = Field(32, ge=1, le=4096)
    device: Literal["cpu", "cuda"] | None = None
    dtype: Literal["fp32", "bf16", "fp16"] | None = Field(None, description="the baseline's; None: as it is stored")
    memory: bool = True
    eval_text: str | None = Field(None, max_length=300, description="held-out text file for perplexity")
    allow_pickle: bool = False


class CalibrateJob(_Job):
    """`optiplan calibrate` on the machine that runs the job (its calibration file is that machine's)."""

    kind: Literal["calibrate"] = "calibrate"
    models: list[str] = Field([], max_length=8)
    repeats: int = Field(5, ge=1, le=100)
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="the CPU's factors or the CUDA GPU's launch "
                                                   "cost (calibrate --device); auto: the GPU where torch sees one")
    effects: bool = Field(True, description="then measure each technique's effect here (calibrate --effects)")
    only_effects: bool = Field(False, description="measure the effects again and keep the machine's fit")
    techniques: list[str] = Field([], max_length=64, description="measure only these techniques' effects (the "
                                  "others keep their earlier measurement)")


class BenchJob(BenchRequest):
    """`optiplan bench`: the CLI's BenchRequest; models (and any file) are names in the server's folders."""

    kind: Literal["bench"] = "bench"
    # bounded as ApplyJob and VerifyJob are: one request must not hold a GPU machine for days
    models: list[str] = Field([], max_length=8, description="model folders or optiplan artifacts")
    prompt_tokens: int | None = Field(None, ge=1, le=1_000_000, description="override the workload's prompt length")
    max_new_tokens: int | None = Field(None, ge=2, le=4096, description="override the workload's output length")
    repeats: int = Field(BenchRequest.model_fields["repeats"].default, ge=1, le=100, description="measured rounds")
    warmup: int = Field(1, ge=0, le=20)
    threads: int | None = Field(None, ge=1, le=256, description="torch intra-op threads [default: torch's]")
    eval_tokens: int = Field(4096, ge=16, le=1_000_000)
    memory_repeats: int = Field(1, ge=1, le=20)
    max_requests: int = Field(1000, ge=1, le=100_000, description="refuse a run that would send more requests")
    force: bool = Field(False, description="replace an existing save_reference file")


JOB_MODELS: dict[str, type[BaseModel]] = {"apply": ApplyJob, "verify": VerifyJob, "calibrate": CalibrateJob,
                                          "bench": BenchJob}


def parse_job(body: Any) -> BaseModel:
    """The job model for a request body, chosen by its `kind`."""
    if not isinstance(body, dict):
        raise ServiceRefused("a job is a JSON object with a 'kind': apply, verify, calibrate or bench", 400)
    kind = body.get("kind")
    if kind not in JOB_MODELS:
        raise ServiceRefused(f"kind '{kind}' is not a job; known: {', '.join(JOB_MODELS)}", 400)
    return JOB_MODELS[kind].model_validate(body)


# technique options whose value is a path on the server (spec-draft's draft model folder)
PATH_OPTIONS = ("draft",)


def _techniques(field: str, names: list[str]) -> list[str] | None:
    """Technique names as a job gives them (`weight-int8`, `sliding-window-sinks:window=256`), each checked against
    the catalog at submission: an unknown one is refused at once, not when the job runs."""
    from ..errors import UnknownNameError
    from ..plan.techniques import all_techniques

    known = all_techniques()
    scripted = os.environ.get(TEST_JOBS_ENV) == "1"  # the service's own tests script an apply with test-* steps
    for text in names:
        name, _, options = text.partition(":")
        name = name.strip()
        if name not in known and not (scripted and name.startswith("test-")):
            unknown = UnknownNameError("technique", name[:100], known, "GET /v1/catalog/techniques lists them")
            raise ServiceRefused(f"{field}: {unknown}", 400)
        # an option that names a folder would be a read of any path: the job's own fields name them, confined
        if any(item.partition("=")[0].strip() in PATH_OPTIONS for item in options.split(",")):
            raise ServiceRefused(f"{field}: {name}'s {'/'.join(PATH_OPTIONS)} option names a folder; give it as the "
                                 "job's 'draft' field, a folder under a models dir", 400)
    return list(names) or None


def _preset(workload: str | None) -> str | None:
    if workload is None:
        return None
    from ..catalog.workloads import preset_names

    if workload not in preset_names():
        raise ServiceRefused(f"workload '{workload}': the service takes a preset ({', '.join(preset_names())})", 400)
    return workload


def _hardware(name: str, allowed: tuple[str, ...] = ("local", "auto")) -> str:
    from ... import profiles

    if name.strip().lower() in allowed or profiles.resolve_hardware_id(name) is not None:
        return name
    known = ", ".join([*allowed, *profiles.hardware_ids()][:14])
    raise ServiceRefused(f"hardware '{name}': the service takes a catalog device or {' / '.join(allowed)} "
                      f"(known: {known}, ...)", 400)


def confine_profile(request: ProfileRequest, roots: Roots) -> ProfileRequest:
    """The request with its model (and a draft model) resolved inside the server's folders, and hardware from the
    catalog (a hardware file would be a read of any path)."""
    draft = roots.model_ref(request.draft_model) if request.draft_model is not None else None
    return request.model_copy(update={"model": roots.model_ref(request.model), "draft_model": draft,
                                      "hardware": _hardware(request.hardware, ("local",))})


def confine_advise(request: AdviseRequest, roots: Roots) -> AdviseRequest:
    return request.model_copy(update={"model": roots.model_ref(request.model),
                                      "hardware": _hardware(request.hardware),
                                      "workload": _preset(request.workload)})


def _text(roots: Roots, name: str | None):
    return roots.input_path(name, "eval_text") if name else None


def job_output(job: BaseModel, roots: Roots) -> str | None:
    """The output name a job writes under the workdir (what a crash may leave half-written), normalised as its reads
    are (`a/./b/` is `a/b`, a symlink the folder it leads to), so that two spellings of one folder are one writer."""
    if isinstance(job, CalibrateJob):  # it rewrites the machine's calibration file: one such job at a time
        return CALIBRATION_WRITER
    field_name = "output" if isinstance(job, ApplyJob) else "save_reference" if isinstance(job, BenchJob) else None
    name = getattr(job, field_name) if field_name else None
    if name is None:
        return None
    return roots.output_path(name, field_name).relative_to(roots.workdir).as_posix()


# the fields of each job that name an input (a file or folder it reads)
INPUT_FIELDS = {"apply": ("model", "plan", "draft", "eval_text"), "verify": ("baseline", "optimized", "eval_text"),
                "calibrate": ("models",),
                "bench": ("models", "prompts_file", "tokenizer", "eval_text", "reference")}


def job_reads(job: BaseModel, roots: Roots) -> list[str]:
    """The names under the workdir that a job reads (an earlier job's output, say), normalised as outputs are:
    what a writer of those names must wait for, and what must not be replaced under it. Inputs in the models dirs
    are read-only to jobs and not listed."""
    names = []
    for field_name in INPUT_FIELDS[job.kind]:
        value = getattr(job, field_name)
        for name in ([value] if isinstance(value, str) else value or []):
            path = roots.input_path(name, field_name)
            if roots.workdir in path.parents:
                names.append(path.relative_to(roots.workdir).as_posix())
    return sorted(set(names))


def job_arguments(job: BaseModel, roots: Roots, allow_pickle: bool) -> dict[str, Any]:
    """The keyword arguments of the library function the CLI calls for this job, every name resolved inside the
    server's folders. Run at submission (so a bad job is refused at once) and again where the job runs."""
    if getattr(job, "allow_pickle", False) and not allow_pickle:
        raise ServiceRefused("allow_pickle: this server loads pickle weights only when started with --allow-pickle")
    if isinstance(job, ApplyJob):
        out = roots.output_path(job.output)
        if out.exists() and not job.force:
            raise ServiceRefused(f"output '{job.output}' exists in the workdir; pass force: true to replace it", 409)
        return {"source": roots.input_path(job.model), "out": out, "goal": job.goal,
                "plan": roots.input_path(job.plan, "plan") if job.plan else None,
                "techniques": _techniques("techniques", job.techniques),
                "hardware": _hardware(job.hardware, ("local",)),
                "workload": _preset(job.workload), "context": job.context, "concurrency": job.concurrency,
                "max_quality_loss_pct": job.max_quality_loss_pct,
                "draft": roots.input_path(job.draft, "draft") if job.draft else None, "device": job.device,
                "dtype": job.dtype, "force": job.force, "drop_unprofitable": job.drop_unprofitable,
                "keep_all": job.keep_all, "verify": job.verify, "allow_pickle": job.allow_pickle,
                "verify_options": {"repeats": job.repeats, "eval_text": _text(roots, job.eval_text)}}
    if isinstance(job, VerifyJob):
        return {"baseline": roots.input_path(job.baseline, "baseline"),
                "optimized": roots.input_path(job.optimized, "optimized"), "device": job.device, "dtype": job.dtype,
                "repeats": job.repeats, "max_new_tokens": job.max_new_tokens, "memory": job.memory,
                "eval_text": _text(roots, job.eval_text), "allow_pickle": job.allow_pickle}
    if isinstance(job, CalibrateJob):
        return {"models": [roots.input_path(m) for m in job.models] or None, "repeats": job.repeats,
                "device": job.device, "effects": job.effects, "only_effects": job.only_effects,
                "techniques": _techniques("techniques", job.techniques)}
    if isinstance(job, BenchJob):
        if job.endpoints:
            raise ServiceRefused("bench endpoints: the service does not call other servers; run `optiplan bench "
                              "--endpoint` from a shell instead", 400)
        if not job.models:
            raise ServiceRefused("bench: give models, folders in the models dirs or the workdir", 400)
        files = {k: str(roots.input_path(v, k)) for k in ("prompts_file", "eval_text", "tokenizer", "reference")
                 if (v := getattr(job, k)) is not None}
        if job.save_reference is not None:
            reference = roots.output_path(job.save_reference, "save_reference")
            if reference.exists() and not job.force:
                raise ServiceRefused(f"save_reference '{job.save_reference}' exists in the workdir; pass force: true "
                                     "to replace it", 409)
            files["save_reference"] = str(reference)
        fields = job.model_dump(exclude={"kind", "force"}) | files
        fields["models"] = [str(roots.input_path(m)) for m in job.models]
        request = BenchRequest.model_validate(fields)
        # what the runner would refuse, refused now (a 400, not a job that fails in the worker)
        from ..ci.bench import BenchError, resolve_workload, run_checks
        from ..errors import UnknownNameError

        try:
            resolve_workload(request)
            run_checks(request)
        except (UnknownNameError, BenchError) as exc:
            raise ServiceRefused(f"bench: {exc}", 400) from exc
        return {"request": request}
    raise ServiceRefused(f"not a job: {type(job).__name__}", 400)

