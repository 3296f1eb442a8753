"""What `apply` writes (the artifact manifest, `optiplan.json`) and what `verify` reports, in the same
schema the CLI, the Python API and (later) the HTTP service exchange."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .advice import Prediction

ARTIFACT_VERSION = "1.0"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True, allow_inf_nan=False)


class Runtime(_Model):
    """Settings `optiplan.load` re-applies to the saved weights: what a checkpoint alone cannot carry."""

    attn_implementation: str | None = None
    weights: dict[str, Any] | None = Field(None, description="quantization re-applied on load (quanto)")
    cache: dict[str, Any] | None = Field(None, description="kind: quantized | static | sinks, with its settings")
    compile: dict[str, Any] | None = None
    speculative: dict[str, Any] | None = Field(None, description="kind: draft | ngram, with its settings")
    continuous_batching: dict[str, Any] | None = None
    dtype: str = "fp32"


class StepRecord(_Model):
    """One plan step as applied: what was done, and the figures before and after it."""

    technique: str
    status: Literal["applied", "skipped", "rolled-back", "failed"]
    detail: str = ""
    params: dict[str, Any] = {}
    predicted: dict[str, float] = Field({}, description="predicted ratios after/before for this step")
    measured: dict[str, float] = Field({}, description="measured ratios after/before for this step")
    gain_shown: bool | None = Field(None, description="did the gain the step exists for show up?")


class Measured(_Model):
    """One model's figures on the verify workload (medians; samples alongside)."""

    ttft_ms: float
    tpot_ms: float
    tokens_per_s: float
    batched_tokens_per_s: float | None = None
    peak_memory_bytes: int | None = None
    weights_bytes: int
    cache_bytes: int | None = Field(None, description="the KV cache one sequence holds after a prompt of 384 tokens")
    perplexity: float
    samples: dict[str, list[float]] = {}
    spread: dict[str, float] = Field({}, description="max - min of the samples, per metric")


class Quality(_Model):
    kl_divergence: float
    next_token_agreement: float = Field(description="teacher-forced next-token argmax agreement with the baseline")
    generation_agreement: float = Field(description="fraction of greedily generated tokens identical to the baseline's")
    perplexity_change_pct: float


class VerifyReport(_Model):
    schema_version: str = ARTIFACT_VERSION
    baseline: str
    optimized: str
    device: str
    workload: dict[str, Any]
    measured: dict[str, Measured] = Field(description="before and after")
    quality: Quality
    steps: list[StepRecord] = []
    predicted: Prediction | None = None
    predicted_ratios: dict[str, float] = {}
    measured_ratios: dict[str, float] = {}
    speculative: dict[str, float] | None = Field(None, description="acceptance rate, tokens per target pass, "
                                                 "predicted and measured speedup")
    notes: list[str] = []


class ArtifactManifest(_Model):
    """`optiplan.json` in an optimized model folder."""

    schema_version: str = ARTIFACT_VERSION
    source: str
    created: str
    device: str
    goal: str | None = None
    steps: list[StepRecord]
    runtime: Runtime
    libraries: dict[str, str]
    sha256: dict[str, str]
    plan: dict[str, Any] | None = Field(None, description="the plan as `advise --format json` gave it")
    verify: VerifyReport | None = None
