"""Spreading a model over several devices. The baseline spreads it as its engine does by default (`profile` the
same): consecutive layers over the devices for transformers (`device_map="auto"`) and llama.cpp, tensor parallel
within each node for a serving engine (`search.engine_baseline`); these replace that layout with another."""

from __future__ import annotations

import weakref

from ...analytic.memory import per_device_bytes
from ...catalog.engine_refusals import attention_split_refusal
from ...catalog.engines import engine_dp_shares_experts, engine_splits_layers
from ...catalog.hardware import devices_per_host, devices_per_node
from ..disaggregation import best_layout
from ..state import PlanState, to_setup
from . import Context, Technique, register
from .quantization import whole_experts

GROUP = "parallelism"


def _per_node(ctx: Context) -> int:
    return devices_per_node(ctx.hw)


# The engines that run pipeline stages (the pipeline-parallel technique's); the others (TGI) shard within a server
PIPELINE_ENGINES = ("vllm", "sglang", "trtllm", "transformers", "llama.cpp")


def _stages(ctx: Context) -> bool:
    return ctx.workload.engine is None or ctx.workload.engine in PIPELINE_ENGINES


def _split_refusal(ctx: Context, size: int) -> str | None:
    """Why the model's attention does not split over `size` tensor-parallel devices under the workload's engine
    (`engine_refusals.attention_split_refusal`: TGI divides KV heads, vLLM and SGLang divide or replicate them)."""
    return attention_split_refusal(ctx.workload.engine, ctx.spec.num_heads, ctx.spec.num_kv_heads, size)


def _tp_size(ctx: Context) -> int:
    """A node's devices; for an engine without pipeline stages (TGI), the largest group of them the attention splits
    over, a server each (its launcher shards over every GPU it sees, and cannot start where the KV heads do not
    divide)."""
    size = min(ctx.devices, _per_node(ctx))
    if _stages(ctx):
        return size
    return max(n for n in range(1, size + 1) if not ctx.devices % n and (n == 1 or _split_refusal(ctx, n) is None))


def _tp_check(ctx: Context) -> str | None:
    tp = _tp_size(ctx)
    if why := _split_refusal(ctx, tp):
        return why
    if ctx.devices % tp:
        return f"{ctx.devices} devices are not whole nodes of {tp}"
    return None


def _tp(state: PlanState, ctx: Context) -> PlanState:
    """Tensor parallel over the group, pipeline stages over the groups; an engine without stages runs each group as a
    server of its own (replicas)."""
    tp = _tp_size(ctx)
    layout = {"pp": ctx.devices // tp} if _stages(ctx) else {"pp": 1, "replicas": ctx.devices // tp}
    return state.with_(tp=tp, ep=whole_experts(state, ctx, tp, tp), attention_dp=1, **layout)


def _over_pcie(ctx: Context) -> bool:
    """Whether the node's devices talk over PCIe, not NVLink or Infinity Fabric: there a tensor-parallel layer's two
    all-reduces cost enough that pipeline stages compete inside one node (vLLM's docs/serving/parallelism_scaling.md:
    "if the GPUs on the node do not have NVLINK interconnect (e.g. L40S), leverage pipeline parallelism instead of
    tensor parallelism for higher throughput and lower communication overhead"); the plan search prices both."""
    return ctx.hw.interconnect is not None and ctx.hw.interconnect.over_pcie


def _without_tp(ctx: Context) -> bool:
    """Whether tensor parallel is left out (--without tensor-parallel): the baseline then splits the layers over the
    devices (`search.engine_baseline`); replicas are then of one device each (replicas whose layers split over
    several devices, or disaggregated instances of them, are launches no engine profile here confirms)."""
    return "tensor-parallel" in ctx.workload.denied_techniques


def _pp_check(ctx: Context) -> str | None:
    if engine_splits_layers(ctx.workload.engine):
        return f"{ctx.workload.engine} splits the layers over the devices by default: the baseline runs them so"
    if _without_tp(ctx):  # the baseline splits the layers already: the step changes nothing (its `unchanged`)
        return None
    if ctx.devices <= _per_node(ctx) and _split_refusal(ctx, ctx.devices) is None and not _over_pcie(ctx):
        return "tensor parallel covers one node with less latency; pipeline stages only pay across nodes"
    if ctx.devices > _per_node(ctx):
        return "tensor parallel already adds pipeline stages across nodes (tensor parallel inside each node)"
    return None


# `_replica_devices`'s answer for a state: a search prices its stacks' data-parallel step at several replica sizes on
# the state the steps before it reached (one object, `search.SizedMemo`), in one context but for its replica size,
# which the answer does not read. The answer is kept with what it read of the context (the device count, the device
# and the workload, the same objects), and is used only where those are (PlanState compares by identity: eq=False)
_SMALLEST: weakref.WeakKeyDictionary[PlanState, tuple[tuple, int | None]] = weakref.WeakKeyDictionary()


def _replica_devices(state: PlanState, ctx: Context) -> int | None:
    """Devices per replica: the fewest (a power of two within one node, dividing the devices and the attention
    heads) on which the weights, in the plan's formats so far, leave room for the cache; None when only the whole
    set holds the model. Where the engine keeps a MoE model's experts over every device (`_data_parallel`), a
    replica's share of the experts is its share of the devices."""
    read = (ctx.devices, id(ctx.hw), id(ctx.workload))
    kept = _SMALLEST.get(state)
    if kept is not None and kept[0] == read:
        return kept[1]
    answer = _fewest_replica_devices(state, ctx)
    _SMALLEST[state] = (read, answer)
    return answer


def _fewest_replica_devices(state: PlanState, ctx: Context) -> int | None:
    size = 1
    while size < ctx.devices and (size == 1 or not _without_tp(ctx)):
        if size <= _per_node(ctx) and not ctx.devices % size and _split_refusal(ctx, size) is None:
            one = _data_parallel(state, ctx, size)
            weights, _, act = per_device_bytes(to_setup(one), 1, ctx.workload.context_needed,
                                               ctx.workload.prompt_tokens_p95)
            if weights + act + ctx.hw.runtime_overhead_bytes < REPLICA_WEIGHT_SHARE * ctx.hw.memory_bytes:
                return size
        size *= 2
    return None


def _data_parallel(state: PlanState, ctx: Context, size: int) -> PlanState:
    """The devices in data-parallel groups of `size`, each tensor parallel: copies of the whole model, or, for a MoE
    model on an engine whose data parallelism keeps the experts together (vLLM, `engine_dp_shares_experts`: its
    expert layers one tensor-parallel group over every device), data-parallel attention over experts sliced across
    all the devices of a node, each step's expert layers synchronised over the groups; across nodes, one server per
    replica (the configs start them apart, behind a load balancer), each with its own copy of the experts."""
    # (vLLM's layout slices the experts over every device: tensor parallel, left out where asked)
    if ctx.spec.moe is not None and engine_dp_shares_experts(ctx.workload.engine) and ctx.devices <= _per_node(ctx) \
            and not _without_tp(ctx):
        return state.with_(tp=size, pp=1, ep=whole_experts(state, ctx, size, ctx.devices),
                           attention_dp=ctx.devices // size, replicas=1, offload_fraction=0.0)
    return state.with_(tp=size, pp=1, ep=whole_experts(state, ctx, size, size), attention_dp=1,
                       replicas=ctx.devices // size, offload_fraction=0.0)


# A replica must leave at least a third of each device to its KV cache: replicas that barely hold their weights
# serve few sequences each, and one model over all the devices does better
REPLICA_WEIGHT_SHARE = 2 / 3


def _replica_sizes(state: PlanState, ctx: Context) -> list[int]:
    """The replica sizes a stack may take: from the fewest devices that hold the model (`_replica_devices`) up,
    doubling, to one node, each dividing the devices into two replicas or more and the attention heads; none where
    only the whole set holds it; one device each without tensor parallel."""
    smallest = _replica_devices(state, ctx)
    if smallest is None or _without_tp(ctx):
        return [] if smallest is None else [smallest]
    largest = min(_per_node(ctx), ctx.devices // 2)
    return [size for size in (smallest << k for k in range(8)) if size <= largest and not ctx.devices % size
            and (size == smallest or _split_refusal(ctx, size) is None)]


def replica_size_choices(ctx: Context) -> list[int | None]:
    """The sizes the search prices a stack with data-parallel replicas at (`Context.replica_size`): the fewest devices
    that hold the model (None), and each larger power of two up to a node; a size a stack's weights do not allow
    falls back to the fewest (the search drops the repeat). The goal decides, with the stack's later steps applied: an
    8B on 32 H100s for chat latency takes eight copies of four, each request's prefill and tokens split over more
    devices, and one device a copy for throughput; SGLang's mixed chunks had reversed a choice made before them."""
    if _without_tp(ctx) or ctx.devices < 2:
        return [None]
    largest = min(_per_node(ctx), ctx.devices // 2)
    return [None, *(1 << k for k in range(1, 8) if (1 << k) <= largest)]


def _dp(state: PlanState, ctx: Context) -> PlanState:
    """Replicas where a smaller group holds the model in the plan's formats, of the size the search weighs
    (`Context.replica_size`, where the stack's weights allow it; else the fewest devices that hold it); otherwise
    nothing changes (the step is dropped as one that changes nothing here)."""
    sizes = _replica_sizes(state, ctx)
    if not sizes:
        return state
    return _data_parallel(state, ctx, ctx.replica_size if ctx.replica_size in sizes else sizes[0])


def _ep_check(ctx: Context) -> str | None:
    experts = ctx.spec.moe.num_experts if ctx.spec.moe else 0
    if experts % ctx.devices:
        return f"{experts} experts do not split evenly over {ctx.devices} devices"
    return None


def _ep_tp_check(ctx: Context) -> str | None:
    if _without_tp(ctx):
        return "its attention and dense layers are tensor parallel, which is left out as asked"
    tp = _tp_size(ctx)
    if ctx.workload.engine == "trtllm" and ctx.devices > tp:
        return ("TensorRT-LLM runs attention data parallel over all ranks (enable_attention_dp) or tensor parallel "
                "over all of them, not tensor parallel inside each node and data parallel across nodes")
    return _tp_check(ctx) or _ep_check(ctx)


def _ep_tp(state: PlanState, ctx: Context) -> PlanState:
    """Attention tensor parallel inside each node (data parallel across nodes), experts over all the devices."""
    tp = _tp_size(ctx)
    return state.with_(tp=tp, pp=1, ep=ctx.devices, attention_dp=ctx.devices // tp, replicas=1)


def _pd_check(ctx: Context) -> str | None:
    if _without_tp(ctx):
        return "its instances are tensor parallel over their devices, which is left out as asked"
    if ctx.devices > devices_per_host(ctx.hw):
        return (f"{ctx.devices} devices span hosts: disaggregated instances are planned inside one host, whose roles "
                "serve.sh starts together and where the prompt's cache moves over NVLink; across hosts it moves over "
                "RDMA (Mooncake or NIXL on InfiniBand) or a GB200 rack's NVLink between trays, launches optiplan does "
                "not render")
    if ctx.workload.output_tokens_mean <= 1:
        return "the workload decodes no tokens after the first"
    return None


def _pd(state: PlanState, ctx: Context) -> PlanState:
    """Prefill and decode instances of the fewest devices that hold the model, or more where that serves more
    requests within the SLOs (`disaggregation.best_layout`); unchanged where fewer than two instances fit."""
    smallest = _replica_devices(state, ctx)
    if smallest is None:
        return state
    sizes = [size for size in (smallest << k for k in range(8)) if size <= ctx.devices // 2
             and not ctx.devices % size and _split_refusal(ctx, size) is None]
    setups = {size: to_setup(state.with_(tp=size, pp=1, ep=1, attention_dp=1, replicas=1, offload_fraction=0.0))
              for size in sizes}
    layout = best_layout(setups, ctx.workload, ctx.devices)
    if layout is None:
        return state
    size, prefill = layout
    return state.with_(tp=size, pp=1, ep=1, attention_dp=1, replicas=ctx.devices // size, prefill_instances=prefill,
                       offload_fraction=0.0)


register(
    Technique(
        id="tensor-parallel", engines=("vllm", "sglang", "tgi", "trtllm", "transformers"),
        name="Tensor parallel", family="parallelism", group=GROUP,
        summary="Each layer's matrices split across the devices of a node (two all-reduces per layer); "
                "pipeline stages across nodes when there are more devices than one node holds.",
        transform=_tp, hardware=("multi-device", "interconnect"), check=_tp_check,
        unchanged="a serving engine's baseline over several GPUs runs tensor parallel already (as `profile` spreads "
                  "it): the layout the other parallelisms are weighed against",
        params=lambda c: {"tensor_parallel_size": _tp_size(c), ("pipeline_parallel_size" if _stages(c) else
                                                                "data_parallel_size"): c.devices // _tp_size(c)}),
    Technique(
        id="pipeline-parallel", engines=PIPELINE_ENGINES,
        name="Pipeline parallel", family="parallelism", group=GROUP,
        summary="Consecutive layers on consecutive devices, micro-batches flowing through: little communication. "
                "Bandwidth-bound decode gains no throughput from it (each micro-batch re-reads its stage's "
                "weights); it is what remains where attention heads do not split over the devices.",
        transform=lambda s, c: s.with_(tp=1, pp=c.devices, ep=1, attention_dp=1), hardware=("multi-device",),
        check=_pp_check, unchanged="the baseline already splits the layers over the devices in sequence: pipeline "
                                   "stages are what it runs",
        params=lambda c: {"pipeline_parallel_size": c.devices}),
    Technique(
        id="data-parallel", engines=("vllm", "sglang", "trtllm", "tgi"),
        name="Data-parallel replicas", family="parallelism", group=GROUP,
        summary="Several copies of the model, each tensor-parallel over the fewest devices that hold it with room "
                "for its cache (or over more, up to a node, where the goal gains: a copy's first token and tokens come "
                "sooner over more devices), serving their share of the requests: throughput scales with the copies "
                "and no step crosses a node (405B on 16 H100: two TP8 copies instead of TP8 x PP2). Inside a node vLLM "
                "copies only a MoE model's attention and dense layers: its experts stay one tensor-parallel group "
                "over all the node's devices. TensorRT-LLM and TGI have no data-parallel option for it: each copy is "
                "a server of its own behind a load balancer.",
        # any count of devices splits into replicas of one device each; a larger replica must divide the devices and
        # the attention heads (`_replica_devices`): the sizes are the prediction's data and tensor parallel
        transform=_dp, hardware=("multi-device",),
        # the replicas' size is the search's: a copy's tensor parallel and the copies (vLLM's data-parallel ranks of a
        # MoE model, their experts one group over all of them, are attention groups)
        predicted_params=lambda c, p: {"tensor_parallel_size": p.tensor_parallel,
                                       "data_parallel_size": max(p.data_parallel, p.attention_data_parallel)},
        unchanged="no smaller group of the devices (one device, where tensor parallel is left out) holds the model in "
                  "the plan's formats with a third of each device left to its cache: replicas that barely hold their "
                  "weights would serve few sequences each"),
    Technique(
        id="expert-parallel", engines=("vllm", "sglang", "trtllm"),
        name="Expert parallel", family="parallelism", group=GROUP,
        summary="Routed experts split whole across the devices, attention data parallel: each device holds the "
                "attention weights and its share of the sequences' caches (the fewest cache copies: MLA's latent "
                "cache does not split over tensor-parallel heads), tokens dispatched to their experts all-to-all. "
                "A step waits for the device whose experts the batch touches most.",
        transform=lambda s, c: s.with_(tp=1, pp=1, ep=c.devices, attention_dp=c.devices, replicas=1),
        hardware=("multi-device", "interconnect"), model=("moe",), check=_ep_check,
        params=lambda c: {"expert_parallel_size": c.devices, "data_parallel_attention": True}),
    Technique(
        id="expert-parallel-tp-attention", engines=("vllm", "sglang", "trtllm"),
        name="Expert parallel, tensor-parallel attention", family="parallelism", group=GROUP,
        summary="Routed experts split whole across the devices while attention and the dense layers stay tensor "
                "parallel inside each node (data parallel across nodes): every device of a node holds every token, "
                "so the MoE output is all-reduced like a dense MLP's with no dispatch inside the node, and each "
                "expert's matmuls keep their full width instead of 1/tp slices.",
        transform=_ep_tp, hardware=("multi-device", "interconnect"), model=("moe",), check=_ep_tp_check,
        params=lambda c: {"expert_parallel_size": c.devices, "tensor_parallel_size": _tp_size(c),
                          "data_parallel_attention": c.devices // _tp_size(c) > 1}),
    Technique(
        id="pd-disaggregation", engines=("sglang", "trtllm"),
        name="Prefill/decode disaggregation", family="parallelism", group=GROUP,
        summary="Instances that only prefill and instances that only decode, the prompt's cache sent between them: "
                "decode steps carry no prompt chunks, so time per token is the plain decode step's, for the cache "
                "transfer in the time to first token and the devices the prefill instances take from decoding "
                "(DistServe, OSDI '24; a trade of capacity for latency, not a throughput gain). Split as DistServe "
                "places instances: the most requests per second within the SLOs.",
        effect_source="DistServe (arXiv 2401.09670): 4.48x more requests within SLOs than vLLM; vLLM's "
                      "docs/features/disagg_prefill.md: 'Disaggregated prefill DOES NOT improve throughput'",
        transform=_pd, hardware=("multi-device", "interconnect"), check=_pd_check,
        moving_parts=2,  # a router, and instances of two roles to size and restart apart
        # the instances the search chose: their roles and each one's tensor parallel (the configs start them so)
        predicted_params=lambda c, p: {"prefill_instances": p.prefill_instances,
                                       "decode_instances": p.data_parallel - p.prefill_instances,
                                       "tensor_parallel_size": p.tensor_parallel},
        unchanged="no split of the devices into prefill and decode instances serves more requests per second within "
                  "the workload's SLOs than the same instances prefilling and decoding together (DistServe's "
                  "criterion: prompts short enough, or SLOs loose enough, that their chunks in the decode steps, or "
                  "their steps between them where the engine runs prompts first, cost less than the devices taken "
                  "from decoding)"),
    family="parallel")
