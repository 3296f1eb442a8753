"""The result of `optiplan profile`: what the model, device and request come to (memory, compute, latency,
throughput, request-level figures) and the measurements beside them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .core import SCHEMA_VERSION, EfficiencyFactors, Frozen, ProfileRequest


class ModelSummary(Frozen):
    name: str
    model_type: str
    source: str
    params_total: int
    params_active: int
    embedding_params: int
    num_layers: int
    hidden_size: int
    attention: str
    num_heads: int
    num_kv_heads: int
    head_dim: int
    moe: str | None = None
    sliding_layers: int = 0
    max_position_embeddings: int
    layer_mix: str | None = Field(None, exclude_if=lambda v: v is None,
                                  description="state-space and hybrid models: layers by token mixer, e.g. "
                                              "'4 attention, 28 mamba'")

    @property
    def kind(self) -> str:
        """"hybrid" (state-space or linear-attention layers), "moe" (routed experts) or "dense", as
        `analytic.accuracy.architecture_kind` reads a model's spec."""
        return "hybrid" if self.layer_mix else "moe" if self.moe else "dense"


class HardwareSummary(Frozen):
    id: str
    name: str
    num_devices: int
    tensor_parallel: int
    pipeline_parallel: int
    memory_per_device_bytes: int
    unified_memory_bytes: int | None = Field(None, exclude_if=lambda v: v is None, description=(
        "the whole unified memory where the device shares it with its host (Apple silicon): memory_per_device_bytes "
        "is what its GPU may use of it by default"))
    bandwidth_bytes_per_s: float
    compute_dtype: str
    peak_tflops: float = Field(description="the dense peak the linear layers run at: the compute dtype's, or the one "
                                           "the engine's GEMM runs at (fp16 accumulation on a GeForce card)")
    ridge_flops_per_byte: float


class MemoryBreakdown(Frozen):
    weights_bytes: int
    weights_bits_per_param: float
    kv_cache_bytes: int = Field(description="everything one sequence caches at the context length: attention KV "
                                            "plus recurrent, convolution and linear-attention state")
    attention_kv_bytes: int | None = Field(None, exclude_if=lambda v: v is None,
                                           description="its attention keys and values (models with state layers)")
    state_bytes: int | None = Field(None, exclude_if=lambda v: v is None,
                                    description="its fixed-size state, the same at any context (models with state "
                                                "layers)")
    kv_cache_pool_bytes: int | None = Field(None, exclude_if=lambda v: v is None,
                                            description="the room one sequence takes in the engine's cache where it "
                                                        "sizes a pool per attention window (TensorRT-LLM, SGLang), "
                                                        "more than it holds; the total per device counts this")
    kv_cache_bytes_per_token: float = Field(description="at full attention, all layers; windows not applied")
    kv_cache_batch_bytes: int
    activation_peak_bytes: int = Field(description="the larger of a prefill's and a decode step's transients (with the "
                                                   "cache copies an engine makes), and the causal mask it keeps")
    runtime_overhead_bytes: int = Field(description="what a device holds before any weight: the device's runtime (CUDA "
                                                    "context, libraries) and the engine's communication workspace")
    workspace_bytes: int = Field(0, exclude_if=lambda v: v == 0,
                                 description="of runtime_overhead_bytes, the engine's communication workspace (vLLM "
                                             "0.17+'s fused all-reduce at tensor parallel 2, 4 or 8, and what its logs "
                                             "measure the collectives to hold beside it), held out of its cache")
    draft_bytes: int = Field(0, exclude_if=lambda v: v == 0,
                             description="of per_device_bytes, a speculative draft's weights on a device (a draft "
                                         "model's or an EAGLE-3 head's); its cache is in kv_cache_batch_bytes")
    host_weights_bytes: int = Field(0, exclude_if=lambda v: v == 0,
                                    description="of one device's weights, those kept in host memory (llama.cpp's "
                                                "layers past --gpu-layers, computed by the CPU), not in per_device_bytes")
    per_device_bytes: int
    device_memory_bytes: int
    headroom_bytes: int = Field(description="what the engine may use of a device (its share where it sets one: vLLM "
                                            "0.9 by default, or --memory-share) less what the profile holds; "
                                            "negative: does not fit")
    kv_cache_capacity_tokens: int | None = Field(
        None, exclude_if=lambda v: v is None,
        description="tokens of context the engine's KV cache holds as it sizes it at start-up (vLLM's 'GPU KV cache "
                    "size', SGLang's '#tokens'), on all the deployment's devices; engines that size no cache: absent")


class ComputeProfile(Frozen):
    prefill_matmul_flops_per_token: float
    # the token mixers' FLOPs beside the matmuls: attention's, and a state-space or linear-attention layer's scan
    prefill_attention_flops_per_token: float
    decode_matmul_flops_per_token: float
    decode_attention_flops_per_token: float
    decode_bytes_per_step: float
    decode_arithmetic_intensity: float
    prefill_arithmetic_intensity: float
    ridge_flops_per_byte: float
    decode_bound: Literal["memory", "compute", "launch"] = Field(description=(
        "what the step waits on: the memory traffic, the arithmetic, or (eager CUDA) the host's kernel launches"))
    prefill_bound: Literal["memory", "compute", "launch"]


class LatencyProfile(Frozen):
    ttft_ms: float = Field(description="prefill of the batch's prompts (and first_token_step_ms)")
    tpot_ms: float = Field(description="one decode step of the batch at the full context")
    prefill_tokens: int
    first_token_step_ms: float = Field(0.0, description="the decode step after the prefill that computes the first "
                                                        "token, in ttft_ms (TurboMind up to LMDeploy 0.1.0a1)")
    allreduce_ms_per_layer: float = 0.0
    communication_share: float = 0.0


class ThroughputPoint(Frozen):
    batch: int
    tpot_ms: float
    tokens_per_s: float
    fits: bool


class ThroughputProfile(Frozen):
    """The step view: rates of single decode and prefill steps, with no scheduling. A decode step's rate leaves the
    prefills out, so it is not what a server delivers: that is `Profile.requests`."""

    tokens_per_s: float = Field(description="decode-step rate: batch / decode step time at the context, prefill left "
                                            "out (not a serving throughput; see `requests.output_tokens_per_s`)")
    prefill_tokens_per_s: float
    curve: list[ThroughputPoint]
    max_batch: int = Field(description="largest batch whose KV cache fits at the context")
    max_context: int = Field(description="longest context that fits at the batch (capped at the model's maximum)")


class AccuracyBand(Frozen):
    """How far a predicted figure may be off: the analytic model's absolute error against measurements."""

    median_pct: float = Field(description="half the validation points were closer than this")
    p90_pct: float | None = Field(None, description="nine in ten were closer than this")
    points: int
    source: str
    category: str | None = Field(None, description="the validation set's category of its points (batch1-decode: "
                                                   "one sequence only)")


class RequestProfile(Frozen):
    """Requests of `input_tokens` in and `output_tokens` out served `concurrency` at a time, prefill included
    (`analytic.requests`)."""

    input_tokens: int
    output_tokens: int
    concurrency: int = Field(description="requests in flight at once (a burst: the requests sent together)")
    max_concurrency: int = Field(description="as many as run at once: each cache holds a whole request beside the "
                                             "weights, up to the engine's default cap (vLLM's max_num_seqs, "
                                             "SGLang's request pool, TGI's in-flight limit)")
    fits: bool = Field(description="every request's cache fits beside the weights at once (past the engine's cap "
                                   "they still wait for a slot)")
    running: int = Field(0, description="requests the device serves at once: the concurrency, or as many as fit")
    queue_wait_ms: float = Field(0.0, description="time a request waits for a slot before its prefill starts "
                                                  "(in TTFT and the request latency; 0 when all fit)")
    scheduling: str = Field(description="how prefill and decode share the device in this engine")
    ttft_ms: float = Field(description="time to first token under this load")
    ttft_median_ms: float | None = Field(None, description="the median request's time to first token: a burst's or a "
                                                           "run's, whose first wave waits longest; in steady state "
                                                           "every request's is ttft_ms")
    itl_ms: float = Field(description="mean inter-token latency, counting prefill chunks that share decode steps")
    request_latency_ms: float = Field(description="TTFT + (output tokens - 1) x ITL")
    output_tokens_per_s: float = Field(description="output tokens per second of all requests together, prefill "
                                                   "included")
    requests_per_s: float
    ttft_slo_ms: float | None = None
    itl_slo_ms: float | None = None
    meets_slo: bool = Field(description="TTFT and ITL within their SLOs (true when none are set)")
    goodput_requests_per_s: float = Field(description="requests per second that meet the SLOs at this concurrency")
    at_once: bool = Field(False, description="one burst of `concurrency` requests sent together: the figures are its "
                                             "means, the rates its requests over `duration_ms`")
    num_requests: int | None = Field(None, description="a run of this many requests, `concurrency` at a time: the "
                                                      "figures are its means, the rates its tokens over `duration_ms`")
    duration_ms: float = Field(0.0, description="until the last request's last token (a burst or a run), or one "
                                                "request's time in steady state")
    slo_concurrency: int = Field(description="the largest concurrency that meets the SLOs in steady state (0: not "
                                             "even one request)")
    slo_goodput_requests_per_s: float = Field(description="requests per second at the SLO concurrency")


class MeasuredPoint(Frozen):
    kind: Literal["prefill", "decode", "peak"]
    batch: int
    tokens: int
    measured: float = Field(description="seconds (prefill, decode) or bytes (peak)")
    spread: float = 0.0
    predicted: float | None = None
    error_pct: float | None = None


class MeasuredProfile(Frozen):
    """What running the real model here measured, with the same keys as the prediction."""

    engine: str
    device: str
    dtype: str
    ttft_ms: float
    tpot_ms: float
    tokens_per_s: float
    peak_memory_bytes: int
    load_s: float
    repeats: int
    points: list[MeasuredPoint] = []


class Profile(Frozen):
    """The result of `optiplan profile`: stable keys, predicted figures, and where they come from."""

    schema_version: str = SCHEMA_VERSION
    request: ProfileRequest
    model: ModelSummary
    hardware: HardwareSummary
    memory: MemoryBreakdown
    compute: ComputeProfile
    latency: LatencyProfile
    throughput: ThroughputProfile
    efficiency: EfficiencyFactors
    fits: bool
    requests: RequestProfile | None = Field(None, description="request-level figures, when the request names "
                                                              "input and output tokens")
    accuracy: dict[str, AccuracyBand] = Field({}, description=(
        "figure -> its error band (tpot_ms, ttft_ms, throughput_tokens_per_s, request_latency_ms, memory_bytes, "
        "kv_cache_tokens): tpot_ms is one sequence's time per token; above one sequence a time per token carries "
        "request_latency_ms's band where there is one (analytic.accuracy.decode_band)"))
    measured: MeasuredProfile | None = None
    warnings: list[str] = []
