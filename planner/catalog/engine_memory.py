"""How an engine sizes its memory on a GPU by default: the share it gives its KV cache (`engine_kv_memory`), the
peak of its start-up profiling run (`engine_sampler_row_bytes`) and what its tensor-parallel communication holds
beside the device's runtime (`engine_workspace_bytes`), from each profile's facts (profiles/engines/)."""

from __future__ import annotations

from ..schema import HardwareSpec
from .engines import device_fact, engine_fact
from .hardware import within_one_host

MIB = 2**20


def engine_kv_memory(engine: str | None, hw: HardwareSpec, devices: int = 1, attention_dp: int = 1,
                     speculative: str | None = None, graph_mib: float = 0.0) -> tuple[str, float] | None:
    """How much of a GPU the engine gives its KV cache by default (its profile's `kv_memory`), as (kind, value):
    ("device", share): the engine runs within that share of the device, weights, activations and cache together
    (vLLM's --gpu-memory-utilization); ("free", share): the cache takes that share of what the weights and
    activations leave (TensorRT-LLM's free_gpu_memory_fraction); ("reserve", bytes): weights and cache take all but
    a reserve (SGLang's --mem-fraction-static: `sglang_reserve_bytes`). `devices`: the tensor x pipeline group;
    `speculative`: the method, if any; `graph_mib`: what its prefill graphs take, where they are on
    (`engine_graphs.prefill_graph_reserve_mib`). None where the profile states none or on another kind of device."""
    fact = engine_fact(engine, "kv_memory")
    if not fact or hw.kind != "gpu":
        return None
    if fact["of"] == "reserve":
        return "reserve", sglang_reserve_bytes(engine, fact, hw, devices, attention_dp, speculative, graph_mib)
    return fact["of"], float(fact["share"])


def stated_kv_memory(default: tuple[str, float], share: float, hw: HardwareSpec) -> tuple[str, float]:
    """The engine's cache share (`engine_kv_memory`'s kind and value, `default`) where the deployment sets its memory
    option to `share`: vLLM's --gpu-memory-utilization and TensorRT-LLM's free_gpu_memory_fraction are the share
    itself; SGLang's --mem-fraction-static leaves the rest of the device as its reserve."""
    kind, _ = default
    return ("reserve", (1.0 - share) * hw.memory_bytes) if kind == "reserve" else (kind, share)


def sglang_reserve_bytes(engine: str | None, fact: dict, hw: HardwareSpec, devices: int, attention_dp: int,
                         speculative: str | None, graph_mib: float = 0.0) -> float:
    """The memory SGLang leaves out of --mem-fraction-static for activations and CUDA graphs (its profile's
    `kv_memory`, with its source): a base, the prefill chunk's activations (at least a floor of tokens), the CUDA
    graphs' buffers by their largest batch (`graph_max_bs` by device, [below 4 devices, from 4]), a share per device
    of the group; more per graph batch and attention group under data-parallel attention (again above a large graph);
    the prefill graphs' own (`graph_mib`, from 0.5.10); at least a floor on a large GPU; and a draft's own memory
    under speculative decoding (none for n-gram lookup). SGLang rounds the share it computes from them
    (`share_decimals`): the reserve is the device less that share of it."""
    small, large = device_fact(engine, hw, "graph_max_bs")
    graph = large if devices >= 4 else small
    chunk = max(device_fact(engine, hw, "prefill_chunk_tokens") or 0, fact["chunk_floor_tokens"])
    mib = fact["base_mib"] + chunk * fact["chunk_mib_per_token"] + graph * fact["graph_mib_per_bs"] \
        + devices * fact["device_mib"]
    if attention_dp > 1:
        per_bs = fact["attention_dp_mib_per_bs"] + (fact["large_graph_mib_per_bs"] if graph > fact["large_graph_bs"]
                                                    else 0.0)
        mib += graph * attention_dp * per_bs
    mib += graph_mib
    if hw.memory_bytes > fact["floor_above_gib"] * 2**30:
        mib = max(mib, fact["floor_mib"])
    if speculative and speculative != "ngram":
        mib += fact["draft_model_mib" if speculative == "draft" else "speculative_mib"]
    if fact.get("share_decimals") is None:
        return mib * MIB
    share = round((hw.memory_bytes - mib * MIB) / hw.memory_bytes, fact["share_decimals"])
    return (1.0 - share) * hw.memory_bytes


def engine_sampler_row_bytes(engine: str | None, hw: HardwareSpec, vocab_size: int,
                             sampler: str | None = None) -> float:
    """Bytes one GPU holds, per running-sequence slot, at the peak of the engine's start-up profiling run where its
    sampler's logits set that peak (per logit times the vocabulary): vLLM sizes its cache after a forward pass over
    its step budget and its sampler over max_num_seqs rows of logits, so the peak is this times its running cap
    (`engine_max_running`). `sampler`: "flashinfer" where the deployment samples with FlashInfer's kernels (its
    profile's `flashinfer_sampler_bytes`), else PyTorch's (`profile_sampler_bytes`, by release). 0 where the profile
    states none or off a GPU."""
    per_logit = engine_fact(engine, "profile_sampler_bytes")
    if per_logit and sampler == "flashinfer":
        per_logit = engine_fact(engine, "flashinfer_sampler_bytes")
    return float(per_logit) * vocab_size if per_logit and hw.kind == "gpu" else 0.0


def engine_image_sampler(engine: str | None, hw: HardwareSpec) -> str | None:
    """The sampler the engine's official image runs on `hw` where it is not the engine's default (its profile's
    `image_sampler` for the device: vLLM's images before 0.12 install FlashInfer and sample with it on CUDA), for a
    plan priced at that image and the configs that run it; None: the default."""
    return device_fact(engine, hw, "image_sampler")


def engine_workspace_bytes(engine: str | None, hw: HardwareSpec, tp: int, pp: int = 1,
                           data_parallel: int = 1) -> float:
    """Bytes one GPU holds for the engine's fused tensor-parallel all-reduce beside the device's runtime (its
    `allreduce_workspace` for the device, `device_fact`: vLLM from 0.17 on Hopper and Blackwell behind an NVLink
    switch, FlashInfer's all-reduce + RMSNorm fusion workspace, allocated while the engine profiles its memory, so
    taken out of its cache): `mib` where the tensor-parallel size is one the engine fuses at, within one host (across
    hosts it takes another backend, not modelled), without pipeline parallelism or data-parallel ranks in the server
    (`data_parallel`, vLLM's --data-parallel-size), and `rest_mib`, what the engine's logs measure its collectives to
    hold beyond it there; 0 otherwise."""
    fact = device_fact(engine, hw, "allreduce_workspace")
    if not fact or tp not in fact["tensor_parallel"] or pp > 1 or data_parallel > 1 or not within_one_host(hw, tp):
        return 0.0
    return (fact["mib"] + fact.get("rest_mib", 0)) * MIB
