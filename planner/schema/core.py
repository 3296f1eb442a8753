"""Core models: hardware and model specs and the profile request (its result: `profile`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .releases import pinned_engine

# batch sizes, each at least 1, kept sorted and once each
BatchSizes = Annotated[tuple[Annotated[int, Field(ge=1)], ...], AfterValidator(lambda sizes: tuple(sorted(set(sizes))))]

SCHEMA_VERSION = "1.0"


class Frozen(BaseModel):
    # defer_build: a model's validator is built on first use, so a command pays only for the models it uses.
    # allow_inf_nan: no NaN or infinity in any document optiplan reads or writes (JSON has neither)
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True, allow_inf_nan=False)


# --- Hardware ------------------------------------------------------------------------------


class Price(Frozen):
    low_usd_per_hour: float | None = None
    high_usd_per_hour: float | None = None
    as_of: str | None = None
    source: str | None = None

    @property
    def usd_per_hour(self) -> float | None:
        """The price a prediction uses: the middle of the range, or the one bound given."""
        bounds = [p for p in (self.low_usd_per_hour, self.high_usd_per_hour) if p]
        return sum(bounds) / len(bounds) if bounds else None

    @property
    def usd_per_hour_range(self) -> tuple[float, float] | None:
        """(low, high) where the catalog gives a range, else None (one price, or none)."""
        low, high = self.low_usd_per_hour, self.high_usd_per_hour
        return (low, high) if low and high and high > low else None


class Interconnect(Frozen):
    name: str
    kind: Literal["pcie", "nvlink", "infinity-fabric", "ici"] | None = Field(
        None, description="the link between a node's devices: over PCIe a tensor-parallel layer's all-reduces cost "
                          "enough that pipeline stages compete inside one node; NVLink, Infinity Fabric and TPU ICI "
                          "connect the devices directly [every catalog device states it; a profile of your own without "
                          "it: PCIe where its name starts so]")
    bandwidth_gbps: float = Field(gt=0, description="GB/s per device, bidirectional (vendor convention)")
    max_devices_per_node: int = Field(8, ge=1)
    latency_us: float = Field(5.0, ge=0, description="per hop latency used for collective estimates")
    scale_out_gbps: float = Field(50.0, gt=0, description="GB/s per device, one way, between nodes: the default is "
                                                          "one 400 Gb/s InfiniBand NDR or RoCE port per GPU (NVIDIA "
                                                          "DGX H100/H200/B200 reference design, ConnectX-7)")
    scale_out_latency_us: float = Field(10.0, ge=0, description="per hop latency between nodes")
    devices_per_host: int | None = Field(None, ge=1, description="devices per host where the NVLink domain spans "
                                                                 "several hosts (None: one host per node)")

    @property
    def over_pcie(self) -> bool:
        """Whether the node's devices talk over PCIe: its `kind`, else its name (a profile of your own)."""
        return self.kind == "pcie" if self.kind is not None else self.name.lower().startswith("pcie")


class HardwareFeatures(Frozen):
    backend: Literal["cuda", "rocm", "tpu", "metal", "cpu"]
    compute_capability: str | None = None
    bf16: bool = False
    fp16: bool = True
    fp8: bool = False
    int8_tensor_cores: bool = False
    int4_tensor_cores: bool = False
    fp4: bool = False
    flash_attention: int = Field(0, description="highest FlashAttention generation supported (0 = none)")


class MeasuredPeaks(Frozen):
    """What a device reaches in microbenchmarks, beside its datasheet peaks: the efficiency defaults (set on the
    reference devices of profiles/efficiency.yaml) scale by this device's measured share of its peak."""

    memory_bandwidth_tbps: float | None = Field(None, gt=0, description="STREAM-like triad (or copy) bandwidth")
    bandwidth_source: str = ""
    matmul_tflops: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="largest dense GEMM throughput measured, per compute dtype")
    matmul_source: str = ""


class HardwareSpec(Frozen):
    """One device of a catalog entry (or of this machine), with a source for every number."""

    schema_version: str = SCHEMA_VERSION
    id: str
    name: str
    kind: Literal["gpu", "cpu", "tpu", "apple"]
    vendor: str
    aliases: list[str] = []
    memory_bytes: int = Field(gt=0, description="memory per device (of unified memory, what the accelerator may use)")
    unified_memory_bytes: int | None = Field(None, gt=0, exclude_if=lambda v: v is None, description=(
        "the whole memory a device shares with its host (Apple silicon), of which memory_bytes is what the accelerator "
        "may use by default; None: memory of its own"))
    memory_bandwidth_bytes_per_s: float = Field(gt=0)
    peak_tflops: dict[str, Annotated[float, Field(gt=0)]] = Field(min_length=1,
                                                                  description="dense peak per compute dtype, no sparsity")
    features: HardwareFeatures
    interconnect: Interconnect | None = None
    runtime_overhead_bytes: int = Field(0, ge=0, description="memory the runtime takes before any weight")
    host_link_gbps: float | None = Field(None, gt=0, description="GB/s one way to host memory; None: unified memory")
    tdp_w: float | None = None
    price: Price | None = None
    measured: MeasuredPeaks | None = None
    compute_units: int | None = Field(None, gt=0, exclude_if=lambda v: v is None, description=(
        "streaming multiprocessors (NVIDIA) or compute units (AMD): a latency-bound kernel's bandwidth grows with "
        "them (profiles/efficiency.yaml weight_kernels' unit_bandwidth_gbps)"))
    compute_units_source: str = Field("", exclude_if=lambda v: not v)
    fp16_accumulate_tflops: float | None = Field(None, gt=0, exclude_if=lambda v: v is None, description=(
        "dense fp16 tensor rate with fp16 accumulation where it is above peak_tflops' fp16 (fp32 accumulation): "
        "GeForce cards run it at twice the rate; a kernel that accumulates in fp16 (llama.cpp's cuBLAS GEMMs) "
        "runs at it. None: the same as fp16"))
    fp16_accumulate_source: str = Field("", exclude_if=lambda v: not v)
    sources: list[str] = []
    notes: str | None = None

    @property
    def bandwidth_tbps(self) -> float:
        return self.memory_bandwidth_bytes_per_s / 1e12


# --- Model architecture (normalised from any config.json) ----------------------------------


class MoESpec(Frozen):
    num_experts: int
    top_k: int
    expert_intermediate_size: int
    shared_intermediate_size: int = Field(0, description="total width of the always-on shared experts")
    shared_expert_gate: bool = False
    router_bias: bool = False
    router_score_bias: bool = Field(False, description="DeepSeek-V3 e_score_correction_bias (one per expert)")
    expert_bias: bool = Field(False, exclude_if=lambda v: not v,
                              description="each routed expert's projections carry biases (gpt-oss)")


class MLASpec(Frozen):
    """Multi-head latent attention (DeepSeek-V2/V3)."""

    q_lora_rank: int | None
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


class StateSpec(Frozen):
    """The recurrent token mixer of a state-space, linear-attention or hybrid model: a layer that keeps a
    fixed-size state per sequence instead of a KV cache (Mamba, Mamba-2, gated DeltaNet, a short
    convolution, RG-LRU). Its counts follow the modules transformers builds for that family."""

    kind: Literal["mamba", "mamba2", "gated_deltanet", "short_conv", "rglru", "rwkv"]
    linear_params: int = Field(description="matmul weights of one layer's mixer (in, out, x/dt projections)")
    small_params: int = Field(description="its convolution, decay, skip, dt and norm parameters")
    conv_channels: int = Field(description="channels of the causal convolution, whose last inputs are cached")
    conv_kernel: int = Field(description="its width in tokens")
    recurrent_state_elements: int = Field(description="per sequence and layer: the SSM / linear-attention / LRU state")
    scan_flops_per_token: int = Field(description="per layer and token: convolution, state update and readout")
    out_proj_inputs: int = Field(0, exclude_if=lambda v: v == 0,
                                 description="Mamba, Mamba-2 and gated DeltaNet: the inner width the output projection "
                                             "reads (a DeltaNet's value heads times their width)")
    scan_chunk: int = Field(0, exclude_if=lambda v: v == 0,
                            description="Mamba-2: the tokens a chunk of its scan spans (chunk_size)")
    heads: int = Field(0, exclude_if=lambda v: v == 0,
                       description="gated DeltaNet: its value heads, each with a state of key by value width")
    gated_norm: bool = Field(True, exclude_if=lambda v: v,
                             description="Mamba-2: a gated RMSNorm before the output projection (Falcon-H1's "
                                         "mamba_rms_norm: false gates by the SiLU alone)")


class ModelSpec(Frozen):
    """A Transformer decoder reduced to what costs memory, FLOPs and bytes."""

    schema_version: str = SCHEMA_VERSION
    name: str
    model_type: str
    source: str = Field(description="catalog, config file, folder or hub id it came from")
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int = Field(description="query/key head dimension")
    v_head_dim: int
    intermediate_size: int
    mlp_gated: bool = Field(True, description="gate+up+down (SwiGLU/GeGLU) rather than up+down")
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    norm: Literal["rmsnorm", "layernorm", "nonparametric"] = "rmsnorm"
    norm_bias: bool = False
    norms_per_layer: int = 2
    qk_norm: Literal["none", "head", "full", "l2"] = Field(
        "none", description="a norm over the queries and keys: per head, over the whole width (each with its weights) "
                            "or a weightless L2 norm on the layers with rotary positions (Llama 4)")
    tie_word_embeddings: bool = False
    lm_head_bias: bool = False
    residual_dropout: float = Field(0.0, ge=0, lt=1, exclude_if=lambda v: not v, description=(
        "dropout on each block's output before the residual add (transformers' resid_pdrop, residual_dropout, "
        "hidden_dropout), whose masks a training step keeps"))
    attention_dropout: float = Field(0.0, ge=0, lt=1, exclude_if=lambda v: not v, description=(
        "dropout on the attention probabilities in training (attention_dropout, attn_pdrop)"))
    learned_positions: int = Field(0, description="rows of a learned absolute position table")
    rotary_fraction: float = 1.0
    parallel_attention: bool = False
    max_position_embeddings: int
    layer_windows: tuple[int | None, ...] = Field(description="per layer: sliding window, None for full attention")
    # transformers types every layer of a config with a sliding_window as sliding for its caches, even a window as
    # long as the context, which the engines (and layer_windows) read as full attention
    config_window: bool = Field(False, exclude_if=lambda v: not v,
                                description="the config sets a sliding window (transformers' caches type its layers "
                                            "as sliding)")
    layer_chunks: tuple[int | None, ...] = Field((), exclude_if=lambda v: not v,
                                                 description="per layer: the chunk of chunked local attention (Llama "
                                                             "4: a token attends to its own chunk only), None for a "
                                                             "layer that attends across chunks; empty: no such layer")
    layer_moe: tuple[bool, ...] = Field(description="per layer: MoE MLP (True) or dense MLP (False)")
    moe: MoESpec | None = None
    mla: MLASpec | None = None
    attn_logit_softcap: float | None = None
    attention_sinks: bool = Field(False, exclude_if=lambda v: not v,
                                  description="a learned sink logit per attention head in every attention layer "
                                              "(gpt-oss)")
    checkpoint_dtype: str | None = Field(None, description="weight format the published checkpoint is stored in "
                                                           "when it is quantized (e.g. fp8), else None")
    checkpoint_modules: Literal["linear", "experts"] = Field(
        "linear", exclude_if=lambda v: v == "linear",
        description="which weights the checkpoint's format covers: every linear layer of the blocks, or only the "
                    "routed experts (gpt-oss's MXFP4: attention, router, embedding and head stay 16-bit)")
    warnings: tuple[str, ...] = ()
    # State-space, linear-attention and hybrid models (left out of a plain Transformer's JSON).
    layer_mixers: tuple[Literal["attention", "state", "attention+state", "none"], ...] = Field(
        (), exclude_if=lambda v: not v, description="per layer: token mixer(s); empty: attention in every layer")
    layer_mlps: tuple[bool, ...] = Field((), exclude_if=lambda v: not v,
                                         description="per layer: has an MLP or MoE; empty: every layer has one")
    state: StateSpec | None = Field(None, exclude_if=lambda v: v is None)
    attn_output_gate: bool = Field(False, exclude_if=lambda v: not v,
                                   description="q_proj also yields a sigmoid gate on the output (Qwen3-Next)")
    extra_linear_params: int = Field(0, exclude_if=lambda v: not v,
                                     description="matmul weights outside the per-layer pattern, stored once (Zamba2's "
                                                 "shared transformer blocks, their adapters, its hybrid layers' linear)")
    extra_small_params: int = Field(0, exclude_if=lambda v: not v,
                                    description="norms and biases outside the per-layer pattern (RWKV's pre_ln)")
    extra_linear_reuse: int = Field(0, exclude_if=lambda v: not v,
                                    description="matmul weights a token passes through again: a shared block's "
                                                "second and later uses (stored once, computed at every use)")
    attention_shared: bool = Field(False, exclude_if=lambda v: not v,
                                   description="the attention layers' weights are shared blocks, in "
                                               "extra_linear_params, not one set per layer (Zamba2)")
    adapter_rank: int = Field(0, exclude_if=lambda v: not v, description="Zamba2: its shared blocks' adapters' rank")
    extra_adapter_widths: int = Field(0, exclude_if=lambda v: not v,
                                      description="inputs plus outputs of the linear layers LoRA adapts beyond the "
                                                  "per-layer pattern: a shared block's, once per layer running it")

    def mixer(self, layer: int) -> str:
        return self.layer_mixers[layer] if self.layer_mixers else "attention"

    def has_mlp(self, layer: int) -> bool:
        return self.layer_mlps[layer] if self.layer_mlps else True

    @property
    def attention_layers(self) -> int:
        return sum(1 for i in range(self.num_layers) if "attention" in self.mixer(i))

    @property
    def windowed_cache_layers(self) -> str | None:
        """The layers transformers' caches hold as a window (its StaticSlidingWindowLayer, the sliding layers of its
        other caches), in words: chunked-attention or sliding-window layers, or every layer where the config sets a
        window as long as the context (which the engines read as full attention); None where there are none."""
        if any(self.layer_chunks):
            return "chunked-attention layers"
        if any(self.layer_windows):
            return "sliding-window layers"
        return ("sliding-window layers as transformers reads its config (a window as long as its context)"
                if self.config_window else None)

    @property
    def state_layers(self) -> int:
        return sum(1 for i in range(self.num_layers) if "state" in self.mixer(i))

    @property
    def attention_kind(self) -> str:
        if self.layer_mixers and not self.attention_layers:
            return "none"
        if self.mla is not None:
            return "MLA"
        if self.num_kv_heads == 1:
            return "MQA"
        if self.num_kv_heads < self.num_heads:
            return "GQA"
        return "MHA"


# --- Profile request and result ------------------------------------------------------------


class EfficiencyFactors(Frozen):
    """Fractions of the datasheet peaks that real kernels reach, plus fixed costs per step."""

    flop_efficiency: float = Field(gt=0, le=1)
    bandwidth_efficiency: float = Field(gt=0, le=1)
    step_overhead_s: float = Field(0.0, ge=0, description="fixed cost per forward pass (launch, sampling)")
    layer_overhead_s: float = Field(0.0, ge=0, description="fixed cost per layer per forward pass")
    moe_layer_overhead_s: float = Field(0.0, ge=0, exclude_if=lambda v: not v, description=(
        "fixed kernel time a MoE layer's routed experts add per forward pass (routing, alignment, grouped GEMMs)"))
    mla_layer_overhead_s: float = Field(0.0, ge=0, exclude_if=lambda v: not v, description=(
        "fixed kernel time multi-head latent attention adds per layer and forward pass beyond a GQA layer's"))
    state_layer_overhead_s: float = Field(0.0, ge=0, exclude_if=lambda v: not v, description=(
        "fixed kernel time a state layer (an SSM's scan, a linear attention's recurrent update, their convolution and "
        "gating) adds per forward pass beyond its projections"))
    expert_bandwidth_ratio: float = Field(1.0, gt=0, le=1, exclude_if=lambda v: v == 1.0, description=(
        "the share of the weights' bandwidth a MoE layer's routed experts are read at (the engine's grouped GEMM "
        "over a few rows per expert; 1: as the dense layers' weights)"))
    routing_skew: float = Field(0.0, ge=0, exclude_if=lambda v: not v, description=(
        "the Zipf exponent of the routed experts' popularity under served traffic: a few tokens share more of their "
        "experts than a uniform router's would (0: every expert alike)"))
    expert_flop_efficiency: float | None = Field(None, gt=0, le=1, exclude_if=lambda v: v is None, description=(
        "the share of the peak the grouped GEMM over a MoE model's routed experts reaches (by default the engine's "
        "profile's moe_flop_share, where it states one; None: flop_efficiency)"))
    attention_flop_efficiency: float | None = Field(None, gt=0, le=1, exclude_if=lambda v: v is None, description=(
        "the share of the 16-bit peak the runtime's fused attention kernels reach where the runtime states their own "
        "(the serving engines' FlashAttention, FlashInfer and FMHA kernels, measured on prefill; a decode step's "
        "attention is bound by the cache's bytes; None: flop_efficiency, the linear layers' share)"))
    expert_bandwidth_efficiency: float | None = Field(None, gt=0, le=1, exclude_if=lambda v: v is None, description=(
        "the share of the peak bandwidth at which a checkpoint that stores only its routed experts in a low-precision "
        "format (gpt-oss's MXFP4) has them read: that format's MoE kernel (None: no such checkpoint)"))
    weight_kernel_layer_s: float = Field(0.0, ge=0, exclude_if=lambda v: not v, description=(
        "device time per layer the weight kernel takes beyond its bytes (its dequantizing GEMVs' launches and "
        "ramps), part of the linear layers' time"))
    weight_kernel_max_rows: int | None = Field(None, gt=0, exclude_if=lambda v: v is None, description=(
        "the most rows (tokens in a step) the weight kernel takes: a step with more runs the engine's GEMM, at "
        "gemm_bandwidth_efficiency and without the kernel's time per layer (None: the kernel takes any step)"))
    gemm_bandwidth_efficiency: float | None = Field(None, gt=0, le=1, exclude_if=lambda v: v is None, description=(
        "share of peak bandwidth the weights are read at in steps with more rows than the weight kernel takes"))
    host_overlap: bool = Field(False, exclude_if=lambda v: not v, description=(
        "the host's launches run ahead of the device (eager CUDA): a step takes the longer of its fixed costs and "
        "its kernels, not their sum"))
    collective_latency_s: float = Field(0.0, ge=0, description="fixed cost of each collective (all-reduce, "
                                                               "all-to-all) beyond its link hops: launch and sync")
    allreduce_fusion_saving_s: float = Field(0.0, ge=0, exclude_if=lambda v: not v, description=(
        "fixed time a tensor-parallel all-reduce fused with the residual add and RMSNorm after it saves over the two "
        "kernels, where the engine fuses them (its profile's allreduce_fusion)"))
    matmul_half_tokens: float = Field(0.0, ge=0, description="rows at which a matmul reaches half its flop "
                                                             "efficiency (0: the same at any size)")
    kv_bandwidth_efficiency: float | None = Field(
        None, gt=0, le=1, description="share of peak bandwidth the attention kernels read the KV cache at (the "
                                      "cache format's share; None: bandwidth_efficiency)")
    activation_bandwidth_efficiency: float | None = Field(
        None, gt=0, le=1, description="share of peak bandwidth the elementwise kernels stream the activations at "
                                      "(None: bandwidth_efficiency)")
    source: str = ""


class ProfileRequest(Frozen):
    schema_version: str = SCHEMA_VERSION
    model: str
    hardware: str
    num_devices: int = Field(1, ge=1, description="devices in total (tensor x pipeline parallel)")
    tensor_parallel: int | None = Field(None, ge=1, description="tensor-parallel size [default: devices / pipeline "
                                                                "stages; an engine that splits layers over devices "
                                                                "(llama.cpp, transformers) runs one stage per device]")
    pipeline_parallel: int = Field(1, ge=1)
    attention_data_parallel: int = Field(1, ge=1, description="attention data-parallel groups of tensor_parallel "
                                                              "devices, sequences spread over them (MoE with expert "
                                                              "parallel)")
    expert_parallel: int = Field(1, ge=1, description="devices a MoE model's experts are split over whole (1, or "
                                                      "all devices of a pipeline stage)")
    dtype: str | None = Field(None, description="weight format [default: the model's published checkpoint's where the "
                                                "device runs it as it is (gpt-oss's MXFP4 experts, DeepSeek-V3's "
                                                "fp8), else the device's 16-bit "
                                                "format, bf16 or fp16]")
    activations: str | None = Field(None, description="quantized activations (int8/fp8 W8A8); default 16-bit")
    kv_dtype: str | None = None
    group_size: int | None = None
    # in capitals, as llama-quantize names the types (the echoed request says Q4_K_M however it was asked)
    gguf_type: Annotated[str, AfterValidator(str.upper)] | None = Field(
        None, description="the GGUF file type llama.cpp reads the weights from: Q4_0 or Q4_K_M for int4, Q8_0 for "
                          "int8 [default: the engine's for the format]")
    batch: int = Field(1, ge=1)
    context: int | None = Field(None, ge=1, description="tokens in each sequence's KV cache at the decode step "
                                                         "(TPOT) [default: input + output tokens where given, else "
                                                         "4096 or the model's maximum where shorter]")
    prompt_tokens: int | None = Field(None, description="prompt length for the prefill (TTFT) [default: input tokens "
                                                        "where given, else the context]")
    engine: Annotated[str, AfterValidator(pinned_engine)] = Field(
        "serving", description="engine with a profile in profiles/engines/ (vllm, sglang, tgi, trtllm, llama.cpp, "
                               "transformers, gpt-fast), pinned to a release as pip writes it where its facts differ "
                               "by release (sglang==0.5.6), or 'serving' for any optimized engine")
    attention: Literal["memory-efficient", "flash", "sdpa", "eager"] | None = Field(
        None, description="attention kernel: memory-efficient (= flash: fused, no score matrix), sdpa (torch SDPA as "
                          "transformers runs it), eager (materialised scores) [default: memory-efficient; under the "
                          "transformers engine, eager for a model transformers has no SDPA attention for (Gemma 2, "
                          "gpt-oss)]")
    weight_kernel: str | None = Field(None, description="the GEMM reading the weights, a kernel of "
                                                        "profiles/efficiency.yaml (marlin, tinygemm, torchao-int8, "
                                                        "ggml-mmvq, ggml-mmvf, rocm-skinny-fp8, exllama) "
                                                        "[default: the engine's, its fallback where the device "
                                                        "refuses it, else the device's default]")
    prefill_chunk_tokens: int | None = Field(None, description="the step's token budget with chunked prefill (vLLM "
                                             "--max-num-batched-tokens, SGLang --chunked-prefill-size; TensorRT-LLM "
                                             "chunks at it) [default: the engine's]")
    max_running: int | None = Field(None, ge=1, description="the most requests a serving engine runs at once, as the "
                                    "deployment sets it (vLLM --max-num-seqs, SGLang --max-running-requests, "
                                    "TensorRT-LLM --max_batch_size; per data-parallel group); the others wait, "
                                    "or TGI refuses them (--max-concurrent-requests) [default: the engine's]")
    mixed_chunk: bool = Field(False, description="prompt chunks ride in the decode steps of an engine that otherwise "
                              "runs prompts in steps of their own (SGLang --enable-mixed-chunk)")
    api_servers: int | None = Field(None, ge=1, description="the front-end processes a serving engine takes its "
                                    "requests through (vLLM --api-server-count, one per data-parallel rank as the "
                                    "configs start them), which share the host time each request takes [default: "
                                    "one]")
    memory_share: float | None = Field(None, gt=0, le=1, description="the share of each GPU the serving engine's "
                                       "memory option gives (vLLM --gpu-memory-utilization, SGLang "
                                       "--mem-fraction-static, TensorRT-LLM's free_gpu_memory_fraction), which sizes "
                                       "its KV cache [default: the engine's]")
    sampler: Literal["flashinfer", "native"] | None = Field(
        None, description="the sampler vLLM's start-up profiling run takes its peak with, which sizes its KV cache: "
        "flashinfer (FlashInfer's top-k/top-p kernels: the official images before 0.12, or "
        "VLLM_USE_FLASHINFER_SAMPLER=1) or native (PyTorch's, which sorts the logits: a pip install before 0.12, and "
        "the default from 0.12) [default: native]")
    graph_padding: BatchSizes | None = Field(
        None, min_length=1, description="CUDA-graph batch sizes a serving engine pads each decode-only step up to (its "
        "padding dummy sequences run the linear layers and experts, not attention): TensorRT-LLM's cuda_graph_config "
        "with enable_padding and batch_sizes; a step above the largest runs as it is [default: no padding]")
    gpu_layers: int | None = Field(None, ge=0, description="llama.cpp's --n-gpu-layers on one GPU: the last this many "
                                   "of its layers and output head on the device, the rest in host memory, computed "
                                   "by the CPU at the host's memory bandwidth [default: all on the device]")
    prefill_instances: int | None = Field(None, ge=1, description="prefill/decode disaggregated: the devices run "
                                          "as instances of tensor_parallel x pipeline_parallel devices, this many "
                                          "of them prefilling and the rest decoding (SGLang's --disaggregation-mode, "
                                          "TensorRT-LLM's trtllm-serve disaggregated); steady-state request figures")
    cpu_offload_gb: float | None = Field(None, gt=0, description="GiB of each device's weights kept in host memory "
                                         "and streamed to it every pass (vLLM's and SGLang's --cpu-offload-gb) "
                                         "[default: none]")
    host_memory_gbps: float | None = Field(None, gt=0, description="peak GB/s of the host's memory, which computes "
                                           "the layers llama.cpp keeps there [default: 76.8, a desktop's two channels "
                                           "of DDR5-4800]")
    host_link_gbps: float | None = Field(None, gt=0, description="GB/s one way between host and device, as the slot "
                                         "runs it (a PCIe 3.0 x8 slot: 7.9) [default: the device profile's]")
    scheduling: Literal["continuous", "static"] | None = Field(
        None, description="how requests share the device: continuous batching or static batches (a batch prefills "
                          "together and ends together) [default: the engine's]")
    input_tokens: int | None = Field(None, description="request-level figures (`requests`) for requests of this many "
                                                       "prompt tokens...")
    output_tokens: int | None = Field(None, description="...and this many output tokens...")
    concurrency: int | Literal["max"] | None = Field(None, description="...this many at a time ('max': as many as "
                                                                       "fit) [default 1]")
    at_once: bool = Field(False, description="...sent together, once (an offline benchmark's burst), not a steady "
                                             "state: the figures are the burst's means")
    in_process: bool = Field(False, description="...handed to the engine in its own process (vLLM's LLM class, "
                                                "trtllm-bench), not through its HTTP server: no server front end")
    num_requests: int | None = Field(None, description="...as a run of this many requests, `concurrency` at a time, "
                                                      "each taking the next free slot (a benchmark client's "
                                                      "--num-prompts with --max-concurrency): the figures are the "
                                                      "run's means, its first wave's burst and its last requests' "
                                                      "tail included, and the median request's TTFT "
                                                      "(ttft_median_ms) [default: steady state]")
    length_spread: float = Field(0.0, ge=0.0, le=1.0, description="...its output lengths spread evenly over mean x "
                                 "[1 - spread, 1 + spread] (1: from one token to twice the mean, sglang.bench_serving's "
                                 "random lengths at its default range ratio; 0: all alike)")
    prompt_spread: float = Field(0.0, ge=0.0, le=1.0, description="...its prompt lengths spread the same way about "
                                 "input_tokens, drawn apart from the output lengths (sglang.bench_serving's and vllm "
                                 "bench serve's random range ratio spreads both): each request's first token comes as "
                                 "much later or sooner as its own prefill takes longer or shorter (0: all alike)")
    warm_requests: int = Field(0, ge=0, description="...its first this many prompts already in the engine's prefix "
                                                  "cache (an earlier run sent them: a client drawing its prompts from "
                                                  "one seed sends the same ones every run)")
    cached_tokens: int = Field(0, ge=0, description="request-level figures: each request's first this many prompt "
                                                  "tokens found in the engine's prefix cache (a system prompt every "
                                                  "request shares, or an earlier request's prompt that this one "
                                                  "begins with), their prefill skipped; a run's warm prompts are "
                                                  "found whole")
    speculative: Literal["draft", "eagle3", "mtp", "ngram"] | None = Field(
        None, description="speculative decoding: a draft model's proposals (draft_model), an EAGLE-3 head's, the "
                          "checkpoint's own MTP module's, or n-gram lookup in the prompt; each step verifies "
                          "spec_tokens proposals, accepted at `acceptance` each (steady-state request figures only)")
    draft_model: str | None = Field(None, description="the draft model of speculative 'draft' (a catalog name), on "
                                                      "the same devices, in the same format")
    spec_tokens: int | None = Field(None, ge=1, description="tokens proposed a speculative step")
    acceptance: float | None = Field(None, gt=0.0, lt=1.0, description="the probability each proposed token is "
                                                                      "accepted (the workload's: measure it)")
    ttft_slo_ms: float | None = Field(None, gt=0, description="goodput counts requests within this time to first token")
    itl_slo_ms: float | None = Field(None, gt=0, description="...and this inter-token latency")
