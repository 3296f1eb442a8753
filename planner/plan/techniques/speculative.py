"""Speculative decoding: a cheap proposer guesses several tokens, the target verifies them in one pass.
Lossless (the target's distribution is kept); it pays at small batch, where a decode step is
bandwidth-bound and verifying gamma+1 tokens costs about as much as one."""

from __future__ import annotations

from ..state import PlanState, Speculation
from . import Applied, Combines, Context, Option, Technique, register

GROUP = "speculative"
LEVIATHAN = ("lossless by construction (Leviathan et al., arXiv 2211.17192); expected tokens per step "
             "(1 - a^(g+1)) / (1 - a) for acceptance a and g proposed tokens")

# Acceptance rates: a same-family draft model accepts 0.6-0.8 of its tokens (Leviathan et al.; Chen et al.,
# arXiv 2302.01318); prompt lookup pays on input-grounded outputs (RAG, code edits, summaries) and little in
# open chat; DeepSeek-V3's MTP module's second token is accepted 85-90% of the time (arXiv 2412.19437).
DRAFT_ACCEPTANCE, DRAFT_TOKENS = 0.7, 4
NGRAM_ACCEPTANCE_GROUNDED, NGRAM_ACCEPTANCE_OPEN, NGRAM_TOKENS = 0.6, 0.3, 4
MTP_ACCEPTANCE, MTP_TOKENS = 0.85, 1
GROUNDED_WORKLOADS = ("rag-long-context", "code-completion", "agent")


def _ngram_acceptance(ctx: Context) -> float:
    return NGRAM_ACCEPTANCE_GROUNDED if ctx.workload.name in GROUNDED_WORKLOADS else NGRAM_ACCEPTANCE_OPEN


def _draft(state: PlanState, ctx: Context) -> PlanState:
    return state.with_(speculation=Speculation("draft", DRAFT_TOKENS, DRAFT_ACCEPTANCE, ctx.draft))


register(
    Technique(
        id="spec-draft", engines=("sglang", "trtllm", "transformers", "llama.cpp"),
        name="Speculative decoding with a draft model", family="speculative decoding", group=GROUP,
        summary="A much smaller model of the same tokenizer family proposes tokens; the target verifies them.",
        transform=_draft, model=("draft",), after=("weight-int8", "weight-fp8", "weight-int4-awq", "weight-int4-gptq",
                                                   "weight-int4", "weight-nf4", "tensor-parallel"), quality_source=LEVIATHAN,
        params=lambda c: {"draft_model": c.draft.name if c.draft else None, "num_speculative_tokens": DRAFT_TOKENS,
                          "expected_acceptance": DRAFT_ACCEPTANCE},
        apply=Applied("speculative:draft_model",
                      options=(("draft", Option(str, "folder of the draft model (or --draft)")),
                               ("num_assistant_tokens", Option(int, "drafted tokens per step [default: tuned]", low=1, high=64)))),
        combines={"transformers": Combines(cache_needs=("dynamic",), batch_one=True)}),
    Technique(
        id="spec-ngram", engines=("vllm", "sglang", "tgi", "trtllm", "transformers"),
        name="Prompt-lookup (n-gram) speculation", family="speculative decoding", group=GROUP,
        summary="Proposals copied from n-grams of the prompt: no draft model, pays when outputs quote inputs.",
        transform=lambda s, c: s.with_(speculation=Speculation("ngram", NGRAM_TOKENS, _ngram_acceptance(c))), quality_source=LEVIATHAN,
        params=lambda c: {"method": "ngram", "num_speculative_tokens": NGRAM_TOKENS, "prompt_lookup_max": 4,
                          "expected_acceptance": _ngram_acceptance(c)},
        apply=Applied("speculative:prompt_lookup",
                      options=(("prompt_lookup_num_tokens", Option(int, "tokens copied per step", low=1, high=64)),
                               ("max_matching_ngram_size", Option(int, "longest n-gram matched", low=1, high=16)))),
        combines={"transformers": Combines(cache_needs=("dynamic",), batch_one=True)}),
    Technique(
        id="spec-mtp", engines=("vllm", "sglang", "trtllm"),
        name="Speculation with the model's own MTP heads", family="speculative decoding", group=GROUP,
        summary="The checkpoint's multi-token-prediction module proposes the next token (DeepSeek-V3 style).",
        transform=lambda s, c: s.with_(speculation=Speculation("mtp", MTP_TOKENS, MTP_ACCEPTANCE)), model=("mtp",),
        quality_source=LEVIATHAN,
        params=lambda c: {"method": "mtp", "num_speculative_tokens": MTP_TOKENS,
                          "expected_acceptance": MTP_ACCEPTANCE}),
)
