"""What a deployment must serve (or train): token lengths, load, SLOs, goal and budgets."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .core import SCHEMA_VERSION, Frozen

Goal = Literal["memory", "latency", "throughput", "context", "training", "cost"]
Engine = Literal["vllm", "sglang", "tgi", "trtllm", "transformers", "llama.cpp"]


class SLO(Frozen):
    ttft_p95_ms: float | None = Field(None, gt=0)
    tpot_p95_ms: float | None = Field(None, gt=0)
    min_throughput_tokens_per_s: float | None = Field(None, gt=0)


class Training(Frozen):
    """A fine-tuning or pre-training job: the memory model counts weights, gradients, optimizer
    states and activations."""

    sequence_length: int = Field(4096, ge=1)
    global_batch: int = Field(64, ge=1, description="sequences per optimizer step")
    micro_batch: int = Field(1, ge=1, description="sequences per device per forward pass")
    optimizer: Literal["adamw", "adamw-8bit", "sgd"] = "adamw"
    lora_rank: int = Field(16, ge=1)

    @model_validator(mode="after")
    def _check(self) -> "Training":
        if self.micro_batch > self.global_batch:
            raise ValueError(f"micro_batch {self.micro_batch} is larger than global_batch {self.global_batch}: a "
                             "device's forward pass holds at most the sequences of one optimizer step")
        return self


class Workload(Frozen):
    schema_version: str = SCHEMA_VERSION
    name: str = "custom"
    description: str = ""
    prompt_tokens_mean: int = Field(1024, ge=1)
    prompt_tokens_p95: int = Field(2048, ge=1)
    output_tokens_mean: int = Field(256, ge=1)
    output_tokens_p95: int = Field(512, ge=1)
    concurrency: int = Field(16, ge=1, description="sequences in flight at once")
    request_rate_per_s: float | None = Field(None, gt=0, description=(
        "requests arriving a second: a plan that completes fewer at the workload's concurrency misses it (its queue "
        "would grow without bound); concurrency sizes the batch"))
    shared_prefix_fraction: float = Field(0.0, ge=0, lt=1, description="share of prompt tokens a prefix cache reuses")
    max_context: int | None = Field(None, ge=1, description="longest sequence to serve [default: p95 prompt + output]")
    slo: SLO = SLO()
    goal: Goal = "throughput"
    max_quality_loss_pct: float = Field(1.0, ge=0, description="perplexity increase allowed, percent; 0 = lossless")
    engine: Engine = "vllm"
    chat: bool | None = Field(None, exclude_if=lambda v: v is None,
                              description="requests come through a chat template, so configs serve the instruct "
                                          "checkpoint; no: the base model's raw completions [default: yes; the "
                                          "code-completion and batch-offline presets say no]")
    quotes_prompt: bool | None = Field(None, exclude_if=lambda v: v is None,
                                       description="the outputs copy spans of the prompt (retrieved passages, the "
                                                   "code around an edit, tool results), where prompt-lookup "
                                                   "speculation finds its drafts [default: no; the rag-long-context, "
                                                   "code-completion and agent presets say yes]")
    allowed_techniques: tuple[str, ...] | None = None
    denied_techniques: tuple[str, ...] = ()
    training: Training | None = None

    @model_validator(mode="after")
    def _check(self) -> "Workload":
        for what in ("prompt", "output"):
            mean, p95 = getattr(self, f"{what}_tokens_mean"), getattr(self, f"{what}_tokens_p95")
            if p95 < mean:
                given = "" if f"{what}_tokens_p95" in self.model_fields_set else ", the default"
                raise ValueError(f"{what}_tokens_p95 ({p95:,}{given}) is below {what}_tokens_mean ({mean:,}): set "
                                 f"{what}_tokens_p95 to at least the mean")
        if self.max_context is not None and self.max_context < self.prompt_tokens_p95:
            raise ValueError(f"max_context {self.max_context} is shorter than the p95 prompt "
                             f"({self.prompt_tokens_p95} tokens)")
        if self.goal == "training" and self.training is None:
            raise ValueError("a training goal needs a `training` section (sequence length, batch, optimizer)")
        return self

    @property
    def context_needed(self) -> int:
        """The longest sequence the deployment must hold (a training job's: its sequence length, no output)."""
        if self.goal == "training" and self.training is not None:
            return self.training.sequence_length
        return self.max_context or self.prompt_tokens_p95 + self.output_tokens_p95

    @property
    def mean_context(self) -> int:
        """Average tokens in a sequence's cache during decoding: the prompt plus half the output."""
        return self.prompt_tokens_mean + self.output_tokens_mean // 2
