"""The analytic model's inputs: `Setup` (model x device x parallelism x formats x efficiency, resolved) and
`build_setup`, the one place a Setup is made. `profile` (from a request), the planner (from a plan state),
training and calibration all call it, so the same configuration always gives the same figures."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from ..catalog import engine_fusions, engine_graphs
from ..catalog.dtypes import WeightFormat, bytes_per_element, canonical, compute_dtype, weight_format
from ..catalog.engine_memory import engine_kv_memory, engine_sampler_row_bytes, engine_workspace_bytes
from ..catalog.engine_refusals import dense_experts
from ..catalog.engine_state_models import recurrent_state_dtype
from ..catalog.engines import (
    engine_activations,
    engine_budget_per_group,
    engine_casts_whole_weight,
    engine_chunk_budget,
    engine_decodes_first_token,
    engine_embedding_on_host,
    engine_fact,
    engine_first_token_latency_s,
    engine_group_size,
    engine_host_layers,
    engine_math_decode_attention,
    engine_max_running,
    engine_mixes_prefill,
    engine_moe_flop_share,
    engine_pages_cache,
    engine_quantizes_head,
    engine_request_admit_share,
    engine_request_host_s,
    engine_running_pool,
    engine_runtime,
    engine_schedules_ahead,
    engine_square_mask,
    engine_storage,
)
from ..catalog.hardware import default_16bit
from ..catalog.kernels import kernel_shares
from ..catalog.served import SHARED_POOL, engine_window_pools
from ..errors import HardwareError, RequestError
from ..schema import EfficiencyFactors, HardwareSpec, ModelSpec
from .efficiency import (
    attention_dtype,
    attention_flop_efficiency,
    attention_kernel_factor,
    calibrated_efficiency,
    default_efficiency,
    weight_kernel_group_format,
)
from .engine_rates import (
    at_engine_share,
    at_kernel_rate,
    dequantize_pass,
    engine_weight_kernel,
    expert_bandwidth_share,
    kernel_peak_tflops,
)
from .gguf import gguf_bits
from .kvcache import KVGroup, kv_bits, kv_groups, tensor_parallel_share
from .offload import DEFAULT_HOST_MEMORY_GBPS, HostLayers
from .params import ParamCounts, param_counts

# Host link assumed when a device's profile names none (PCIe 4.0 x16 in one direction, about 25 GB/s).
DEFAULT_HOST_LINK_GBPS = 25.0


@dataclass(frozen=True)
class Setup:
    """Everything one prediction depends on, resolved and validated."""

    spec: ModelSpec
    counts: ParamCounts
    hw: HardwareSpec
    tp: int
    pp: int
    weights: WeightFormat
    act_bytes: float  # bytes per activation element (and of the unquantized weights)
    kv_bits: float  # stored bits per cached element
    compute_dtype: str
    eff: EfficiencyFactors
    layout: str  # KV layout: "serving" (paged, windows honoured), "transformers" (DynamicCache) or "static" (buffers)
    # how the engine's cache makes room for the model's attention windows, and a ratio (`served.engine_window_pools`)
    window_pools: tuple[str, float] = SHARED_POOL
    eager_attention: bool = False  # the score matrix is materialised (activation memory)
    prefill_chunk_tokens: int | None = None  # chunked prefill bounds the activations
    # the most tokens a step takes where the engine does not chunk (TensorRT-LLM's max_num_tokens): whole prompts, as
    # many as fit in it (`engines.engine_chunk_budget`); None: as many as wait
    step_tokens: int | None = None
    ep: int = 1  # expert parallel: routed experts split whole over `ep` devices (1: each split like the dense layers)
    attention_dp: int = 1  # attention data parallel: sequences spread over this many tensor-parallel groups
    attention_efficiency: float | None = None  # fraction of peak the attention kernels reach [default: flop eff.]
    # fraction of peak the routed experts' grouped GEMM reaches (the engine's MoE kernel) [default: the linear layers']
    expert_flop_efficiency: float | None = None
    attention_dtype: str | None = None  # the tensor-core rate attention runs at [default: compute_dtype]
    offload_fraction: float = 0.0  # share of the weights kept in host memory (`analytic.offload`: streamed or computed there)
    weight_bandwidth_efficiency: float | None = None  # a measured GEMM kernel's share of HBM [default: eff.'s]
    # a checkpoint that stores only its routed experts in a low-precision format (gpt-oss's MXFP4): theirs and the share
    # of the peak their kernel reads them at (`weights` then holds the other linear layers: 16-bit)
    expert_weights: WeightFormat | None = None
    expert_weight_share: float | None = None
    kv_bandwidth_efficiency: float | None = None  # a measured decode-attention kernel's share of HBM [default: eff.'s]
    chunk_rereads: float = 1.0  # times a decode step reads a chunked layer's keys (`analytic.chunked_attention`)
    host_link_bytes_per_s: float = 25e9
    host_memory_bytes_per_s: float = DEFAULT_HOST_MEMORY_GBPS * 1e9  # the host's memory, where it computes offloaded layers
    host_layers: HostLayers | None = None  # how the engine runs the layers it keeps in host memory (`analytic.offload`)
    host_layer_share: float = 0.0  # the share of the layers, and their caches, it keeps and computes there (llama.cpp)
    square_mask: bool = False  # the engine keeps a boolean causal mask of (context x context) (gpt-fast)
    embedding_on_host: bool = False  # the token embedding stays in host memory, off the device (llama.cpp on a GPU)
    math_decode_attention: bool = False  # decode runs torch SDPA's math backend over K/V repeated per head (gpt-fast)
    max_running: int | None = None  # the most sequences the engine runs at once by default (vLLM's max_num_seqs)
    max_running_set: bool = False  # that cap is the deployment's own (`profile --max-running`), not the default
    running_ceiling: int | None = None  # the most sequences the engine can run at all, whatever is set (llama.cpp)
    running_pool: tuple[int, int, int] | None = None  # a request pool sized from the cache (SGLang), `engines`
    first_token_decoded: bool = False  # a decode step after the prefill computes the first token (TurboMind 0.1)
    mixed_prefill: bool = True  # prompt tokens share steps with the decoding (else prefill steps of their own first)
    # the scheduler runs a batch ahead of the device (`engines.engine_schedules_ahead`: SGLang, TensorRT-LLM): an
    # arrival joins the batch after the next, a step later; an eager step's host time overlaps the step before (`steps`)
    schedules_ahead: bool = False
    graph_padding: tuple[int, ...] = ()  # CUDA-graph batch sizes a decode-only step is padded up to (`steps`)
    # how much of the device the engine gives its KV cache by default (`engines.engine_kv_memory`): vLLM runs within
    # 0.9 of it, TensorRT-LLM gives the cache 0.9 of what is free, SGLang reserves a few GiB beside weights and cache
    kv_memory: tuple[str, float] | None = None
    # memory a plan leaves free on each device where the engine takes no share of it for its cache (kv_memory None)
    # and sizes the cache as the config says (llama.cpp's -c): its own fitter's margin (`cache_margin_mib`)
    cache_margin_bytes: float = 0.0
    # the peak of the engine's start-up profiling run where its sampler sets it, held out of the cache's share like a
    # prefill's activations (vLLM: `engines.engine_sampler_row_bytes`): bytes per running-sequence slot on one device,
    # and the slots it profiles, its running cap per scheduler by default, or None where the deployment's config sets
    # the cap to the sequences a server runs (a plan's configs write --max-num-seqs so): then the batch's own
    sampler_row_bytes: float = 0.0
    sampler_rows: int | None = None
    # what the engine's tensor-parallel communication holds on each device beside the device's runtime, out of the
    # cache like it (`engine_memory.engine_workspace_bytes`: vLLM's fused all-reduce workspace from 0.17, and what its
    # logs measure the collectives to hold beside it)
    workspace_bytes: float = 0.0
    # the host time the engine's front end spends on each request, one after another (`engines.engine_request_host_s`),
    # shared by its front-end processes (`api_servers`): it bounds the requests a server completes per second,
    # whatever the device does
    request_host_s: float = 0.0
    api_servers: int = 1
    # the share of it spent taking a request in (the rest returns its tokens): a burst's requests all go in first
    request_admit_share: float = 1.0
    # the fixed latency a request served over HTTP adds to its first token beyond the device's work and the front
    # end's pacing (`engines.engine_first_token_latency_s`): what the engine's measured TTFTs leave once both count
    first_token_latency_s: float = 0.0
    # the host's time launching an eagerly run prefill step's kernels (`engine_graphs.eager_prefill_host_s`: SGLang to
    # 0.5.9), where a step carries more prompt tokens than its piecewise graphs take (`prefill_graph_tokens`, 0: none)
    prefill_host_s: float = 0.0
    prefill_graph_tokens: int = 0
    prefill_graph_host_s: float = 0.0  # what a step the graphs take still launches (`prefill_graph_host_s`)
    fused_allreduce_tokens: int = 0  # a step of up to this many fuses its all-reduces with its norms (`engine_fusions`)
    # the weight-only kernel casts each quantized matrix whole to 16 bits in an eager pass (`engines.engine_casts_
    # whole_weight`): the prefill holds the largest one's copy (`cast_weight_bytes`)
    casts_whole_weight: bool = False
    gemm_peak_tflops: float | None = None  # the peak its GEMM runs at, where not the documented (`engine_rates`)
    dequantize_rows: tuple[int, int] | None = None  # (fewest rows, rows a pass) converting weights first (ibid.)
    recurrent_state_bytes: float | None = None  # per element, where the engine keeps the state in its own format
    # the model's code runs every token through every routed expert (transformers' Llama 4: `dense_experts`): a
    # forward reads and computes all of them
    dense_experts: bool = False

    def prefill_floor_s(self, tokens: float) -> float:
        """A step of `tokens` prompt tokens' host time: eager, or what its piecewise graphs still launch."""
        graphs = self.prefill_graph_tokens and tokens <= self.prefill_graph_tokens
        return self.prefill_graph_host_s if graphs else self.prefill_host_s

    @property
    def runtime_bytes(self) -> float:
        """What one device holds before any weight, out of the cache: the device's runtime (CUDA context and
        libraries, `runtime_overhead_bytes`) and the engine's communication workspace (`workspace_bytes`)."""
        return self.hw.runtime_overhead_bytes + self.workspace_bytes

    @cached_property
    def shards(self) -> int:
        """Devices that one forward pass's work is spread over: `attention_dp` groups of `tp` (the expert-parallel
        devices are these same devices)."""
        return self.tp * self.attention_dp

    @cached_property
    def peak_flops(self) -> float:
        if self.compute_dtype not in self.hw.peak_tflops:
            raise HardwareError(f"{self.hw.id} has no {self.compute_dtype} rate; it runs {', '.join(self.hw.peak_tflops)}")
        return (self.gemm_peak_tflops or self.hw.peak_tflops[self.compute_dtype]) * 1e12

    @cached_property
    def attention_peak_flops(self) -> float:
        """The peak attention's matrix products run at: those of the 16-bit activations unless the cache and the
        linear layers are both fp8 (`attention_dtype`)."""
        dtype = self.attention_dtype or self.compute_dtype
        return self.hw.peak_tflops[dtype] * 1e12 if dtype in self.hw.peak_tflops else self.peak_flops

    @cached_property
    def bits_per_weight(self) -> float:
        return self.weights.bits_per_weight(self.spec.hidden_size)

    @cached_property
    def expert_bits_per_weight(self) -> float:
        """Stored bits per routed-expert weight: the experts' own format where the checkpoint keeps one, else the
        other linear layers'."""
        return (self.expert_weights or self.weights).bits_per_weight(self.spec.hidden_size)

    @cached_property
    def embedding_bytes(self) -> float:
        """Bytes per weight of the token embedding: 16-bit beside quantized linear layers, or its block type where
        the whole model is one quantized file (GGUF)."""
        bits = self.weights.embedding_bits
        return self.act_bytes if bits is None else bits / 8

    @cached_property
    def output_bytes(self) -> float:
        """Bytes per weight of the output head: 16-bit, its GGUF block type, or the weights' format where the engine
        quantizes it with them (gpt-fast)."""
        bits = self.weights.output_bits
        return self.act_bytes if bits is None else bits / 8

    @cached_property
    def cast_weight_bytes(self) -> float:
        """The 16-bit copy of the largest quantized weight matrix on one device where the engine casts each matrix
        whole in an eager pass (`casts_whole_weight`; 0 otherwise): an attention projection or an MLP's (an expert's)
        matrix, split over the tensor-parallel devices, or the output head where it is quantized with them."""
        if not self.casts_whole_weight or not self.weights.quantized:
            return 0.0
        spec = self.spec
        matrices = [spec.num_heads * spec.head_dim * spec.hidden_size / self.tp,
                    (spec.intermediate_size or 0) * spec.hidden_size / self.tp]
        if spec.moe is not None:
            matrices.append(spec.moe.expert_intermediate_size * spec.hidden_size / (1 if self.ep > 1 else self.tp))
        if self.output_bytes < self.act_bytes:  # the head in the weights' format
            matrices.append(spec.vocab_size * spec.hidden_size)
        return max(matrices) * self.act_bytes

    @cached_property
    def stages(self) -> tuple[tuple[int, int], ...]:
        """Layer ranges [first, last) of the pipeline stages, the remainder spread over the first."""
        base, extra = divmod(self.spec.num_layers, self.pp)
        out, start = [], 0
        for s in range(self.pp):
            n = base + (1 if s < extra else 0)
            out.append((start, start + n))
            start += n
        return tuple(out)

    @cached_property
    def stage_kv_groups(self) -> tuple[tuple[KVGroup, ...], ...]:
        return tuple(kv_groups(self.spec, self.layout, a, b) for a, b in self.stages)

    @cached_property
    def stage_weights(self) -> tuple[float, ...]:
        """Weight bytes one device of each pipeline stage holds (its share less what is offloaded to the host)."""
        return tuple(_stage_weight_bytes(self, i) * (1.0 - self.offload_fraction) for i in range(self.pp))

    @cached_property
    def whole_stage_weights(self) -> tuple[float, ...]:
        """Weight bytes one device of each pipeline stage would hold with nothing offloaded."""
        return tuple(_stage_weight_bytes(self, i) for i in range(self.pp))

    @cached_property
    def group_chunk_tokens(self) -> float | None:
        """The prompt tokens one data-parallel attention group takes a step where the engine chunks (its share of the
        step's budget; the whole budget without data-parallel attention): one prompt's chunk sits on one group."""
        return self.prefill_chunk_tokens / self.attention_dp if self.prefill_chunk_tokens else None

    @cached_property
    def kv_share(self) -> float:
        return tensor_parallel_share(self.spec, self.layout, self.tp)

    @cached_property
    def kv_element_bytes(self) -> float:
        """Bytes one cached key or value element takes on one device: its heads' share (`kv_share`), the cache's
        format, spread over the data-parallel attention groups."""
        return self.kv_share * self.kv_bits / 8 / self.attention_dp

    @cached_property
    def ridge(self) -> float:
        """FLOP per byte where the device turns from bandwidth- to compute-bound (peaks x efficiency)."""
        return (self.peak_flops * self.eff.flop_efficiency) / (
            self.hw.memory_bandwidth_bytes_per_s * self.eff.bandwidth_efficiency)




def _stage_weight_bytes(s: Setup, stage: int) -> float:
    c, lp = s.counts, s.counts.layer
    a, b = s.stages[stage]
    moe_layers = sum(s.spec.layer_moe[a:b]) if s.spec.moe is not None else 0
    dense_layers = (b - a) - moe_layers
    q = s.bits_per_weight / 8
    experts = moe_layers * c.num_experts * lp.expert_linear
    linear = dense_layers * c.dense_layer_linear + moe_layers * c.moe_layer_linear - experts
    small = (dense_layers * (lp.attn_small + lp.norms + lp.mlp_small)
             + moe_layers * (lp.attn_small + lp.norms + lp.router + lp.expert_small))
    vocab = 0.0
    if stage == 0 and not s.embedding_on_host:
        vocab += c.embedding * s.embedding_bytes
    if stage == s.pp - 1:
        small += c.final_norm
        # a head tied to the embedding is read from it, unless the embedding is elsewhere (another stage, the host):
        # then the last stage holds a copy
        head = c.lm_head if c.lm_head or (s.pp == 1 and not s.embedding_on_host) else c.vocab_hidden
        vocab += head * s.output_bytes
    return (linear * q + small * s.act_bytes + vocab) / s.tp + experts * s.expert_bits_per_weight / 8 / s.shards


def total_weight_bytes(s: Setup) -> float:
    """All weights of the model once (no replication), in the chosen format."""
    c = s.counts
    experts = c.num_moe_layers * c.num_experts * c.layer.expert_linear
    return ((c.linear - experts) * s.bits_per_weight / 8 + experts * s.expert_bits_per_weight / 8
            + c.small * s.act_bytes + c.embedding * s.embedding_bytes + c.lm_head * s.output_bytes)


def checkpoint_experts_only(spec: ModelSpec, weight_dtype: str) -> bool:
    """Whether `weight_dtype` weights are the model's checkpoint that stores only its routed experts in that format
    (gpt-oss's MXFP4: `checkpoint_modules` experts), so the other linear layers stay 16-bit."""
    return (spec.moe is not None and spec.checkpoint_modules == "experts"
            and spec.checkpoint_dtype == canonical(weight_dtype))


def build_setup(spec: ModelSpec, hw: HardwareSpec, *, weight_dtype: str, group_size: int | None = None,
                activations: str | None = None, kv_dtype: str | None = None, tp: int = 1, pp: int = 1, ep: int = 1,
                attention_dp: int = 1,
                runtime: str = "transformers", layout: str = "transformers", attention: str = "sdpa",
                prefill_chunk_tokens: int | None = None, offload_fraction: float = 0.0,
                efficiency: EfficiencyFactors | None = None, weight_kernel: str | None = None,
                engine: str | None = None, speculative: str | None = None, mixed_prefill: bool | None = None,
                gguf_type: str | None = None, running_from_batch: bool = False,
                max_running: int | None = None, weight_method: str | None = None, server_data_parallel: int = 1,
                compiled: bool = True, sampler: str | None = None, api_servers: int = 1) -> Setup:
    """Resolve one configuration into the analytic model's inputs.

    `runtime` picks the fixed costs per step ("serving": an engine with CUDA graphs; "transformers": eager
    `generate`); the efficiency factors are `efficiency` when given, else this machine's calibration for that
    runtime and weight dtype (hardware `local` only), else the documented defaults. `attention` is the kernel:
    flash, sdpa or eager (eager also materialises the score matrix), or triton: optiplan's kernels, at the shares
    of the peaks they measured on this GPU (`catalog.kernels`), as is `weight_kernel` "triton" for int4/int8.
    Another `weight_kernel` names a kernel of profiles/efficiency.yaml (marlin, tinygemm, ...); without one, the
    kernel `engine` runs for the weight format on the device's backend (its profile), if it names one, or the
    kernel it falls back to where the device refuses that one, for weights made by `weight_method` (awq, gptq; None:
    not known) where the fallback names its methods (vLLM's GPTQ kernel below Marlin's GPUs).
    `mixed_prefill` puts prompt chunks in the decode steps (True) or in steps of their own (False) where the engine's
    default (None) is not what runs (SGLang's --enable-mixed-chunk). `gguf_type` names the GGUF file the engine reads
    the weights from where it is not the one its profile stores the format in (llama.cpp's Q4_0 for int4).
    `running_from_batch`: the deployment's config sets the engine's running cap to the sequences a server runs (a
    plan's configs write vLLM's --max-num-seqs so), which sizes its sampler's profiling peak; else the default cap.
    `max_running`: the running cap per scheduler the deployment sets (vLLM's --max-num-seqs), in place of the
    engine's default: the requests it runs at once and the rows its sampler is profiled over.
    `server_data_parallel`: the data-parallel ranks one server runs (vLLM's --data-parallel-size, which turns its
    fused all-reduce off; `attention_dp` where not given); `compiled`: the engine runs its compiled graphs (False: a
    config's --enforce-eager, no fused all-reduce either); `sampler`: the sampler vLLM's start-up profiling peaks with
    (flashinfer or native: `engine_memory.engine_sampler_row_bytes`); `api_servers`: the front-end processes the
    server takes its requests through (vLLM's --api-server-count), which share each request's host time."""
    d16 = default_16bit(hw)
    # a checkpoint that keeps only its routed experts in `weight_dtype` (gpt-oss's MXFP4): the other linear layers are
    # 16-bit, or the format the engine's file keeps them in (llama.cpp's MXFP4_MOE GGUF: Q8_0), and everything below
    # resolves for them; the experts' format and their kernel's share come beside them
    expert_dtype = canonical(weight_dtype) if checkpoint_experts_only(spec, weight_dtype) else None
    if expert_dtype:
        weight_dtype = (engine_fact(engine, "checkpoint_other_formats") or {}).get(expert_dtype) or d16
    if activations is None and engine is not None:  # the engine's GEMM for the format (llama.cpp's int8 dot products)
        activations = engine_activations(engine, weight_dtype, hw)
    compute = compute_dtype(weight_dtype, activations, d16)
    act = "fp32" if compute == "fp32" else d16
    own_kernel = weight_kernel is None  # the engine's own GEMM for the format, not one a plan swaps in (triton)
    if own_kernel:
        weight_kernel = engine_weight_kernel(engine, weight_dtype, hw, weight_method)
    eff = efficiency or calibrated_efficiency(hw, runtime, weight_dtype, act)
    gemm_peak = None  # the documented compute peak, unless the engine's own GEMM runs at another (below)
    # the routed experts' GEMM at the linear layers' share unless the factors (a caller's, the engine's) state theirs
    expert_efficiency = eff.expert_flop_efficiency if eff is not None and spec.moe is not None else None
    if eff is None:  # the documented defaults, at the share of their compute rate the engine reaches
        eff = default_efficiency(
            hw, weight_dtype, compute, runtime, kv_dtype or act, None if weight_kernel == "triton" else weight_kernel,
            act, paged_cache=engine is None or engine_pages_cache(engine))
        # the share the engine's grouped GEMM over the routed experts reaches (vLLM's Triton fused_moe, its Marlin MoE)
        moe = engine_moe_flop_share(engine, hw, expert_dtype)
        moe_key = f"moe_flop_share_{expert_dtype}" if expert_dtype and moe != engine_moe_flop_share(engine, hw) \
            else "moe_flop_share"
        if moe is not None and spec.moe is not None:
            expert_efficiency = min(eff.flop_efficiency * moe, 1.0)
        gemm_peak = kernel_peak_tflops(engine, weight_dtype, compute, hw)  # its GEMM's own peak, share, bound
        eff = at_kernel_rate(at_engine_share(eff, engine, hw), engine, weight_dtype, compute, hw, gemm_peak)
        if expert_efficiency is not None:
            eff = eff.model_copy(update={
                "expert_flop_efficiency": expert_efficiency,
                "source": f"{eff.source} Routed experts at {moe:g} of the documented rate: {engine}'s grouped MoE "
                          f"GEMM (its profile's {moe_key})."})
    # MoE, latent-attention and state layers' fixed costs and the experts' share only for models with such layers
    stateful = spec.state is not None and spec.state_layers > 0
    if eff.expert_bandwidth_efficiency and not expert_dtype:  # a caller's, for a checkpoint this one is not
        eff = eff.model_copy(update={"expert_bandwidth_efficiency": None})
    if (eff.moe_layer_overhead_s or eff.expert_flop_efficiency) and not spec.moe or \
            (eff.mla_layer_overhead_s and not spec.mla) or (eff.state_layer_overhead_s and not stateful):
        eff = eff.model_copy(update={"moe_layer_overhead_s": eff.moe_layer_overhead_s if spec.moe else 0.0,
                                     "expert_flop_efficiency": eff.expert_flop_efficiency if spec.moe else None,
                                     "mla_layer_overhead_s": eff.mla_layer_overhead_s if spec.mla else 0.0,
                                     "state_layer_overhead_s": eff.state_layer_overhead_s if stateful else 0.0})
    measured = {}
    if "triton" in (attention, weight_kernel):
        shares = kernel_shares(hw.id)
        if shares is None:
            raise RequestError(f"optiplan's Triton kernels were never measured on {hw.id}: run benchmarks/gpu/run.sh "
                               f"there and keep its JSON as profiles/kernels/{hw.id}.json")
        if attention == "triton":
            measured.update(attention_efficiency=shares.prefill_attention, kv_bandwidth_efficiency=shares.decode_attention)
        if weight_kernel == "triton":
            measured["weight_bandwidth_efficiency"] = shares.gemm[weight_dtype]
    attend = attention_dtype(compute, kv_dtype or act, act)
    if attend not in hw.peak_tflops:  # a device without that rate: attention at the linear layers' rate and share
        attend = compute
    storage = ({"format": gguf_type} if gguf_type else engine_storage(engine, weight_dtype)) if group_size is None \
        else None
    weights = weight_format(weight_dtype, engine_group_size(engine, weight_dtype) if group_size is None else group_size)
    bits = gguf_bits(spec, storage["format"]) if storage and weights.quantized else None
    if bits is not None:  # the engine's file (GGUF): its block types, embedding and head included
        weights = replace(weights, file_bits=bits.linear, embedding_bits=bits.embedding, output_bits=bits.output)
    elif weights.quantized:  # the kernel's packed scales and zero points (tinygemm: a bf16 pair per group)
        weights = replace(weights, **weight_kernel_group_format(weight_kernel))
        # the head in the weights' format too where the engine's quantizer converts it (gpt-fast); a tied head stays
        if engine_quantizes_head(engine, weight_dtype) and not spec.tie_word_embeddings:
            weights = replace(weights, output_bits=weights.bits_per_weight(spec.hidden_size))
    expert_weights = expert_share = None
    if expert_dtype:
        expert_weights = weight_format(expert_dtype, group_size)
        expert_share = eff.expert_bandwidth_efficiency
        if expert_share is None:  # the format's MoE kernel, shown beside the other factors
            expert_share, kernel = expert_bandwidth_share(hw, engine, expert_dtype, compute, runtime)
            eff = eff.model_copy(update={"expert_bandwidth_efficiency": expert_share, "source": (
                f"{eff.source} Routed experts ({expert_dtype}) read at {expert_share:.2f} of the peak bandwidth: "
                + (f"{engine}'s kernel for them, {kernel}" if kernel
                   else f"the {hw.kind} devices' share for {expert_dtype}")
                + " (profiles/efficiency.yaml).")})
    # an engine whose data-parallel groups each schedule their own budget takes that many budgets a step
    groups = attention_dp if engine_budget_per_group(engine) else 1
    if prefill_chunk_tokens:
        prefill_chunk_tokens *= groups
    budget = engine_chunk_budget(engine, None, hw, tp * pp, spec) if engine and runtime == "serving" else None
    graphs = engine_graphs.prefill_graph_tokens(engine, spec, hw, prefill_chunk_tokens or budget, pp, attention_dp,
                                            speculative) if runtime == "serving" else 0
    pools = engine_window_pools(engine, spec.model_type, hw) if layout == "serving" else SHARED_POOL
    if pools[0] == "none":  # an engine that applies no window to the model (llama.cpp's llama GGUF of Mistral)
        spec, pools = spec.model_copy(update={"layer_windows": (None,) * len(spec.layer_windows)}), SHARED_POOL
    return Setup(
        spec=spec, counts=param_counts(spec), hw=hw, tp=tp, pp=pp, ep=ep, attention_dp=attention_dp,
        weights=weights, expert_weights=expert_weights, expert_weight_share=expert_share,
        act_bytes=bytes_per_element(act),
        kv_bits=kv_bits(kv_dtype or act), compute_dtype=compute, eff=eff, layout=layout,
        window_pools=pools,
        eager_attention=attention == "eager", prefill_chunk_tokens=prefill_chunk_tokens,
        step_tokens=prefill_chunk_tokens or (budget * groups if budget else None),
        attention_dtype=attend, expert_flop_efficiency=expert_efficiency,
        attention_efficiency=measured.pop("attention_efficiency", None) or
        attention_flop_efficiency(hw, eff, compute, attend) * attention_kernel_factor(attention), **measured,
        offload_fraction=offload_fraction, host_link_bytes_per_s=(hw.host_link_gbps or DEFAULT_HOST_LINK_GBPS) * 1e9,
        host_layers=(layers := HostLayers(**host) if hw.kind == "gpu" and (host := engine_host_layers(engine)) else None),
        # the engine keeps the caches of the layers it computes on the host there: about the weights' share of them
        host_layer_share=offload_fraction if layers is not None else 0.0,
        square_mask=engine_square_mask(engine), math_decode_attention=engine_math_decode_attention(engine),
        max_running=(max_running * attention_dp if max_running
                     else engine_max_running(engine, hw, tp * pp, attention_dp)),
        max_running_set=max_running is not None, running_pool=engine_running_pool(engine),
        request_admit_share=engine_request_admit_share(engine),
        embedding_on_host=hw.kind == "gpu" and engine_embedding_on_host(engine),
        first_token_decoded=engine_decodes_first_token(engine),
        # the engine's own kernel in its own runtime: a plan's Triton GEMM, or compiling transformers (inductor fuses
        # the cast), copies nothing
        casts_whole_weight=compute in ("bf16", "fp16", "fp32") and own_kernel and engine is not None
        and runtime == engine_runtime(engine) and engine_casts_whole_weight(engine, weight_dtype),
        gemm_peak_tflops=gemm_peak, running_ceiling=engine_fact(engine, "max_running_ceiling"),
        recurrent_state_bytes=bytes_per_element(d) if (d := recurrent_state_dtype(engine, spec.model_type)) else None,
        dequantize_rows=dequantize_pass(engine, weight_dtype, hw) if own_kernel and weights.quantized else None,
        mixed_prefill=engine_mixes_prefill(engine, attention_dp, speculative) if mixed_prefill is None else mixed_prefill,
        schedules_ahead=engine_schedules_ahead(engine, speculative, pp, spec.model_type),
        cache_margin_bytes=(engine_fact(engine, "cache_margin_mib") or 0) * 2**20 if hw.kind == "gpu" else 0.0,
        kv_memory=engine_kv_memory(engine, hw, tp * pp, attention_dp, speculative,
                                   graph_mib=engine_graphs.prefill_graph_reserve_mib(engine, spec, graphs)),
        sampler_row_bytes=engine_sampler_row_bytes(engine, hw, spec.vocab_size, sampler),
        workspace_bytes=engine_workspace_bytes(engine, hw, tp, pp, max(server_data_parallel, attention_dp))
        if compiled else 0.0,
        sampler_rows=None if running_from_batch else max_running or engine_max_running(engine, hw, tp * pp),
        request_host_s=engine_request_host_s(engine) / api_servers, api_servers=api_servers,
        first_token_latency_s=engine_first_token_latency_s(engine, tp * pp * attention_dp),
        prefill_host_s=engine_graphs.eager_prefill_host_s(spec, engine) if runtime == "serving" else 0.0,
        prefill_graph_tokens=graphs, fused_allreduce_tokens=engine_fusions.fused_allreduce_tokens(
            engine, spec, hw, tp, pp, attention_dp) if runtime == "serving" else 0,
        prefill_graph_host_s=engine_graphs.prefill_graph_host_s(spec, engine) if graphs else 0.0,
        # transformers' own modeling code runs the model: its engine, or a plan's (no engine: eager `generate`, or
        # compiled, or its continuous batching)
        dense_experts=(engine is None or engine_runtime(engine) == "transformers") and dense_experts(spec.model_type))
