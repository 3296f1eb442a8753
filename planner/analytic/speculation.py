"""Speculative decoding's step model, shared by the plan search and `optiplan profile --speculative`: a proposer
guesses `tokens` tokens, the target verifies them and the next in one pass, and (1 - a^(g+1)) / (1 - a) tokens are
accepted a step on average for acceptance a (Leviathan et al., arXiv 2211.17192). At batch the gain is scaled by what
serving engines were measured to keep of it (`SPECULATIVE_GAIN_KEPT`, benchmarks/bench_speculation_published.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..catalog.models import mtp_layers
from ..schema import ModelSpec, ProfileRequest
from .kvcache import elements_per_token
from .memory import NO_DRAFT, per_device_bytes
from .setup import Setup
from .steps import decode_step, prefill_step

# How much of the step model's speculative gain a serving engine keeps as the batch grows, from the one published
# batch sweep in the validation set: EAGLE-3 on SGLang (arXiv 2503.01840) measured 2.36x at batch 1, which the step
# model reproduces (the acceptance is solved from it), and 1.38x at batch 64, where the step model predicts 2.27x:
# it keeps (1.38 - 1) / (2.27 - 1) = 0.30 of the gain. Interpolated in log(batch), held at 0.30 beyond 64
# (benchmarks/bench_speculation_published.py). Speculation's losses are not scaled.
SPECULATIVE_GAIN_KEPT = ((1, 1.0), (64, 0.30))
# An EAGLE-3 head: one decoder layer of the target's width over its fused hidden states (a 3h -> h projection) and an
# output head over a reduced draft vocabulary, in 16 bits, sharded with the target (SpecForge's llama3-8B-eagle3.json:
# "num_hidden_layers": 1, "hidden_size": 4096 (the target's), "draft_vocab_size": 32000; about 811 MB for
# Llama-3.1-8B, as its trained head weighs)
EAGLE3_DRAFT_VOCAB = 32000


@dataclass(frozen=True)
class Speculating:
    """Speculative decoding as the step model prices it."""

    method: str  # draft, eagle3, mtp or ngram (ProfileRequest.speculative)
    tokens: int  # tokens proposed a step (gamma)
    acceptance: float  # the probability each proposed token is accepted (alpha)
    draft: Setup | None = None  # a draft model's setup on the target's devices (method "draft")

    @property
    def expected_tokens(self) -> float:
        """Tokens a step yields on average: (1 - a^(g+1)) / (1 - a), g + 1 in the limit a -> 1."""
        a = min(max(self.acceptance, 0.0), 0.999)
        return (1 - a ** (self.tokens + 1)) / (1 - a)


def speculative_gain_kept(batch: int) -> float:
    """The share of the step model's gain serving engines keep at `batch` sequences (`SPECULATIVE_GAIN_KEPT`)."""
    (b0, k0), (b1, k1) = SPECULATIVE_GAIN_KEPT
    if batch <= b0:
        return k0
    if batch >= b1:
        return k1
    return k0 + (k1 - k0) * math.log(batch / b0) / math.log(b1 / b0)


def speculative_step_s(s: Setup, sp: Speculating, batch: int, context: int, kept: bool = True) -> tuple[float, float]:
    """(seconds per step, tokens produced per step per sequence): gamma draft steps (a draft model's, or about one
    decoder layer of the target per proposal for an MTP module or an EAGLE head; n-gram lookup costs nothing on the
    device), one target pass verifying gamma + 1 tokens; at batch > 1 the gain over plain decoding is scaled by what
    serving engines were measured to keep (`speculative_gain_kept`) unless `kept` is False."""
    g, expected = sp.tokens, sp.expected_tokens
    verify = decode_step(s, batch, context, tokens_per_seq=g + 1).time_s
    draft = 0.0
    if sp.method == "draft" and sp.draft is not None:
        draft = g * decode_step(sp.draft, batch, context).time_s
    elif sp.method in ("mtp", "eagle3"):
        draft = g * decode_step(s, batch, context).time_s / max(s.spec.num_layers, 1)
    step = verify + draft
    if kept and batch > 1:
        plain = decode_step(s, batch, context).time_s
        gain = plain * expected / step
        if gain > 1:
            step = plain * expected / (1 + (gain - 1) * speculative_gain_kept(batch))
    return step, expected


def speculative_tpot_s(s: Setup, sp: Speculating | None, batch: int, context: int) -> float:
    """Seconds per output token of `batch` sequences decoding together: a speculative step over the tokens it yields,
    or a plain decode step (`sp` None)."""
    if sp is None:
        return decode_step(s, batch, context).time_s
    step, tokens = speculative_step_s(s, sp, batch, context)
    return step / tokens


def eagle3_head_bytes(s: Setup, reserved: int) -> tuple[float, float]:
    """(weights, cache bytes per sequence of `reserved` tokens) of an EAGLE-3 head on one device: a dense layer of the
    target's width, its fused projection and its draft-vocabulary head, and that one full-attention layer's cache (not
    the mean layer's: a hybrid's state or windowed layers hold less)."""
    h = s.spec.hidden_size
    layer = s.counts.active_linear / s.spec.num_layers
    head = (layer + 3 * h * h + EAGLE3_DRAFT_VOCAB * h) * s.act_bytes / s.tp
    cache = elements_per_token(s.spec, s.layout) * int(reserved) * s.kv_element_bytes
    return head, cache


def mtp_module_bytes(s: Setup, reserved: int) -> tuple[float, float]:
    """(weights, cache bytes per sequence of `reserved` tokens) of the multi-token-prediction modules on one device:
    the checkpoint ships them beside the layers the model's parameters count (DeepSeek-V3: 14B beside the published
    671B), and an engine that speculates with them loads them. Each is a decoder layer like the model's (an MoE layer
    where those are), the projection of a token's embedding and hidden state (2h x h) and three norms, in the weights'
    format and split as the layers are; the embedding and head are the model's. Its cache: one layer's."""
    n = mtp_layers(s.spec.name)
    if not n:
        return NO_DRAFT
    c, lp, h = s.counts, s.counts.layer, s.spec.hidden_size
    moe = s.spec.moe is not None
    experts = c.num_experts * lp.expert_linear if moe else 0
    linear = (c.moe_layer_linear if moe else c.dense_layer_linear) - experts + 2 * h * h
    small = lp.attn_small + lp.norms + 3 * h + ((lp.router + lp.expert_small) if moe else lp.mlp_small)
    weights = n * ((linear * s.bits_per_weight / 8 + small * s.act_bytes) / s.tp
                   + experts * s.expert_bits_per_weight / 8 / s.shards)
    return weights, n * elements_per_token(s.spec, s.layout) * int(reserved) * s.kv_element_bytes


def draft_prefill_s(sp: Speculating | None, prompt: int, cached: int = 0) -> float:
    """The draft model's own prefill of a prompt (its cache must hold the prompt before it proposes), after the
    target's: a draft model's prefill step; nothing for the other methods, whose heads read the target's states."""
    if sp is None or sp.method != "draft" or sp.draft is None or prompt <= cached:
        return 0.0
    return prefill_step(sp.draft, 1, prompt, cached).time_s


def with_speculation(f: dict, s: Setup, sp: Speculating | None, output_tokens: int, context: int,
                     prompt: int = 0, cached: int = 0) -> dict:
    """Steady-state request figures (`requests.request_figures`) with the decode steps speculative, as the plan prices
    them: the speculative time per token of the sequences a step advances, plus what the prompts riding in the steps
    add to a plain one; the first token after the draft model's prefill of the `prompt` too; the request's cycle its
    first token and its other tokens at that pace."""
    if sp is None or output_tokens <= 1:
        return f
    itl = speculative_tpot_s(s, sp, f["decode_rows"], context) + max(0.0, f["itl_s"] - f["decode_s"])
    ttft = f["ttft_s"] + draft_prefill_s(sp, prompt, cached)
    return f | {"itl_s": itl, "ttft_s": ttft, "cycle_s": ttft + (output_tokens - 1) * itl}


def speculation_refusal(request: ProfileRequest) -> str | None:
    """Why `request`'s speculative decoding cannot be profiled as given, or None."""
    if request.speculative is None:
        given = [o for o, v in (("--draft", request.draft_model), ("--spec-tokens", request.spec_tokens),
                                ("--acceptance", request.acceptance)) if v is not None]
        verb = "describes" if len(given) == 1 else "describe"
        return f"{', '.join(given)} {verb} speculative decoding: give --speculative too" if given else None
    method = request.speculative
    if request.spec_tokens is None or request.acceptance is None:
        return (f"--speculative {method} needs --spec-tokens (the tokens proposed a step) and --acceptance (each one's "
                "chance to be accepted, which the workload sets: measure it)")
    if (method == "draft") != (request.draft_model is not None):
        return ("--speculative draft needs --draft, the draft model" if method == "draft"
                else f"--draft names a draft model, which --speculative {method} has none of")
    if method == "mtp" and not mtp_layers(request.model):
        return f"{request.model} ships no multi-token-prediction module (--speculative mtp)"
    if request.at_once or request.num_requests is not None:
        return ("--speculative is priced in steady state: a burst (--at-once) or a run (--num-requests) follows each "
                "request's decode steps, which speculation's step model does not")
    return None


def draft_request(request: ProfileRequest, s: Setup) -> ProfileRequest:
    """The profile request of the draft model of `request` on the target's devices: the same format, engine and
    tensor and pipeline split (its experts, if any, not split apart), one sequence's decode step."""
    return ProfileRequest(model=request.draft_model, hardware=request.hardware, num_devices=s.tp * s.pp,
                          tensor_parallel=s.tp, pipeline_parallel=s.pp, dtype=request.dtype, kv_dtype=request.kv_dtype,
                          activations=request.activations, group_size=request.group_size, context=request.context,
                          engine=request.engine, attention=request.attention)


# A draft proposes token ids that the target verifies as its own, so the two must share a vocabulary: llama.cpp
# refuses a draft whose vocabulary differs by more than 128 entries or whose tokens differ
# (common/speculative.cpp: "#define SPEC_VOCAB_MAX_SIZE_DIFFERENCE 128"; ggml-org/llama.cpp#3812, "draft model vocab
# must match target model to use speculation"), SGLang's STANDALONE drafting checks the two vocabularies
# (sgl-project/sglang#23838: "requires the draft model to share the same vocabulary as the target model"); 128 lets a
# family's padded embeddings pair (Qwen2.5-0.5B's 151,936 with Qwen2.5-72B's 152,064, one tokenizer)
DRAFT_VOCAB_MAX_DIFFERENCE = 128


def draft_vocab_refusal(target: ModelSpec, draft: ModelSpec) -> str | None:
    """Why `draft` cannot propose tokens for `target`: their vocabularies differ in size (`DRAFT_VOCAB_MAX_DIFFERENCE`).
    Two tokenizers of one size (Mistral-7B's and Llama 2's 32,000) pass: the sizes are what a config states."""
    if abs(draft.vocab_size - target.vocab_size) > DRAFT_VOCAB_MAX_DIFFERENCE:
        return (f"the draft {draft.name} has a vocabulary of {draft.vocab_size:,} tokens and {target.name} one of "
                f"{target.vocab_size:,}: a draft proposes token ids the target verifies as its own, so the two must "
                f"share a vocabulary (llama.cpp refuses vocabularies more than {DRAFT_VOCAB_MAX_DIFFERENCE} entries "
                f"apart, SGLang's STANDALONE drafting checks them)")
    return None


def draft_refusal(s: Setup, draft: Setup) -> str | None:
    """Why a draft model cannot propose for the target of `s`: it is not the smaller of the two, or it does not share
    the target's vocabulary."""
    if draft.counts.active >= s.counts.active:
        return (f"the draft {draft.spec.name} computes {draft.counts.active / 1e9:.2f}B parameters a token, no fewer "
                f"than {s.spec.name}'s {s.counts.active / 1e9:.2f}B: a draft must be the cheaper model")
    return draft_vocab_refusal(s.spec, draft.spec)


def speculation_bytes(s: Setup, sp: Speculating | None, reserved: int) -> tuple[float, float]:
    """(weights, cache bytes per sequence of `reserved` tokens) the speculation adds on a device: a draft model's, an
    EAGLE-3 head's or the MTP modules' (`mtp_module_bytes`); nothing for n-gram lookup."""
    if sp is not None and sp.method == "eagle3":
        return eagle3_head_bytes(s, reserved)
    if sp is not None and sp.method == "mtp":
        return mtp_module_bytes(s, reserved)
    if sp is not None and sp.draft is not None:
        weights, kv, _ = per_device_bytes(sp.draft, 1, int(reserved), 1)
        return weights, kv
    return NO_DRAFT


def speculation_note(sp: Speculating) -> str:
    """What a profile's speculative figures rest on."""
    return (f"speculative decoding ({sp.method}) is priced at the acceptance given ({sp.acceptance:g}, "
            f"{sp.expected_tokens:.2f} tokens a step), which the workload's text sets; the step model is checked "
            "against one published sweep only (EAGLE-3 on SGLang: benchmarks/bench_speculation_published.py), and the "
            "± bands are plain decoding's")
