"""The result of `optiplan advise`: the bottleneck, the plan (ordered steps), its predicted effect
step by step, alternatives on the Pareto front and every rejected technique with its reason."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from ...profiles import DEFAULT_HARDWARE
from .core import SCHEMA_VERSION, Frozen
from .profile import AccuracyBand, ModelSummary
from .releases import plan_engine
from .workload import Goal, Workload


class Prediction(Frozen):
    """The analytic model's figures for one configuration under the workload."""

    memory_per_device_bytes: int
    weights_per_device_bytes: int
    kv_cache_per_device_bytes: int
    activation_bytes: int
    device_memory_bytes: int
    fits: bool
    max_concurrency: int = Field(description="sequences whose caches fit at the workload's mean context")
    max_context: int = Field(description="longest single sequence that fits")
    batch: int = Field(description="sequences decoded together: the workload's concurrency, capped by memory")
    ttft_ms: float = Field(description="prefill of a p95 prompt")
    front_end_wait_ms: float = Field(0.0, exclude_if=lambda v: v == 0,
                                     description="of ttft_ms: the time a request waits for the engine's front end (its "
                                                 "API server) before its prefill, where the front end bounds the "
                                                 "requests a server completes")
    tpot_ms: float = Field(description="time per output token at the batch and mean context")
    throughput_tokens_per_s: float = Field(description="output tokens per second, all sequences")
    prefill_intensity: float
    decode_intensity: float
    ridge_flops_per_byte: float
    quality_loss_pct: float = 0.0
    weight_dtype: str = ""
    compute_dtype: str = ""
    kv_dtype: str = ""
    offload_bytes_per_device: int = Field(0, description="weights kept in host memory (CPU offload)")
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    expert_parallel: int = Field(1, description="devices the routed experts are split over, whole experts each")
    attention_data_parallel: int = Field(1, exclude_if=lambda v: v == 1,
                                         description="expert parallel: groups of tensor_parallel devices that attention "
                                                     "runs data parallel over (sequences spread over them)")
    data_parallel: int = Field(1, description="replicas of the model, each on devices / data_parallel devices; batch "
                                              "and max_concurrency count all replicas")
    prefill_instances: int = Field(0, exclude_if=lambda v: v == 0,
                                   description="disaggregated serving: of the data_parallel instances, those that only "
                                               "prefill (the others decode)")
    api_servers_per_rank: int = Field(1, exclude_if=lambda v: v == 1,
                                      description="front-end processes the configs start for each data-parallel rank "
                                                  "(vLLM's --api-server-count over the ranks of a server)")
    cost_per_million_tokens_usd: float | None = None
    slo_violations: list[str] = []
    gradient_bytes: int = Field(0, exclude_if=lambda v: v == 0, description="training: the gradients per device")
    optimizer_state_bytes: int = Field(0, exclude_if=lambda v: v == 0,
                                       description="training: the optimizer's states per device")
    gathered_bytes: int = Field(0, exclude_if=lambda v: v == 0,
                                description="training under FSDP: the unsharded parameters and gradients a device "
                                            "holds at the step's peak (the final norm and head, two layers' "
                                            "all-gathered parameters, gradients before their reduce-scatter)")
    load_peak_bytes: int = Field(0, exclude_if=lambda v: v == 0,
                                 description="training: a device's memory while the model loads, where it exceeds "
                                             "the step's (QLoRA under FSDP: the whole 4-bit model on every GPU before "
                                             "FSDP shards it)")
    training_step_s: float | None = None
    training_mfu: float | None = Field(None, exclude_if=lambda v: v is None, description="training: the step's model FLOPs (recomputation excluded) over the devices' dense 16-bit peak")

    @property
    def training_memory_parts(self) -> tuple[tuple[str, int], ...]:
        """A training step's memory per device by what holds it, FSDP's unsharded copies where it shards."""
        return (("weights", self.weights_per_device_bytes), ("gradients", self.gradient_bytes),
                ("optimizer states", self.optimizer_state_bytes), ("activations", self.activation_bytes),
                *((("FSDP's unsharded copies", self.gathered_bytes),) if self.gathered_bytes else ()))

    @property
    def meets_slo(self) -> bool:
        return self.fits and not self.slo_violations


class Bottleneck(Frozen):
    primary: str = Field(description="weights-memory, kv-cache-memory, activation-memory, context-length, "
                                     "memory-bandwidth, prefill-interference, host-launch, front-end, compute, "
                                     "interconnect, training-memory")
    category: Literal["memory", "latency", "throughput", "context", "training"]
    secondary: str | None = None
    evidence: list[str]


class PlanStep(Frozen):
    technique: str = Field(description="stable technique id, e.g. weight-int4-awq")
    name: str
    params: dict[str, Any] = {}
    why: str
    quality_risk: Literal["none", "low", "medium", "high"]
    quality_loss_pct: float
    quality_source: str
    effect_source: str = Field("", description="where the predicted speed effect comes from: measured on this "
                                               "machine by `optiplan calibrate`, or the rule and its source")
    engine_default: bool = Field(False, description="on by default in the plan's engine: the baseline runs it "
                                                    "already and it gains nothing; its params are what the configs "
                                                    "set for the plan's load")
    predicted: Prediction = Field(description="after this step and all before it")
    pays_off_with: list[str] = Field(default_factory=list, exclude_if=lambda v: not v, description=(
        "the later steps this one is kept for: alone it leaves the goal's objective worse than the row before"))


class Plan(Frozen):
    steps: list[PlanStep]
    predicted: Prediction
    quality_loss_pct: float
    score: float = Field(description="the goal's objective (lower is better)")


class Alternative(Frozen):
    techniques: list[str]
    predicted: Prediction
    note: str


class Rejection(Frozen):
    technique: str
    reason: str


class HardwareChoice(Frozen):
    """The devices the plan runs on and how it lays the model over them: count = tensor x pipeline x data-parallel
    replicas (x attention data-parallel groups, whose MoE experts shard over the group's devices)."""
    id: str
    name: str
    count: int
    tensor_parallel: int
    pipeline_parallel: int
    data_parallel: int = 1
    attention_data_parallel: int = 1
    usd_per_hour: float | None = Field(None, description="a device's hourly price the cost uses: the middle of the "
                                                          "catalog's range")
    usd_per_hour_range: tuple[float, float] | None = Field(None, exclude_if=lambda v: v is None,
                                                           description="the catalog's low and high hourly price")


class HardwareOption(Frozen):
    id: str
    count: int
    meets_workload: bool
    cost_per_million_tokens_usd: float | None
    cost_range_usd: tuple[float, float] | None = Field(
        None, exclude_if=lambda v: v is None,
        description="the cost per million output tokens at the low and the high end of the catalog's price range "
                    "(the ranking uses the middle)")
    throughput_tokens_per_s: float
    note: str


class Advice(Frozen):
    schema_version: str = SCHEMA_VERSION
    model: ModelSummary
    workload: Workload
    hardware: HardwareChoice
    bottleneck: Bottleneck
    baseline: Prediction
    plan: Plan
    alternatives: list[Alternative] = []
    rejected: list[Rejection] = []
    hardware_ranking: list[HardwareOption] = []
    hardware_reason: str | None = Field(None, description="why --hardware auto chose this device and count")
    warnings: list[str] = []
    feasible: bool = Field(True, description="false: no plan fits or meets the workload; `plan` is the best that "
                                             "fits in memory (else the smallest), its misses in predicted.slo_violations")
    infeasible_reason: str | None = None
    nearest_feasible: str | None = Field(None, description="the nearest change that makes the workload feasible")
    accuracy: dict[str, AccuracyBand] = Field({}, description=(
        "figure -> its error band (analytic.accuracy): tpot_ms is one sequence's time per token; a time per token "
        "above one sequence (the plan's at its batch) carries request_latency_ms's band where there is one, as the "
        "reports show it (analytic.accuracy.decode_band), and throughput_tokens_per_s the same runs' rates"))


class AdviseRequest(Frozen):
    """What `optiplan advise` is asked: a model, hardware (or `auto`), and a workload with overrides."""

    schema_version: str = SCHEMA_VERSION
    model: str
    hardware: str = DEFAULT_HARDWARE
    num_devices: int | None = Field(None, ge=1, description="devices; with hardware `auto`, the search picks the count")
    workload: str | None = Field(None, description="preset name or YAML/JSON file [default: fine-tune for the "
                                                  "training goal, else chat]")
    goal: Goal | None = None
    max_quality_loss_pct: float | None = Field(None, ge=0)
    # a name, not a pin: a plan is priced at the release its configs' image runs (`schema.releases.plan_engine`)
    engine: Annotated[str | None, AfterValidator(plan_engine)] = None
    concurrency: int | None = Field(None, ge=1)
    max_context: int | None = Field(None, ge=1)
    without: tuple[str, ...] = Field((), max_length=64, description=(
        "techniques the plan leaves out, beside the workload's denied_techniques (lora and qlora: a full fine-tune); "
        "one the engine runs by default here is refused"))
