"""Speculative decoding: a cheap proposer guesses several tokens, the target verifies them in one pass.
Lossless (the target's distribution is kept); it pays at small batch, where a decode step is
bandwidth-bound and verifying gamma+1 tokens costs about as much as one."""

from __future__ import annotations

import itertools

from ...catalog.engine_refusals import draft_attention_refusal, kv_heads_refusal, pipeline_refusal
from ...catalog.workloads import serves_instruct
from ..state import PlanState, Speculation
from . import Applied, Combines, Context, Option, Technique, register

GROUP = "speculative"
LEVIATHAN = ("lossless by construction (Leviathan et al., arXiv 2211.17192); expected tokens per step "
             "(1 - a^(g+1)) / (1 - a) for acceptance a and g proposed tokens")

# Acceptance rates: a same-family draft model accepts 0.6-0.8 of its tokens (Leviathan et al.; Chen et al.,
# arXiv 2302.01318); DeepSeek-V3's MTP module's second token is accepted 85-90% of the time (arXiv 2412.19437).
DRAFT_ACCEPTANCE, DRAFT_TOKENS = 0.7, 4
DRAFT_SOURCE = ("acceptance 0.7 per proposed token, within the 0.6-0.8 a same-family draft reaches (Leviathan et al., "
                "arXiv 2211.17192; Chen et al., arXiv 2302.01318)")
MTP_ACCEPTANCE, MTP_TOKENS = 0.85, 1
MTP_SOURCE = ("acceptance 0.85 of the one proposed token: DeepSeek-V3's MTP module's second token is accepted 85-90% "
              "of the time (arXiv 2412.19437)")
# Prompt lookup drafts only what the prompt holds. On code edits vLLM's n-gram proposer (5 tokens) had its drafts
# accepted at 0.81, 0.74, 0.70, 0.68 and 0.66 by position, 2.96 tokens a step counting the 15% of tokens it found no
# draft for; on ordinary prose its drafts were accepted 11.2% of the time and the speed did not move.
NGRAM_ACCEPTANCE, NGRAM_TOKENS = 0.6, 4
NGRAM_SOURCE = ("acceptance 0.6 per proposed token where the outputs quote the prompt, below vLLM's n-gram proposer on "
                "code edits (vllm-project/vllm#24344, vdaita/edit_5k_char: \"acceptance at token 0: 0.81 ... token 4: "
                "0.66\", \"seq normalized acceptance length: 2.96\"), the most quoting of such loads")
NGRAM_OPEN_REFUSAL = ("its drafts come from the prompt, and the workload does not say its outputs quote it "
                      "(quotes_prompt): on ordinary prose n-gram drafts were accepted 11.2% of the time and the speed "
                      "stayed 89.4 against 89.1 tokens/s (kekzl/imp#1460)")


# why a speculative step may change nothing: the plan's layout runs pipeline stages, which SGLang speculates under not
PIPELINE_UNCHANGED = "the plan runs pipeline stages, with which SGLang starts no speculative decoding"


def _speculate(state: PlanState, ctx: Context, speculation: Speculation) -> PlanState:
    """The state speculating so, unless its engine runs no speculation with the state's pipeline stages
    (`pipeline_refusal`): then unchanged."""
    if pipeline_refusal(ctx.release_engine, state.pp, "speculative"):
        return state
    return state.with_(speculation=speculation)


def _ngram_check(ctx: Context) -> str | None:
    """Prompt lookup refused where the outputs are open-ended text: it has nothing to copy (`NGRAM_OPEN_REFUSAL`)."""
    return None if ctx.workload.quotes_prompt else NGRAM_OPEN_REFUSAL


# EAGLE-3 (Li et al., arXiv 2503.01840): a one-layer draft head trained on the target's features proposes a chain of
# tokens. SGLang measured Llama-3.1-8B-Instruct on MT-bench on one H100 at 158.34 -> 373.25 tokens/s at batch 1 (2.36x,
# chain of 3) and 1.38x the throughput at batch 64. EAGLE3_ACCEPTANCE is the per-token acceptance that reproduces the
# batch-1 figure with this step model (a proposal costs one decoder layer); the batch-64 figure sets how much of the
# gain serving engines keep at batch (planner/plan/predict.py): benchmarks/bench_speculation_published.py prints both.
EAGLE3_ACCEPTANCE, EAGLE3_TOKENS = 0.71, 3
EAGLE3_SOURCE = ("acceptance 0.71 per proposed token, solved from SGLang's measured 2.36x at batch 1 (EAGLE-3 paper, "
                 "arXiv 2503.01840, SGLang v0.4.4 on H100, Llama-3.1-8B, MT-bench: 158.34 -> 373.25 tokens/s); its 1.38x at "
                 "batch 64 scales the gain at batch, for every speculation method and engine (one measured sweep, "
                 "extrapolated; benchmarks/bench_speculation_published.py)")


# An EAGLE-3 head is trained on short conversations (EAGLE's training script's --max-length, 2,048 in its examples;
# SpecForge's Llama heads carry max_position_embeddings 2048) and guesses worse the longer the context it drafts in:
# vLLM's speculators measured a full-attention EAGLE-3 head on LongBench v2 prompts cut to each length (vLLM, greedy,
# 128 tokens out) at these mean acceptance lengths. A workload's mean
# context scales the acceptance length of EAGLE3_ACCEPTANCE by the curve's fall from 2,048 tokens (held past 20,480).
EAGLE3_CONTEXT_ACCEPTANCE = ((2048, 2.295), (4096, 2.040), (6144, 1.863), (8192, 1.687), (10240, 1.400),
                             (12288, 1.289), (14336, 1.161), (16384, 1.090), (18432, 1.092), (20480, 1.084))
EAGLE3_CONTEXT_SOURCE = ("vllm-project/speculators#684 (merged), 'Acceptance Length vs Context Length': "
                         "recursal/longbench-v2 truncated to each length, vLLM, \"| 2k | 2.295 |\" ... \"| 8k | 1.687 |\" "
                         "... \"| 16k | 1.090 |\" ... \"| 20k | 1.084 |\" (Eagle3, full attention); sgl-project/sglang#6783: "
                         "a head of max_position_embeddings 2048 slower than no speculation past 2K tokens")


def _chain_length(p: float, k: int) -> float:
    """Tokens a step makes with k proposals each accepted with probability p (the first always)."""
    return sum(p ** i for i in range(k + 1))


def eagle3_acceptance(context: int) -> float:
    """EAGLE3_ACCEPTANCE at a workload's mean `context`: the per-token acceptance whose chain of EAGLE3_TOKENS is as
    much shorter than at 2,048 tokens as EAGLE3_CONTEXT_ACCEPTANCE's (bisection on the chain's length)."""
    (x0, y0), table = EAGLE3_CONTEXT_ACCEPTANCE[0], EAGLE3_CONTEXT_ACCEPTANCE
    if context <= x0:
        return EAGLE3_ACCEPTANCE
    measured = table[-1][1]
    for (xa, ya), (xb, yb) in itertools.pairwise(table):
        if context <= xb:
            measured = ya + (yb - ya) * (context - xa) / (xb - xa)
            break
    target = 1 + (_chain_length(EAGLE3_ACCEPTANCE, EAGLE3_TOKENS) - 1) * (measured - 1) / (y0 - 1)
    low, high = 0.0, EAGLE3_ACCEPTANCE
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if _chain_length(mid, EAGLE3_TOKENS) < target else (low, mid)
    return round(low, 3)


def eagle_head(ctx: Context) -> dict | None:
    """The published EAGLE-3 head the workload's engine loads for this model, or None."""
    return next((h for h in ctx.eagle_heads if ctx.workload.engine in h["engines"]), None)


def _eagle_check(ctx: Context) -> str | None:
    if eagle_head(ctx) is None:
        engines = sorted({e for h in ctx.eagle_heads for e in h["engines"]})
        return (f"no published EAGLE-3 head of {ctx.spec.name} is known for {ctx.workload.engine} (heads exist for "
                f"{', '.join(engines)})")
    if not serves_instruct(ctx.workload):
        return (f"EAGLE-3 heads are trained on the instruct model's outputs ({eagle_head(ctx)['target']}); the "
                f"{ctx.workload.name} workload serves the base model, whose tokens they would rarely guess")
    # a chain of EAGLE3_TOKENS drafts, which vLLM 0.10-0.11 proposes over FlashAttention only (an fp8 cache's backend
    # is a clash of the two steps: `runtime_conflict`)
    return draft_attention_refusal(ctx.release_engine, ctx.hw, ctx.spec.attention_sinks, fp8_cache=False)


# llama-server gives each slot a draft context of its own and checks each slot's draft with a decode of its own, one
# slot after another, so drafting undoes the batching of slots; its maintainers keep a server with a draft model to one
# slot by default for it
LLAMA_CPP_DRAFT_SLOTS = 1
LLAMA_CPP_DRAFT_SOURCE = ("ggml-org/llama.cpp#17017 (merged 2025-11-05, \"server : do not default to multiple slots with "
                          "speculative decoding\") — \"The current implementation of speculative decoding in the "
                          "`llama-server` requires a separate draft `llama_context` for each slot.\"; tools/server "
                          "update_slots verifies each slot's draft in a llama_decode of its own")


def _draft_check(ctx: Context) -> str | None:
    """llama.cpp drafts slot by slot (`LLAMA_CPP_DRAFT_SOURCE`): refused where the workload runs more than one."""
    if ctx.workload.engine == "llama.cpp" and ctx.workload.concurrency > LLAMA_CPP_DRAFT_SLOTS:
        return (f"llama-server drafts for each slot with a draft context of its own and verifies each slot's draft in "
                f"a decode of its own, one slot after another: at {ctx.workload.concurrency} sequences at once that "
                f"undoes the batching of its slots, and its maintainers default a server with a draft model to one "
                f"slot (source: {LLAMA_CPP_DRAFT_SOURCE.split(' — ')[0]})")
    return None


def _draft(state: PlanState, ctx: Context) -> PlanState:
    """The draft proposing; nothing where its attention heads do not split over the plan's tensor-parallel devices
    (the engines run a draft sharded as the target is, and the step model prices it so) or the workload's longest
    sequence is beyond its positions: SGLang stretches a draft to the target's context length with a warning that it
    "may lead to incorrect model outputs or CUDA errors" (python/sglang/srt/configs/model_config.py, stored copies),
    and past its trained positions its proposals are not the acceptance the plan assumes."""
    draft = ctx.draft
    if draft is not None and (draft.num_heads % state.tp or kv_heads_refusal(ctx.workload.engine, draft.num_kv_heads,
                                                                              state.tp)
                              or draft.max_position_embeddings < ctx.workload.context_needed):
        return state
    return _speculate(state, ctx, Speculation("draft", DRAFT_TOKENS, DRAFT_ACCEPTANCE, ctx.draft))


register(
    Technique(
        id="spec-draft", engines=("sglang", "trtllm", "transformers", "llama.cpp"),
        name="Speculative decoding with a draft model", family="speculative decoding", group=GROUP,
        moving_parts=1,  # a second model to fetch, hold beside the target and keep matched to it
        summary="A much smaller model of the same tokenizer family proposes tokens; the target verifies them.",
        # the draft is chosen against the teacher (a fifth of its active parameters): not against a distilled student
        conflicts=("distillation",),
        transform=_draft, model=("draft",), check=_draft_check,
        unchanged="the draft model's attention or KV heads do not split over the plan's tensor-parallel devices, "
                  "which SGLang and TensorRT-LLM run a draft over as they run the target, or the workload's longest "
                  f"sequence is beyond the draft's positions, or {PIPELINE_UNCHANGED}",
        after=("weight-int8", "weight-fp8", "weight-int4-awq", "weight-int4-gptq", "weight-int4", "weight-nf4",
               "tensor-parallel"), quality_source=LEVIATHAN,
        effect_source=DRAFT_SOURCE,
        params=lambda c: {"draft_model": c.draft.name if c.draft else None, "num_speculative_tokens": DRAFT_TOKENS,
                          "expected_acceptance": DRAFT_ACCEPTANCE},
        apply=Applied("speculative:draft_model",
                      options=(("draft", Option(str, "folder of the draft model (or --draft)")),
                               ("num_assistant_tokens", Option(int, "drafted tokens per step [default: tuned]",
                                                               low=1, high=64))),
                      # a plan's step drafts the tokens its prediction prices (-t alone tunes them here)
                      plan_names=(("num_speculative_tokens", "num_assistant_tokens"),)),
        combines={"transformers": Combines(cache_needs=("dynamic",), batch_one=True)}),
    Technique(
        id="spec-ngram", engines=("vllm", "sglang", "tgi", "trtllm", "transformers"),
        name="Prompt-lookup (n-gram) speculation", family="speculative decoding", group=GROUP,
        summary="Proposals copied from n-grams of the prompt: no draft model, pays when outputs quote inputs.",
        transform=lambda s, c: _speculate(s, c, Speculation("ngram", NGRAM_TOKENS, NGRAM_ACCEPTANCE)),
        unchanged=PIPELINE_UNCHANGED,
        check=_ngram_check, quality_source=LEVIATHAN, effect_source=NGRAM_SOURCE,
        params=lambda c: {"method": "ngram", "num_speculative_tokens": NGRAM_TOKENS, "prompt_lookup_max": 4,
                          "expected_acceptance": NGRAM_ACCEPTANCE},
        apply=Applied("speculative:prompt_lookup",
                      options=(("prompt_lookup_num_tokens", Option(int, "tokens copied per step", low=1, high=64)),
                               ("max_matching_ngram_size", Option(int, "longest n-gram matched", low=1, high=16))),
                      # the plan's tokens and n-gram, as its prediction prices them (the optimizer's defaults: 10, 2)
                      plan_names=(("num_speculative_tokens", "prompt_lookup_num_tokens"),
                                  ("prompt_lookup_max", "max_matching_ngram_size"))),
        combines={"transformers": Combines(cache_needs=("dynamic",), batch_one=True)}),
    Technique(
        id="spec-eagle3", engines=("vllm", "sglang", "trtllm"),
        name="EAGLE-3 speculative decoding (a trained draft head)", family="speculative decoding", group=GROUP,
        moving_parts=1,  # a trained head to fetch and hold beside the target, matched to its weights
        summary="A one-layer head trained on the target's hidden features proposes a chain of tokens; the target "
                "verifies them in one pass.",
        transform=lambda s, c: _speculate(s, c, Speculation("eagle3", EAGLE3_TOKENS,
                                                            eagle3_acceptance(c.workload.mean_context))),
        model=("eagle",), check=_eagle_check, quality_source=LEVIATHAN, unchanged=PIPELINE_UNCHANGED,
        effect_source=f"{EAGLE3_SOURCE}; at longer contexts: {EAGLE3_CONTEXT_SOURCE}",
        # a head reads the hidden features of the model it was trained on: a distilled student (another width, other
        # features) serves without it, and so does a pruned model (a quarter of its layers gone, its features others)
        conflicts=("distillation", "structured-pruning"),
        after=("weight-int8", "weight-fp8", "weight-int4-awq", "weight-int4-gptq", "tensor-parallel"),
        params=lambda c: {"method": "eagle3", "draft_model": (eagle_head(c) or {}).get("hub_id"),
                          "num_speculative_tokens": EAGLE3_TOKENS,
                          "expected_acceptance": eagle3_acceptance(c.workload.mean_context)}),
    Technique(
        id="spec-mtp", engines=("vllm", "sglang", "trtllm"),
        name="Speculation with the model's own MTP heads", family="speculative decoding", group=GROUP,
        summary="The checkpoint's multi-token-prediction module proposes the next token (DeepSeek-V3 style).",
        transform=lambda s, c: _speculate(s, c, Speculation("mtp", MTP_TOKENS, MTP_ACCEPTANCE)), model=("mtp",),
        unchanged=PIPELINE_UNCHANGED,
        # the MTP module is the checkpoint's own: a distilled student has none, and it reads the last hidden state of
        # the model it was trained beside, which pruning changes
        conflicts=("distillation", "structured-pruning"),
        quality_source=LEVIATHAN, effect_source=MTP_SOURCE,
        params=lambda c: {"method": "mtp", "num_speculative_tokens": MTP_TOKENS,
                          "expected_acceptance": MTP_ACCEPTANCE}),
    family="speculative")
