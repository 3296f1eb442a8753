"""The plan state: every knob the techniques turn (formats, parallelism, serving features, speculative decoding,
...), the baseline a plan starts from, and its resolution into the analytic model's `Setup`.

Each technique is a pure function PlanState -> PlanState, so a plan's predicted effect is the composition of its
steps (`predict.evaluate` turns any state into a `Prediction`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..analytic.chunked_attention import with_chunked_decode
from ..analytic.efficiency import prefill_chunk_tokens
from ..analytic.kvcache import cache_tokens_held, layout_for_runtime
from ..analytic.setup import Setup, build_setup
from ..catalog.engine_memory import engine_image_sampler
from ..catalog.engine_refusals import runs_eager_attention
from ..catalog.engines import engine_api_servers_option, engine_chunk_budget, engine_runtime, holds_used_cache
from ..catalog.hardware import default_16bit, unquantized_dtype
from ..catalog.served import served_checkpoint_dtype, server_dp_ranks
from ..schema import HardwareSpec, ModelSpec
from ..schema.workload import Workload


@dataclass(frozen=True)
class Speculation:
    method: str  # draft, ngram, mtp
    num_tokens: int  # tokens proposed per step (gamma)
    acceptance: float  # probability each proposed token is accepted (alpha)
    draft: ModelSpec | None = None


@dataclass(frozen=True, eq=False)
class PlanState:
    """The configuration a plan builds, step by step."""

    spec: ModelSpec
    hw: HardwareSpec
    devices: int
    tp: int = 1
    pp: int = 1
    ep: int = 1  # experts split whole over this many devices
    attention_dp: int = 1  # attention data-parallel groups (sequences spread over them), each tp devices
    replicas: int = 1  # data-parallel copies of the model, each on devices / replicas devices
    prefill_instances: int = 0  # of the replicas, those that only prefill (disaggregated serving)
    weight_dtype: str = "bf16"
    group_size: int | None = None
    activations: str | None = None
    kv_dtype: str | None = None
    paged_kv: bool = False
    continuous_batching: bool = False
    prefix_caching: bool = False
    chunked_prefill: bool = False
    mixed_prefill: bool | None = None  # prompt chunks in the decode steps (SGLang's --enable-mixed-chunk); None: default
    attention: str = "sdpa"  # sdpa, flash, eager, triton (optiplan's kernels, where measured on this GPU)
    weight_kernel: str | None = None  # "triton": optiplan's weight-only GEMM, where measured on this GPU
    weight_method: str | None = None  # how int4 weights were made (awq, gptq): an engine may run each with its own GEMM
    engine: str | None = None  # the serving engine (its kernels' efficiencies, `profiles/engines/`)
    max_seq_len: int | None = None  # the longest sequence its configs admit (the workload's), which some kernels key on
    graphs: bool = False  # CUDA graphs / torch.compile: per-step launch overhead removed
    offload_fraction: float = 0.0
    # the front-end processes the configs start for each data-parallel rank (an engine core: the attention group's or
    # the replica's): vLLM's --api-server-count over its ranks, one each unless a plan scales them out
    api_servers_per_rank: int = 1
    speculation: Speculation | None = None
    quality_loss_pct: float = 0.0
    training: frozenset[str] = field(default_factory=frozenset)  # training techniques applied

    @property
    def default_16bit(self) -> str:
        return default_16bit(self.hw)

    def with_(self, **changes) -> PlanState:
        return replace(self, **changes)


def baseline_state(spec: ModelSpec, hw: HardwareSpec, devices: int, engine: str | None = None) -> PlanState:
    """The model as published on `devices` devices with eager transformers `generate`: its
    checkpoint's weights (a published fp8 checkpoint stays fp8 where the device has fp8 and `engine` runs it, else it
    is dequantized), 16-bit otherwise (fp32 where the device has no 16-bit rate or a slower one), SDPA attention, a
    contiguous cache per slot, layers split over the devices in sequence (`device_map="auto"`); eager attention where
    transformers has no SDPA for the model and runs it (`runs_eager_attention`)."""
    state = PlanState(spec=spec, hw=hw, devices=devices, tp=1, pp=min(devices, spec.num_layers),
                      attention="eager" if runs_eager_attention(engine, spec.model_type) else "sdpa")
    return state.with_(weight_dtype=served_checkpoint_dtype(spec, hw, engine) or unquantized_dtype(hw))


def to_setup(state: PlanState) -> Setup:
    """Resolve a state into the analytic model's inputs, through the one builder profile uses too. An engine with a
    runtime of its own (a serving engine, llama.cpp) runs it and keeps its cache layout; transformers runs eager
    `generate` until a plan compiles it or pages its cache."""
    own = state.engine is not None and engine_runtime(state.engine) != "transformers"
    runtime = engine_runtime(state.engine) if own else "serving" if state.graphs else "transformers"
    return with_chunked_decode(build_setup(
        state.spec, state.hw, weight_dtype=state.weight_dtype, group_size=state.group_size,
        activations=state.activations, kv_dtype=state.kv_dtype, tp=state.tp, pp=state.pp, ep=state.ep,
        attention_dp=state.attention_dp, runtime=runtime,
        layout="serving" if state.paged_kv else layout_for_runtime(runtime) if own else "transformers",
        attention=state.attention,
        prefill_chunk_tokens=engine_chunk_budget(state.engine, prefill_chunk_tokens("serving"), state.hw,
                                                 state.tp * state.pp, state.spec) if state.chunked_prefill else None,
        offload_fraction=state.offload_fraction, weight_kernel=state.weight_kernel, engine=state.engine,
        weight_method=state.weight_method,
        speculative=state.speculation.method if state.speculation else None, mixed_prefill=state.mixed_prefill,
        # the configs a plan writes cap each server at the sequences it runs (vLLM's --max-num-seqs), baseline
        # included, which sizes the engine's profiling peak (`memory.sampler_bytes`)
        running_from_batch=True,
        # replicas sharing a node run as one server's data-parallel ranks (vLLM's --data-parallel-size), a server per
        # node where they fill several; without CUDA graphs the configs run the engine eagerly (--enforce-eager)
        server_data_parallel=server_dp_ranks(state.spec, state.hw, state.engine, state.devices, state.replicas),
        # priced at the engine's image the configs run, with its sampler (vLLM's before 0.12: FlashInfer's)
        compiled=state.graphs, sampler=engine_image_sampler(state.engine, state.hw),
        # a server of data-parallel attention ranks takes its requests through a front-end process per rank where the
        # engine has the option (the configs' --api-server-count), or as many more as a plan starts for each
        api_servers=state.attention_dp * state.api_servers_per_rank if engine_api_servers_option(state.engine) else 1),
        state.engine, state.max_seq_len)


def kv_reserved_tokens(state: PlanState, workload: Workload) -> float:
    """Cache tokens one sequence occupies: paged caches hold what is used (`cache_tokens_held`), unless the engine admits
    a request only with room for its whole length (TensorRT-LLM's GUARANTEED_NO_EVICT); contiguous ones reserve the
    longest sequence."""
    if holds_used_cache(state.engine, state.paged_kv):
        return cache_tokens_held(workload.prompt_tokens_mean, workload.output_tokens_mean, on_demand=True)
    return workload.context_needed
