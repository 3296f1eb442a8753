"""What every engine's config is made of: the engines and where they run, an engine's options for the stated
version (data in `profiles/engine_options/`), the `EngineConfig` a plan maps to, the checks that every emitted
option exists, and the plan facts each engine mapping reads."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ... import profiles
from ..catalog.engine_memory import engine_kv_memory
from ..catalog.engines import engine_fact, engine_table, reserves_whole_length
from ..catalog.hardware import default_16bit
from ..catalog.hybrid_spec import UNBOUNDED_CONTEXT
from ..catalog.models import catalog_entry, resolve_model
from ..errors import DeployError
from ..plan.predict import sequences_per_server, serving_instances
from ..schema import HardwareSpec, ModelSpec
from ..schema.advice import Advice, Prediction

ENGINES = ("vllm", "sglang", "tgi", "trtllm", "llama.cpp")
TARGETS = (*ENGINES, "compose", "kubernetes", "all")
PORT = 8000

# llama.cpp's images are tagged by build as well as rolling (`server-cuda-b<N>` beside `server-cuda`): the configs pin
# one inside the range its profile and options describe (>=b6500; ggml-org/llama.cpp#17300 shows b7079's server with
# its 4 default slots), since a rolling tag takes option renames with it (ggml-org/llama.cpp#22397, 2026-04-26:
# "`--draft`, `--draft-n`, `--draft-max` | `--spec-draft-n-max`")
LLAMA_CPP_BUILD = "b7079"
# The container image of the stated version (where each engine runs is its profile's `backends`).
IMAGES = {"vllm": "vllm/vllm-openai:v0.10.2", "sglang": "lmsysorg/sglang:v0.5.4",
          "tgi": "ghcr.io/huggingface/text-generation-inference:3.3.4",
          "trtllm": "nvcr.io/nvidia/tensorrt-llm/release:1.0.0",
          "llama.cpp": "ghcr.io/ggml-org/llama.cpp:server-cuda-" + LLAMA_CPP_BUILD}
# On ROCm devices each engine's AMD build (the CUDA images do not run there): AMD's vLLM 0.10.1 image, the nearest to
# the 0.10.2 the options are kept for (BentoML's vLLM recipes base AMD deployments on it: "image.base_image =
# 'rocm/vllm:rocm6.4.1_vllm_0.10.1_20250909'"); SGLang's `-rocm700-mi30x` images for MI300-class GPUs (its docs:
# "lmsysorg/sglang:v0.5.5.post2-rocm700-mi30x"); TGI's `-rocm` (its quick tour:
# "ghcr.io/huggingface/text-generation-inference:1.4-rocm"); llama.cpp's `server-rocm` of its pinned build.
ROCM_IMAGES = {"vllm": "rocm/vllm:rocm6.4.1_vllm_0.10.1_20250909", "sglang": "lmsysorg/sglang:v0.5.4-rocm700-mi30x",
               "tgi": "ghcr.io/huggingface/text-generation-inference:3.3.4-rocm",
               "llama.cpp": "ghcr.io/ggml-org/llama.cpp:server-rocm-" + LLAMA_CPP_BUILD}
# On a CPU, llama.cpp's CPU build: ggml-org/llama.cpp docs/docker.md @30255fcb — "`ghcr.io/ggml-org/llama.cpp:server`:
# This image only includes the `llama-server` executable. (platforms: `linux/amd64`, `linux/arm64`, `linux/s390x`)"
# (`server-cuda` is the same "compiled with CUDA 12 support"). The other engines' images here are GPU builds.
CPU_IMAGES = {"llama.cpp": "ghcr.io/ggml-org/llama.cpp:server-" + LLAMA_CPP_BUILD}
# Where an image keeps the engine's executable off its PATH, the path a container target starts it by: llama.cpp's
# server images (CUDA, ROCm and CPU builds alike) copy llama-server into /app, which the CUDA and Ubuntu base images do
# not put on PATH (ggml-org/llama.cpp .devops/cuda.Dockerfile @00d69466: "COPY --from=build /app/full/llama-server
# /app", "WORKDIR /app", "ENTRYPOINT [ \"/app/llama-server\" ]").
CONTAINER_EXECUTABLES = {"llama.cpp": "/app/llama-server"}
# Why a container target is refused on a backend with no image above: every image is a Linux build, and a container on
# a Mac runs in a Linux VM without the GPU's Metal (llama.cpp discussion #8042, "Containers for Apple Silicon Macs work
# with GPU-accelerated Vulkan": Podman's krunkit VMs reach the GPU through Vulkan only, "much slower than pure MacOS")
NO_IMAGE = {"metal": "a container on a Mac runs in a Linux VM without Metal (llama.cpp discussion #8042: only Vulkan "
                     "through Podman's krunkit reaches the GPU there, much slower than native): run the engine's "
                     "serve.sh on the Mac itself"}
HEALTH = {"vllm": "/health", "sglang": "/health", "tgi": "/health", "trtllm": "/health", "llama.cpp": "/health"}


@lru_cache(maxsize=None)
def engine_options(engine: str) -> dict[str, Any]:
    """The option names and allowed values of an engine, for the version stated in the file."""
    return profiles.read_yaml(profiles.ROOT / "engine_options" / f"{engine}.yaml")


@dataclass
class EngineConfig:
    engine: str
    model: str  # hub id or path the engine loads
    command: list[str]  # the executable and its fixed sub-command
    options: dict[str, Any] = field(default_factory=dict)  # option -> value (True for a flag)
    env: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # trtllm's extra_llm_api_options YAML
    applied: list[tuple[str, str]] = field(default_factory=list)  # (technique, how)
    not_applied: list[tuple[str, str]] = field(default_factory=list)  # (technique, why)
    notes: list[str] = field(default_factory=list)
    positional_model: bool = False
    pd: tuple[int, int, int] | None = None  # disaggregated: (prefill instances, decode instances, GPUs each)
    # the weights as the engine serves them where its file is not the plan's format (llama.cpp's GGUF): the
    # profile request's dtype and gguf_type (`prediction.configuration_request`)
    served: dict[str, str] = field(default_factory=dict)
    # the weight format of the checkpoint the engine loads where it declares one (a published or produced fp8, AWQ,
    # ... checkpoint: `checkpoints.Served`), which its download holds; None: the model's own
    checkpoint_format: str | None = None
    # the sequences its cache holds at the workload's mean context where the config sizes the cache itself, below what
    # the plan's memory leaves (vLLM's VLLM_CPU_KVCACHE_SPACE); None: the plan's `max_concurrency`
    cache_holds: int | None = None
    # files and folders on the weights volume that the user copies there (a produced checkpoint, a GGUF file): a
    # Kubernetes Deployment's pod waits for them in an init container before the server starts
    local_files: list[str] = field(default_factory=list)

    def sets(self, option: str | None) -> Any:
        """The value the config gives `option` (as the engine's profile names it, `--max-num-seqs`), None where it
        gives none."""
        return self.options.get(option.removeprefix("--")) if option else None

    def argv(self, extra_file: str | None = None) -> list[str]:
        args = list(self.command) + ([self.model] if self.positional_model else [])
        for name, value in self.options.items():
            if value is False or value is None:
                continue
            args.append("--" + name)
            if value is not True:
                args.append(json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else str(value))
        if extra_file and self.extra:
            args += ["--extra_llm_api_options", extra_file]
        return args


def advice_catalog_entry(advice: Advice) -> dict[str, Any]:
    """The catalog file of the advised model ({} for a model given by path or hub id)."""
    source = advice.model.source
    return catalog_entry(source.split(":", 1)[1]) if source.startswith("catalog:") else {}


def advice_model_ref(advice: Advice) -> str:
    """The model as `resolve_model` reads it: a catalog name, a hub id, or the folder or config file the user gave
    (whose source is its path, without a prefix)."""
    source = advice.model.source or advice.model.name
    kind, _, rest = source.partition(":")
    return rest if kind in ("catalog", "hub") else source


def advice_spec(advice: Advice) -> ModelSpec:
    """The model the advice was made for, as the planner read it (a catalog name, a config file or a hub id)."""
    return resolve_model(advice_model_ref(advice))


def model_reference(advice: Advice) -> str:
    """What the engine loads: a catalog model's hub id, else the path or id the user gave."""
    source = advice.model.source
    if source.startswith("catalog:"):
        return advice_catalog_entry(advice).get("hub_id") or advice.model.name
    if source.startswith("hub:"):
        return source.split(":", 1)[1]
    path = Path(source)
    return str(path.parent if path.name == "config.json" else path)


def plan_steps(advice: Advice) -> dict[str, Any]:
    return {s.technique: s for s in advice.plan.steps}


def data_parallel_ranks(p: Prediction) -> int:
    """The plan's data-parallel ranks: its replicas, or the data-parallel attention groups it holds vLLM's ranks of a
    MoE model as (their experts one group over all of them)."""
    return max(p.data_parallel, p.attention_data_parallel)


def server_tensor_parallel(advice: Advice) -> int:
    """The tensor parallel one server of an engine without data-parallel attention runs: the plan's, or, where the
    plan's data-parallel step is vLLM's MoE layout (attention data parallel over experts sliced across the devices),
    plain tensor parallel over all those devices (TensorRT-LLM's tp_size, TGI's --num-shard)."""
    p = advice.plan.predicted
    spread = "data-parallel" in plan_steps(advice) and p.attention_data_parallel > 1
    return p.tensor_parallel * (p.attention_data_parallel if spread else 1)


def max_seqs(advice: Advice) -> int:
    """Concurrent sequences per server (per data-parallel replica; per decode instance when disaggregated), as the
    plan runs them (`plan.predict.sequences_per_server`)."""
    return sequences_per_server(advice.plan.predicted, advice.workload.concurrency)


# A server's longest sequence stays this far under the longest one the plan's cache holds: vLLM refuses to start
# where its cache cannot hold one sequence of --max-model-len, and the cache is a prediction (docs/accuracy.md: within
# 0.2% median, 5.6% p90, of the engines' start-up logs).
SERVED_CONTEXT_MARGIN = 0.9


def served_context(advice: Advice, engine: str) -> int:
    """The longest sequence (prompt and output) a server of `engine` accepts, as its option sets it (vLLM's
    --max-model-len, SGLang's --context-length, TGI's --max-total-tokens, TensorRT-LLM's max_seq_len, a llama.cpp
    slot's share of --ctx-size). The workload's stated `max_context` where it states one, and its p95 prompt plus
    output under the memory goal, whose configs hold the engine to the plan's memory (`holds_to_plan`). Else, where
    the engine's cache grows with its sequences and admits a request without room for its whole length (`admission:
    on-demand`: vLLM, SGLang), the longest one the plan's cache holds (`Prediction.max_context`, the model's maximum
    at most, `SERVED_CONTEXT_MARGIN` under it, in whole thousands; the model's whole context where the cache holds a
    tenth more at the workload's mean context), so that the requests past the workload's p95 are served rather than
    refused. Else the p95 prompt plus output the plan is sized for: a longer limit would cost memory or
    sequences there (llama.cpp's slots are reserved whole, TensorRT-LLM admits a request with room for its whole
    length)."""
    w, p, model_max = advice.workload, advice.plan.predicted, advice.model.max_position_embeddings
    if w.max_context or engine_fact(engine, "admission") != "on-demand" or unbounded(advice) \
            or holds_to_plan(advice, engine):
        return w.context_needed
    # the model's whole context where one server's cache holds a tenth more than it at the mean context
    held = p.max_concurrency // serving_instances(p) * w.mean_context
    if p.max_context >= model_max and held * SERVED_CONTEXT_MARGIN >= model_max:
        return model_max
    return max(w.context_needed, int(p.max_context * SERVED_CONTEXT_MARGIN) // 1024 * 1024)


def unbounded(advice: Advice) -> bool:
    """Whether nothing in the model's config bounds its context (a state-space model without attention layers: no
    position table, and a state that does not grow with the sequence; `hybrid_spec.UNBOUNDED_CONTEXT`): no cache
    bounds it either, so a served limit past the workload's would be one the model was never shown to hold. A model
    with attention layers keeps a cache that grows, whatever its position table states (Llama 4 Maverick's 1,048,576,
    which is UNBOUNDED_CONTEXT itself): its cache bounds it."""
    return advice.model.max_position_embeddings >= UNBOUNDED_CONTEXT and advice.model.attention == "none"


def context_note(advice: Advice, engine: str, option: str) -> str:
    """What a README says of the server's longest sequence (`served_context`), set by `option`."""
    w, served = advice.workload, served_context(advice, engine)
    if w.max_context:
        return f"{option} {served}: the workload's stated longest sequence (prompt and output)"
    need = f"the workload's p95 prompt plus output ({w.context_needed:,})"
    if unbounded(advice):
        return (f"{option} {served}: {need}; the model states no longest context and its state does not grow with "
                "the sequence, so nothing bounds it but the lengths it was trained and tested on: set `max_context` "
                "in the workload (or --context) to serve longer requests")
    if served > w.context_needed:
        whole = "the model's whole context, which" if served == advice.model.max_position_embeddings else "the longest"
        return (f"{option} {served}: requests of up to {served:,} tokens (prompt and output) are served, {whole} the "
                f"plan's cache holds with a tenth to spare; the plan is sized for {need}")
    return (f"{option} {served}: {need}; longer requests are refused (--context, or `max_context` in the workload, "
            "sizes the plan and this limit for them)")


DEFAULT_MEMORY_FRACTION = 0.9  # where the engine's profile states no share of its own
MAX_MEMORY_FRACTION = 0.98


def engine_memory_share(advice: Advice, engine: str, hw: HardwareSpec) -> float:
    """The engine's own default share of each device, as its memory option takes it (`engines.engine_kv_memory`):
    vLLM's --gpu-memory-utilization, TensorRT-LLM's free_gpu_memory_fraction, SGLang's --mem-fraction-static as it
    computes it from the device's memory and the tensor x pipeline group."""
    p = advice.plan.predicted
    # a speculative step is spec-<method> (plan.state.Speculation's), which sets what SGLang reserves for it
    speculative = next((s.technique.removeprefix("spec-") for s in advice.plan.steps if s.technique.startswith("spec-")),
                       None)
    kv = engine_kv_memory(engine, hw, p.tensor_parallel * p.pipeline_parallel, p.attention_data_parallel, speculative)
    if kv is None:
        return DEFAULT_MEMORY_FRACTION
    kind, value = kv
    return round((hw.memory_bytes - value) / hw.memory_bytes, 3) if kind == "reserve" else value


def holds_to_plan(advice: Advice, engine: str) -> bool:
    """Whether `engine`'s config holds it to the memory the plan needs rather than its default share: under the memory
    goal, whose plan is the smallest footprint (an 8B in fp8 at 13.6 GB of an H100, which vLLM's default 0.9 would
    have grown to 72 GB of cache and all), where the plan is the engine's own. Another engine's plan rendered for it
    may leave out a step that its footprint counts on (TGI serving Qwen3-30B-A3B without the plan's fp8 weights:
    69 GB, held to 35): it keeps its default."""
    return advice.workload.goal == "memory" and advice.workload.engine == engine


def cache_need(advice: Advice, engine: str) -> float:
    """Cache bytes per device the plan needs: its sequences at the workload's mean context, or, under the memory goal
    (`holds_to_plan`), one sequence of the longest the server takes where that is more (vLLM refuses to start where
    its cache cannot hold one sequence of --max-model-len). Per token the plan's cache over its sequences' mean
    context, which reads a sliding window's or a recurrent state's growth too high, never too low."""
    p, w = advice.plan.predicted, advice.workload
    if not holds_to_plan(advice, engine) or reserves_whole_length(engine):
        # (an engine that admits a request only with room for its whole length sized the plan's cache so already)
        return p.kv_cache_per_device_bytes
    # (the memory goal serves the workload's longest sequence: `served_context`)
    longest = p.kv_cache_per_device_bytes / _device_sequences(advice) * w.context_needed / max(w.mean_context, 1)
    return max(float(p.kv_cache_per_device_bytes), longest)


def _device_sequences(advice: Advice) -> int:
    """The plan's sequences in one device's cache: a server's, over its data-parallel attention ranks."""
    p = advice.plan.predicted
    return max(1, sequences_per_server(p, advice.workload.concurrency) // max(p.attention_data_parallel, 1))


def _need(advice: Advice, static: HardwareSpec | None, engine: str) -> float:
    """The share of each device the plan holds: all of it, or, for SGLang's --mem-fraction-static (`static`: the
    device), its weights and cache as a share of the memory left once the runtime is up, the memory SGLang takes that
    fraction of (`analytic.memory.cache_room` sizes the plan's cache so); the cache as `cache_need` counts it."""
    p = advice.plan.predicted
    kv = cache_need(advice, engine)
    if static is not None:
        room = static.memory_bytes - static.runtime_overhead_bytes
        return (p.weights_per_device_bytes + kv) / room if room > 0 else 1.0
    held = p.memory_per_device_bytes - p.kv_cache_per_device_bytes + kv
    return held / p.device_memory_bytes if p.device_memory_bytes else 0.0


def memory_fraction(advice: Advice, engine: str, default: float = DEFAULT_MEMORY_FRACTION,
                    static: HardwareSpec | None = None) -> float:
    """The share of each device the engine may claim: its default, which the plan's cache is sized within for the
    engines that set one (`analytic.memory.cache_room`), or what the plan needs plus 2% where that is more (a plan
    that needs 95% of the card does not start at 90%), or under the memory goal (`holds_to_plan`) whatever it is; at
    most 98%. `static`: the device, for a static fraction of its memory after the runtime (SGLang's)."""
    return _fraction(_need(advice, static, engine), default, holds_to_plan(advice, engine))


def free_memory_fraction(advice: Advice, engine: str, default: float) -> float:
    """TensorRT-LLM's free_gpu_memory_fraction: its default, or the share of the memory left after the weights,
    activations and runtime that the plan's cache takes (plus 2%) where the plan raised it or the memory goal holds
    the engine to it, at most 98%."""
    p = advice.plan.predicted
    free = p.device_memory_bytes - (p.memory_per_device_bytes - p.kv_cache_per_device_bytes)
    held = holds_to_plan(advice, engine)
    return _fraction(cache_need(advice, engine) / free if free > 0 else 1.0, default, held)


def _fraction(need: float, default: float, held: bool = False) -> float:
    """A memory option's value: the engine's default where the plan needs no more, else the need plus 2%, at most
    98%; `held`: the need plus 2%, rounded up to the hundredth, whatever the default."""
    if held:
        return min(math.ceil(round((need + 0.02) * 100, 6)) / 100, MAX_MEMORY_FRACTION)
    # at the rendered precision: a plan sized to the engine's own share needs that share, not a hair more
    return default if round(need, 3) <= default else round(min(need + 0.02, MAX_MEMORY_FRACTION), 2)


def held_memory(cfg: EngineConfig, advice: Advice, option: str, of: str, hw: HardwareSpec) -> None:
    """Under the memory goal (`holds_to_plan`): the sequences one server's cache holds at the value `cfg` sets for the
    engine's memory `option` (`of`: a share of the "device", of the device after the runtime for the weights and
    cache, "static" as SGLang's, or of the memory "free" once the weights and activations are in, TensorRT-LLM's),
    and a note that says why it is that low."""
    if not holds_to_plan(advice, cfg.engine):
        return
    p, w = advice.plan.predicted, advice.workload
    value = float(cfg.options.get(option.lstrip("-"), cfg.env.get(option, 0)))
    rest = p.memory_per_device_bytes - p.kv_cache_per_device_bytes  # weights, activations, runtime
    cache = {"device": value * hw.memory_bytes - rest,
             "static": value * (hw.memory_bytes - hw.runtime_overhead_bytes) - p.weights_per_device_bytes,
             "free": value * (hw.memory_bytes - rest)}[of]
    ranks, held = max(p.attention_data_parallel, 1), _device_sequences(advice)
    if p.kv_cache_per_device_bytes > 0:
        cfg.cache_holds = int(cache // (p.kv_cache_per_device_bytes / held)) * ranks
    said = f"{option}={value:g}" if option in cfg.env else f"{option} {value:g}"
    sequences = f"{held * ranks} sequence{'' if held * ranks == 1 else 's'}"
    cfg.notes.append(f"{said}: the memory goal holds the engine to what the plan needs, "
                     f"{(rest + cache_need(advice, cfg.engine)) / 1e9:,.1f} GB per device: its weights and runtime and "
                     f"a cache for {sequences} at the mean context or one of {w.context_needed:,} tokens, whichever "
                     "needs more, plus 2% to spare; the engine's default share would fill the rest of the device with "
                     "cache. Raise it to serve more sequences")


def memory_note(advice: Advice, engine: str, option: str, static: HardwareSpec | None = None) -> str | None:
    """A warning when the plan needs more of the device than the engine can be given."""
    need = _need(advice, static, engine)
    if need + 0.02 > MAX_MEMORY_FRACTION:
        return (f"the plan needs {need:.1%} of each device's memory: {option} is set to {MAX_MEMORY_FRACTION:.0%}, so "
                "the engine may hold fewer sequences than planned; lower the concurrency or add a device")
    return None


def offload_gib(p) -> int:
    """GiB of weights per device in host memory, rounded up (the unit of --cpu-offload-gb)."""
    return max(1, -(-p.offload_bytes_per_device // 2**30))


def dtype16(hw: HardwareSpec) -> str:
    """The device's 16-bit format (analytic.setup.default_16bit) in the engines' spelling."""
    return {"bf16": "bfloat16", "fp16": "float16"}[default_16bit(hw)]


# The step model prices expert-parallel dispatch as top-k all-to-all (DeepEP, pplx); the engines' default exchanges
# more (all-gather of every token), so configs with data-parallel attention say which backend the figures assume
# Why an engine has no option for a step, where there is more to say than that it has none.
NO_OPTION = {
    ("vLLM", "spec-draft"): "its default (V1) engine rejects a separate draft model in 0.10; n-gram, EAGLE and MTP work",
    ("TGI", "spec-draft"): "--speculate uses Medusa heads or n-grams, not a draft model",
    ("TGI", "expert-parallel"): "TGI shards by tensor parallel only",
    ("TGI", "expert-parallel-tp-attention"): "TGI shards by tensor parallel only",
    ("TensorRT-LLM", "cpu-offload"): "only KV blocks can go to host memory (kv_cache_config.host_cache_size)",
    ("llama.cpp", "tensor-parallel"): "its --split-mode splits layers (the default), rows (intermediate results and "
                                      "KV on the main GPU) or, experimentally, tensors: not the tensor-parallel "
                                      "shards the plan predicts",
    ("llama.cpp", "weight-fp8"): "GGUF has no fp8 weight type",
    ("llama.cpp", "kv-fp8"): "its KV cache types are f16, bf16, q8_0, q4_0 and similar, no fp8",
    (None, "torch-compile"): "a transformers-engine technique; serving engines compile their own graphs",
    (None, "sliding-window-sinks"): "no option to impose a sliding window with sinks on a full-attention model",
    (None, "structured-pruning"): "pruning makes another model (a quarter of the layers dropped, then healed by a "
                                  "short fine-tune: a training job optiplan does not run); these files serve the "
                                  "unpruned one: point them at the pruned checkpoint, quantized as the plan says",
}


def no_option(engine: str, t_id: str) -> str:
    """Why a plan step is not in `engine`'s configuration: the option it lacks, or the one it has that the plans do
    not use (its profile's `unplanned`)."""
    profile = engine_table().get(engine.lower().replace("tensorrt-llm", "trtllm"), {})
    if unplanned := (profile.get("unplanned") or {}).get(t_id):
        return f"{engine} has {unplanned['option']}, which these configs leave off: {unplanned['why']}"
    missing = (profile.get("missing") or {}).get(t_id)
    detail = NO_OPTION.get((engine, t_id)) or NO_OPTION.get((None, t_id)) or (missing or {}).get("why")
    return f"{engine} has no option for it" + (f": {detail}" if detail else "")


def check_options(cfg: EngineConfig) -> None:
    """Every option the config emits exists for the stated engine version, with an allowed value."""
    known = engine_options(cfg.engine)["options"]
    for name, value in cfg.options.items():
        if name not in known:
            raise DeployError(f"{cfg.engine}: option --{name} is not in profiles/engine_options/{cfg.engine}.yaml")
        spec = known[name]
        if spec.get("type") == "choice" and str(value) not in [str(c) for c in spec["choices"]]:
            raise DeployError(f"{cfg.engine}: --{name} {value} is not one of {spec['choices']}")
    _check_nested(cfg.engine, cfg.extra, engine_options(cfg.engine).get("extra_config", {}), "")


def _check_nested(engine: str, values: dict[str, Any], known: dict[str, Any], where: str) -> None:
    """Keys of a nested config (TensorRT-LLM's extra options) exist, and choice values are allowed."""
    for key, value in values.items():
        name = f"{where}{key}"
        if key not in known:
            raise DeployError(f"{engine}: extra option {name} is not in profiles/engine_options/{engine}.yaml")
        spec = known[key]
        if isinstance(value, dict) and isinstance(spec, dict) and "type" not in spec:
            _check_nested(engine, value, spec, f"{name}.")
        elif isinstance(spec, dict) and spec.get("type") == "choice" and str(value) not in map(str, spec["choices"]):
            raise DeployError(f"{engine}: {name} {value} is not one of {spec['choices']}")


def engine_image(engine: str, backend: str | None) -> str | None:
    """The container image that runs `engine` on a device of `backend` (its AMD build on ROCm, llama.cpp's CPU build on
    a CPU), or None where none does (`container_refusal` says why)."""
    if backend == "rocm":
        return ROCM_IMAGES.get(engine)
    if backend == "cpu":
        return CPU_IMAGES.get(engine)
    return IMAGES[engine] if backend == "cuda" else None


def container_refusal(engine: str, hw) -> str | None:
    """Why no container target (compose, kubernetes) can run `engine` on `hw`, or None where an image does."""
    backend = hw.features.backend
    if engine_image(engine, backend) is not None:
        return None
    why = NO_IMAGE.get(backend) or (f"the configs know no {engine} image for {backend} devices (its CUDA"
                                    + (" and ROCm" if engine in ROCM_IMAGES else "") + " images are GPU builds)")
    return f"no container runs {engine} on {hw.id} ({backend}): {why}"
