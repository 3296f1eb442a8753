"""What an engine does not run, beyond the devices it runs on: a technique its build for a device backend turns off
(`missing_by_backend`: TGI's ROCm image), a technique it cannot apply to a model type it has no code of its own for
(`native_model_types`: TGI serves those through transformers' implementation), and model types it has no code for at
all (`model_types`: gpt-fast, TensorRT-LLM's PyTorch backend; `refused_model_types`: TGI's gpt-oss), and the attention
backends an engine drafts an EAGLE-3 chain over (`draft_attention`: vLLM 0.10-0.11), and the tensor-parallel sizes
its attention splits a model's KV heads over (`kv_heads_over_shards`), and the model types transformers has no SDPA
attention for (`sdpa_refused`). Each reason names its source from the engine's
profile (profiles/engines/)."""

from __future__ import annotations

from ..schema import HardwareSpec
from ..schema.releases import split_engine
from .engines import (
    below_compute_capability,
    engine_fact,
    engine_plans,
    engine_profile,
    engine_runtime,
    engine_table,
    kv_fp8_storage,
    planned_engines,
)


def _named(engine: str | None) -> str:
    """An engine as a sentence names it: `tgi 3.3.4` for `tgi==3.3.4`, the name alone unpinned."""
    name, release = split_engine(engine or "")
    return f"{name} {release}" if release else name


def engine_backend_refusal(engine: str | None, backend: str, technique: str) -> str | None:
    """Why the engine's build for a device `backend` does not run `technique` (`missing_by_backend` in its profile: TGI's
    ROCm image turns prefix caching and prefill chunking off), with the source, or None."""
    why = ((engine_fact(engine, "missing_by_backend") or {}).get(backend) or {}).get(technique)
    if why is None:
        return None
    return f"{_named(engine)} on {backend}: {why['why']} (source: {why['source'].split(' — ')[0]})"


def engine_non_native_refusal(engine: str | None, model_type: str, technique: str) -> str | None:
    """Why the engine does not run `technique` on a model of `model_type` it has no modeling code of its own for (its
    profile's `native_model_types` and `non_native_refuses`: TGI serves such models through transformers'
    implementation, which takes no weight format), or None."""
    native = engine_fact(engine, "native_model_types")
    if native is None or model_type in native or technique not in (engine_fact(engine, "non_native_refuses") or []):
        return None
    return (f"{_named(engine)} has no modeling code of its own for {model_type} and serves it through transformers' "
            f"implementation, which takes no weight format (source: "
            f"{engine_fact(engine, 'native_model_types_source').split(' — ')[0]})")


def engine_model_technique_refusal(engine: str | None, hw: HardwareSpec, model_type: str, technique: str,
                                   kind: str | None = None) -> str | None:
    """Why the engine does not run `technique` on a model of `model_type` on this device (its profile's `model_refuses`
    rules: techniques, the model types or the `kinds` of model they hold for (dense, moe, hybrid: vLLM's runner
    choice by kind), and optionally the devices they hold on: the CUDA devices below a compute capability,
    TensorRT-LLM keeping gpt-oss's cache 16-bit on Hopper, and the `backends` named, TGI's GPTQ MoE kernels being
    CUDA's; a rule naming neither holds everywhere), with the source, or None."""
    for rule in engine_fact(engine, "model_refuses") or []:
        below, backends = rule.get("below_compute_capability"), rule.get("backends")
        here = (below is None and backends is None) or hw.features.backend in (backends or ()) or (
            below is not None and hw.features.backend == "cuda" and below_compute_capability(hw, below))
        model = model_type in rule.get("model_types", ()) or (kind is not None and kind in rule.get("kinds", ()))
        if technique in rule["techniques"] and model and here:
            return f"{rule['reason']} (source: {rule['source'].split(' — ')[0]})"
    return None


def engine_step_refusal(engine: str | None, hw: HardwareSpec, model_type: str, technique: str,
                        kind: str | None = None) -> str | None:
    """Why the engine does not run `technique` for this model on this device, beyond its options: its build for the
    device's backend turns it off, the model type is one it serves through transformers' implementation, or its
    profile refuses the technique for the model type (or its `kind`: dense, moe, hybrid) there; or None."""
    return (engine_backend_refusal(engine, hw.features.backend, technique)
            or engine_non_native_refusal(engine, model_type, technique)
            or engine_model_technique_refusal(engine, hw, model_type, technique, kind))


# the plan techniques a profile's weight and cache formats stand for: refused where the engine refuses every one
FORMAT_TECHNIQUES = {"weights": {"fp8": ("weight-fp8",), "int8": ("weight-int8", "weight-w8a8-int8"),
                                 "int4": ("weight-int4", "weight-int4-awq", "weight-int4-gptq"), "nf4": ("weight-nf4",),
                                 "fp4": ("weight-fp4",)},
                     "cache": {"fp8": ("kv-fp8",), "int8": ("kv-int8",), "int4": ("kv-int4",)}}


def engine_format_refusal(engine: str | None, hw: HardwareSpec, model_type: str, weight_dtype: str | None,
                          kv_dtype: str | None, kind: str | None = None) -> str | None:
    """Why the engine does not serve this model in these weight and cache formats on this device: the refusals of its
    profile that a plan step in the format meets (`engine_step_refusal`), where it refuses every technique the format
    stands for (int4: plain, AWQ and GPTQ), or None. `profile` asks what a plan could not."""
    for part, dtype in (("weights", weight_dtype), ("cache", kv_dtype)):
        techniques = FORMAT_TECHNIQUES[part].get(dtype or "", ())
        reasons = [engine_step_refusal(engine, hw, model_type, t, kind) for t in techniques]
        if techniques and all(reasons):
            return reasons[0]
    return None


def engine_model_refusal(engine: str | None, model_type: str) -> str | None:
    """Why the engine cannot run a model of this `model_type` (its profile's `model_types`, where it lists the
    architectures it has code for: gpt-fast; or `refused_model_types`, the ones it cannot load: TGI's gpt-oss), or
    None."""
    refused = (engine_fact(engine, "refused_model_types") or {}).get(model_type)
    if refused:
        source = refused["source"].split(" — ")[0]
        return f"{_named(engine)} cannot run {model_type} models: {refused['why']} (source: {source})"
    types = engine_fact(engine, "model_types")
    if types is None or model_type in types:
        return None
    # the release the profile describes, where the engine's list grew later (LMDeploy's TurboMind of 2023)
    release = f" (as profiled: {version})" if (version := engine_fact(engine, "version")) else ""
    return (f"{_named(engine)}{release} runs {', '.join(types)} models, not {model_type} (source: "
            f"{engine_fact(engine, 'model_types_source').split(' — ')[0]})")


def engine_planning_refusal(engine: str | None, model_type: str) -> str | None:
    """Why no plan is made for this engine and model (an engine profiled only, gpt-fast; a model it cannot load), or
    None."""
    if engine is not None and split_engine(engine)[0] in engine_table() and not engine_plans(engine):
        return (f"{engine} is profiled, not planned for: `optiplan profile --engine {engine}` predicts it; plans are "
                f"made for {', '.join(planned_engines())}")
    return engine_model_refusal(engine, model_type)


def kv_heads_refusal(engine: str | None, num_kv_heads: int, tp: int) -> str | None:
    """Why the engine cannot split a model's `num_kv_heads` KV heads over `tp` tensor-parallel ranks (its profile's
    `kv_heads_over_shards`: `split`, TGI's, divides them evenly and replicates only a single head; `split_or_replicate`,
    vLLM's and SGLang's, divides them evenly or gives each rank one, as many ranks to each head), with the source, or
    None."""
    rule = engine_fact(engine, "kv_heads_over_shards")
    if rule is None or tp <= 1 or num_kv_heads <= 1 or not num_kv_heads % tp:
        return None
    if rule == "split_or_replicate" and tp > num_kv_heads and not tp % num_kv_heads:
        return None
    each = "do not divide evenly over" if rule == "split" else "neither divide evenly over nor replicate evenly across"
    return (f"{_named(engine)} splits the KV heads over its tensor-parallel ranks: {num_kv_heads} KV heads {each} "
            f"{tp} ranks, and the server cannot load the model (source: "
            f"{engine_fact(engine, 'kv_split_source').split(' — ')[0]})")


def attention_split_refusal(engine: str | None, num_heads: int, num_kv_heads: int, tp: int) -> str | None:
    """Why a model's attention does not split over `tp` tensor-parallel devices: its heads, or its KV heads as the
    engine splits them (`kv_heads_refusal`), or None."""
    if num_heads % tp:
        return f"{num_heads} attention heads do not split over {tp} devices"
    return kv_heads_refusal(engine, num_kv_heads, tp)


def draft_attention_refusal(engine: str | None, hw: HardwareSpec, sinks: bool, fp8_cache: bool) -> str | None:
    """Why the engine's EAGLE proposer cannot draft a chain of tokens on `hw` (its profile's `draft_attention`: vLLM
    0.10-0.11 drafts past its first token over FlashAttention's metadata only on CUDA), with the attention backend the
    server runs instead and the source, or None. `sinks`: the model has attention sinks (gpt-oss); `fp8_cache`: the
    plan stores the cache in fp8, which the engine serves with FlashInfer where its default backend takes none."""
    if engine_fact(engine, "draft_attention") is None or hw.features.backend != "cuda":
        return None
    storage = kv_fp8_storage(engine) or {}
    cc = hw.features.compute_capability
    if below_compute_capability(hw, 8.0):
        runs = "FlexAttention, its backend before Ampere"
    elif cc == "10.0":
        runs = "FlashInfer, its first backend on Blackwell (SM100)"
    elif sinks and cc != "9.0":
        runs = "Triton's attention, its backend for attention sinks before Hopper"
    elif fp8_cache and cc not in storage.get("default_backend_compute_capabilities", ()):
        runs = "FlashInfer, the backend its configs pin for an fp8 cache here"
    else:
        return None
    return (f"{_named(engine)} drafts more than one token only over FlashAttention's metadata on CUDA, and on "
            f"{hw.id} it runs {runs} (source: {engine_fact(engine, 'draft_attention_source').split(' — ')[0]})")


def pipeline_refusal(engine: str | None, pp: int, feature: str) -> str | None:
    """Why the engine does not run `feature` (speculative, mixed_chunk, overlap_schedule) with `pp` pipeline stages
    (`pipeline_excludes` in its profile: SGLang refuses to start with both), or None."""
    if pp <= 1 or feature not in (engine_fact(engine, "pipeline_excludes") or ()):
        return None
    source = str(engine_fact(engine, "pipeline_excludes_source")).split(" (")[0]
    what = {"speculative": "speculative decoding", "mixed_chunk": "mixed chunks"}.get(feature, feature.replace("_", " "))
    return (f"{_named(engine)} runs no {what} with pipeline stages ({pp} here): a server given both refuses to start "
            f"({source}, check_server_args)")


def sdpa_refused(model_type: str) -> bool:
    """Whether transformers has no SDPA attention for the model type, which it then runs eagerly, its score matrix
    materialised (the transformers profile's sdpa_refused_models)."""
    return model_type in (engine_profile("transformers").get("sdpa_refused_models") or ())


def dense_experts(model_type: str) -> bool:
    """Whether transformers runs the model's routed experts densely, every token through every expert (the
    transformers profile's dense_experts_model_types: Llama 4's)."""
    return model_type in (engine_profile("transformers").get("dense_experts_model_types") or ())


def runs_eager_attention(engine: str | None, model_type: str) -> bool:
    """Whether `engine` runs the model's attention eagerly by default: transformers (its runtime) on a model it has no
    SDPA attention for (`sdpa_refused`)."""
    return engine is not None and engine_runtime(engine) == "transformers" and sdpa_refused(model_type)
