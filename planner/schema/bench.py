"""Benchmark results and gate reports: what `optiplan bench` writes and `optiplan gate` reads and says.

A result keeps every sample (not only summaries) so the gate can do its own statistics, the round
each sample was measured in (so interleaved runs can be paired), the workload that produced them
and the environment, so results from different machines or library versions are not compared by
accident. The bench schema has its own version: the gate refuses files of another version.
"""

from __future__ import annotations

import math
import statistics
from typing import Annotated, Literal

from pydantic import Field

from .core import Frozen

BENCH_SCHEMA_VERSION = "1.0"
# Rounds per bench run: on a noisy 2-vCPU machine this detects a 10% slowdown in an interleaved run at least
# 95% of the time with at most 1% false alarms (benchmarks/bench_gate_statistics.py).
DEFAULT_REPEATS = 15

Direction = Literal["lower", "higher"]
Verdict = Literal["pass", "regression", "improvement", "inconclusive"]

# The metrics bench writes: unit, which way is better, whether it varies from run to run, and the family
# whose budget applies (`--max-slowdown`, `--max-memory-growth`, `--max-quality-loss`).
KNOWN_METRICS: dict[str, tuple[str, Direction, bool, str]] = {
    "ttft_ms": ("ms", "lower", True, "speed"),
    "tpot_ms": ("ms", "lower", True, "speed"),
    "tokens_per_s": ("tokens/s", "higher", True, "speed"),
    "peak_memory_bytes": ("bytes", "lower", False, "memory"),
    "perplexity": ("", "lower", False, "quality"),
    "prefix_agreement": ("fraction", "higher", False, "quality"),
}


class Summary(Frozen):
    n: int
    median: float
    mean: float
    stdev: float
    min: float
    max: float


def summarize(samples: list[float]) -> Summary | None:
    """Median, mean, spread of the samples, or None when there are none (or any is not finite)."""
    if not samples or not all(math.isfinite(x) for x in samples):
        return None
    return Summary(n=len(samples), median=statistics.median(samples), mean=statistics.fmean(samples),
                   stdev=statistics.stdev(samples) if len(samples) > 1 else 0.0, min=min(samples), max=max(samples))


class MetricSamples(Frozen):
    """Every sample of one metric, in the order measured."""

    unit: str
    direction: Direction = Field(description="which way is better")
    noisy: bool = Field(description="varies from run to run (timings); False: repeatable (memory, quality)")
    family: Literal["speed", "memory", "quality"]
    samples: list[float]
    rounds: list[int] = Field([], description="the interleaving round of each sample, for pairing with "
                                                "another target of the same session")
    summary: Summary | None = None


def metric_samples(name: str, samples: list[float], rounds: list[int] | None = None) -> MetricSamples:
    """The samples of one of the KNOWN_METRICS, described and summarized."""
    unit, direction, noisy, family = KNOWN_METRICS[name]
    return MetricSamples(unit=unit, direction=direction, noisy=noisy, family=family, samples=samples,
                         rounds=rounds or [], summary=summarize(samples))


class BenchWorkload(Frozen):
    """The fixed workload: the gate compares only results of the same one."""

    name: str
    prompts: int = Field(ge=1)
    prompt_tokens: int = Field(description="target prompt length in tokens")
    max_new_tokens: int
    prompts_sha256: str = Field(description="digest of the prompt texts and lengths")
    warmup: int = Field(ge=0)
    repeats: int = Field(ge=1)


class Environment(Frozen):
    """Where the samples were measured: the gate refuses to compare different environments."""

    hardware_fingerprint: str
    cpu: str
    cpu_count: int
    memory_bytes: int
    gpus: list[str] = []
    os: str
    python: str
    libraries: dict[str, str] = Field(description="package -> version (optiplan, torch, transformers, ...)")
    threads: int | None = Field(None, description="torch intra-op threads")
    device: str
    dtype: str | None = None
    git_commit: str | None = None
    server_model: str | None = Field(None, description="the model an endpoint reported serving")


class BenchResult(Frozen):
    """One target (a model folder, an artifact or an endpoint) measured under one workload."""

    schema_version: str = BENCH_SCHEMA_VERSION
    kind: Literal["optiplan-bench"] = "optiplan-bench"
    target: str = Field(description="model folder, artifact or endpoint URL")
    target_kind: Literal["model", "endpoint"]
    created_at: str
    session_id: str = Field(description="shared by the targets one interleaved bench run measured")
    interleaved_with: list[str] = []
    workload: BenchWorkload
    environment: Environment
    metrics: dict[str, MetricSamples]
    quality: dict[str, str] = Field({}, description="how quality was measured (eval text digest, reference)")
    notes: list[str] = []


class MetricVerdict(Frozen):
    """One metric compared: medians, relative change with its confidence interval, and the verdict."""

    metric: str
    unit: str
    direction: Direction
    verdict: Verdict
    baseline_median: float
    candidate_median: float
    change_pct: float | None = Field(description="candidate against baseline, in the metric's own sense (+ = larger); "
                                                 "None where the baseline is zero and the candidate is not")
    ci_low_pct: float | None
    ci_high_pct: float | None
    p_value: float | None = None
    budget_pct: float
    n_baseline: int
    n_candidate: int
    method: str
    more_repeats: int | None = Field(None, description="inconclusive: about this many more repeats per side "
                                                        "would decide")
    reason: str


class GateReport(Frozen):
    """The result of `optiplan gate`: a verdict per metric and one overall."""

    schema_version: str = BENCH_SCHEMA_VERSION
    verdict: Verdict
    exit_code: int
    fail_on_inconclusive: bool = Field(False, description="an inconclusive metric fails the gate as a regression "
                                                          "does (--fail-on-inconclusive)")
    baseline: str
    candidate: str
    workload: str
    confidence: float
    pass_confidence: float
    min_effect_pct: float
    environment_differences: list[str] = []
    metrics: list[MetricVerdict]
    notes: list[str] = []


class GateRequest(Frozen):
    """What `optiplan gate` compares and under which budgets (percentages, e.g. 5 for 5%)."""

    baseline: str
    candidate: str
    max_slowdown_pct: float = Field(5.0, ge=0, lt=100, description="TTFT, TPOT and throughput")
    max_memory_growth_pct: float = Field(3.0, ge=0, description="peak memory")
    max_quality_loss_pct: float = Field(1.0, ge=0, lt=100, description="perplexity, greedy prefix agreement")
    budgets: dict[str, Annotated[float, Field(ge=0, lt=100)]] = Field(
        {}, description="metric -> budget percent, overriding its family's")
    min_effect_pct: float = Field(1.0, ge=0, lt=100, description="changes smaller than this are no change")
    confidence: float = Field(0.99, gt=0.5, lt=1, description="two-sided interval a regression must clear")
    pass_confidence: float = Field(0.95, gt=0.5, lt=1, description="one-sided bound a pass must keep within budget")
    metrics: list[str] = Field([], description="compare only these [default: all in the files]")
    allow_different_env: bool = False
    fail_on_inconclusive: bool = False
    pairing: Literal["auto", "off"] = Field("auto", description="auto: pair the rounds of one interleaved session")
    run_noise_pct: float | None = Field(None, ge=0, lt=100, description="how far a timing median drifts between "
                                        "separate bench runs here, at most [default: 10, measured on the CI machine]")


class BenchRequest(Frozen):
    """What `optiplan bench` measures: model folders/artifacts or endpoints, interleaved, under one workload."""

    models: list[str] = Field([], description="model folders or optiplan artifacts")
    endpoints: list[str] = Field([], description="OpenAI-compatible base URLs, e.g. http://localhost:8000")
    workload: str = "chat"
    prompt_tokens: int | None = Field(None, ge=1, description="override the workload's prompt length")
    max_new_tokens: int | None = Field(None, ge=2, description="override the workload's output length")
    prompts_file: str | None = Field(None, description="one prompt per line instead of the built-in prompts")
    tokenizer: str | None = Field(None, description="folder of the tokenizer, for model folders that have none")
    repeats: int = Field(DEFAULT_REPEATS, ge=1, description="measured rounds; every target runs every prompt once "
                                                            "per round")
    warmup: int = Field(1, ge=0)
    device: str | None = Field(None, description="cpu or cuda [default: cuda when available]")
    threads: int | None = Field(None, ge=1, description="torch intra-op threads [default: torch's]")
    quality: bool = True
    eval_text: str | None = Field(None, description="perplexity text file [default: the built-in held-out text]")
    eval_tokens: int = Field(4096, ge=16)
    reference: str | None = Field(None, description="greedy-token reference file to measure agreement against")
    save_reference: str | None = Field(None, description="write the first target's greedy tokens here")
    memory: bool = True
    memory_repeats: int = Field(1, ge=1)
    endpoint_model: str | None = Field(None, description="model name to request [default: the first served]")
    request_timeout_s: float = Field(120.0, gt=0)
    max_requests: int = Field(1000, ge=1, description="refuse a run that would send more requests")
